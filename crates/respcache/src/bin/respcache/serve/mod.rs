//! `serve`: a caching reverse proxy in front of one upstream, built on
//! [`CachedClient`], so any HTTP client in any language gets the cache.
//!
//! Every method (extension methods too) is forwarded with its body and its
//! end-to-end headers unchanged; hop-by-hop headers (`Connection` and the
//! headers it names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade`) and `Host` are not. Redirects are passed
//! back, never followed. Answers are cached by the HTTP rules alone (no
//! default lifetime), as a private cache or, with `--shared`, a shared one;
//! each answer carries a `Cache-Status` (RFC 9211) member `respcache; …`.
//! An upstream that fails gives `502` (`504` after `--timeout`), or a stale
//! answer where the rules allow it.
//!
//! Bodies stream. A response body is held in memory only while the cache
//! keeps it (the rules allow storing it, a stored copy could be served
//! again, and it is no larger than `--max-body-size`); every other response
//! body — too large by its `Content-Length`, not storable, never servable
//! again, an event stream, or growing past the limit — is passed on chunk by
//! chunk as the upstream sends it, and not stored. Request bodies
//! of methods the cache answers (GET, HEAD) are part of the cache key, so
//! they are read whole (over `--max-body-size`: `413`); every other
//! method's body streams to the upstream, whatever its size.

use std::convert::Infallible;
use std::fmt;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use respcache_http::{CachedClient, ErrorKind, ResponseBody, StreamingResponse};
use tokio::net::TcpListener;
use url::Url;

use crate::args::ServeArgs;
use crate::cache::Cache;
use crate::failure::{CliResult, Failure};

/// The RFC 9211 response header.
const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// How long open connections may take to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

/// What every request handler shares.
struct Proxy {
    client: CachedClient,
    upstream: Upstream,
    max_body_size: usize,
}

/// The upstream base URL; request paths and queries are appended to it.
struct Upstream {
    /// The base, without its trailing `/`.
    base: String,
}

impl Upstream {
    fn parse(text: &str) -> CliResult<Self> {
        let bad = |why: &str| Failure::new(format!("--upstream {text:?}: {why}"));
        let url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad("not an http:// or https:// URL with a host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad(
                "a query or fragment cannot be combined with request paths",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials in the URL are not supported"));
        }
        Ok(Upstream {
            base: url.as_str().trim_end_matches('/').to_owned(),
        })
    }

    /// The upstream URL for a request's path and query.
    fn target(&self, uri: &Uri) -> String {
        let tail = uri.path_and_query().map_or("/", |p| p.as_str());
        if tail.starts_with('/') {
            format!("{}{tail}", self.base)
        } else {
            format!("{}/{tail}", self.base)
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

/// Runs the proxy until SIGINT (Ctrl-C) or SIGTERM, then lets open
/// connections finish (up to 10 s) and returns.
pub(crate) async fn run(cache: &Cache, args: &ServeArgs, out: &mut impl Write) -> CliResult<()> {
    let upstream = Upstream::parse(&args.upstream)?;
    // Listen for the signals before anything else: a signal that arrives
    // once the start line is out must shut down cleanly, not kill.
    let shutdown = Shutdown::install()?;
    let location = cache.location();
    let mut builder = CachedClient::builder()
        .cache_name(location.cache.as_str())
        .shared(args.shared)
        // Cached by the HTTP rules alone: what they let a cache store, and
        // stale answers while the upstream is unreachable (RFC 9111 §4.2.4).
        .allowed_codes(respcache_http::HEURISTICALLY_CACHEABLE)
        .stale_when_unreachable(true)
        // A gateway cache: the origin's CDN-Cache-Control (RFC 9213) wins.
        .targeted_cache_control(hyper::header::HeaderName::from_static("cdn-cache-control"))
        .follow_redirects(false)
        .max_body_size(args.max_body_size)
        .timeout(args.timeout)
        .connect_timeout(args.timeout.min(Duration::from_secs(10)));
    if let Some(retention) = location.retention {
        builder = builder.retention(retention);
    }
    let client = builder
        .build(cache.backend())
        .await
        .map_err(|e| cache.fail(e))?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::new(format!("cannot listen on {}: {e}", args.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::new(format!("cannot listen on {}: {e}", args.listen)))?;
    writeln!(
        out,
        "respcache serve: listening on http://{local}, upstream {upstream}, {location}"
    )?;
    out.flush()?;

    let proxy = Arc::new(Proxy {
        client: client.clone(),
        upstream,
        max_body_size: args.max_body_size,
    });
    let graceful = GracefulShutdown::new();
    let server = auto::Builder::new(TokioExecutor::new());
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, go on.
                        crate::note(&format!("accepting a connection failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let proxy = Arc::clone(&proxy);
                let service = service_fn(move |req| handle(Arc::clone(&proxy), req));
                let conn = server.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    // A client that goes away mid-request is not an error of ours.
                    let _ = conn.await;
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        crate::note(&format!(
            "connections still open after {DRAIN:?} were closed"
        ));
    }
    if tokio::time::timeout(DRAIN, client.wait_background())
        .await
        .is_err()
    {
        crate::note("background revalidations still running were abandoned");
    }
    Ok(())
}

/// The signals that stop the proxy.
struct Shutdown {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Shutdown {
    fn install() -> CliResult<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let fail = |e: std::io::Error| Failure::new(format!("cannot handle signals: {e}"));
            Ok(Shutdown {
                interrupt: signal(SignalKind::interrupt()).map_err(fail)?,
                terminate: signal(SignalKind::terminate()).map_err(fail)?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Shutdown {})
        }
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => {}
                _ = self.terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

type Answer = Response<ResponseBody>;

async fn handle(proxy: Arc<Proxy>, req: Request<Incoming>) -> Result<Answer, Infallible> {
    Ok(forward(&proxy, req).await.unwrap_or_else(|answer| answer))
}

/// Sends one request through the cache; `Err` is an answer of our own.
async fn forward(proxy: &Proxy, req: Request<Incoming>) -> Result<Answer, Answer> {
    let (parts, body) = req.into_parts();
    let url = proxy.upstream.target(&parts.uri);
    let mut headers = parts.headers;
    drop_hop_by_hop(&mut headers);
    // The upstream's own host goes in its place.
    headers.remove(header::HOST);
    let head = parts.method == Method::HEAD;
    let cached_method = proxy.client.caches_method(&parts.method);
    let request = proxy.client.request(parts.method, &url).headers(headers);
    let request = if cached_method {
        // Part of the cache key: read whole, within the limit.
        let body = Limited::new(body, proxy.max_body_size)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    own_answer(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "the request body is larger than --max-body-size",
                    )
                } else {
                    own_answer(StatusCode::BAD_REQUEST, "reading the request body failed")
                }
            })?
            .to_bytes();
        request.body(body)
    } else if hyper::body::Body::is_end_stream(&body) {
        request
    } else {
        request.body_stream(body)
    };
    match request.send_streaming().await {
        Ok(response) => Ok(relay(response, head)),
        Err(e) => {
            crate::note(&format!("upstream: {e}"));
            let status = match e.kind() {
                ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
                ErrorKind::InvalidUrl | ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
                _ => StatusCode::BAD_GATEWAY,
            };
            Err(own_answer(status, &format!("upstream {}", e.kind())))
        }
    }
}

/// The answer as the cache or the upstream gave it, with `Cache-Status`.
fn relay(response: StreamingResponse, head: bool) -> Answer {
    let cache_status = response.cache_status().to_string();
    let status = response.status();
    let mut headers = response.headers().clone();
    let body = response.into_body();
    drop_hop_by_hop(&mut headers);
    if !head {
        // hyper sets the length from the body (whole, or streaming with
        // the upstream's exact length), else sends it chunked.
        headers.remove(header::CONTENT_LENGTH);
    }
    if let Ok(v) = HeaderValue::from_str(&cache_status) {
        headers.append(CACHE_STATUS, v);
    }
    let mut answer = Response::new(body);
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    answer
}

/// An answer the proxy makes itself (an error), never cached.
fn own_answer(status: StatusCode, text: &str) -> Answer {
    let mut answer = Response::new(ResponseBody::full(Bytes::from(format!(
        "respcache: {text}\n"
    ))));
    *answer.status_mut() = status;
    let h = answer.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        CACHE_STATUS,
        HeaderValue::from_static("respcache; detail=proxy-error"),
    );
    answer
}

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1): those `Connection`
/// names, then `Connection`, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`,
/// `Transfer-Encoding` and `Upgrade`.
fn drop_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in named.into_iter().chain(proxy) {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_end_to_end_ones_stay() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("connection", "keep-alive, X-Hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic abc"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("authorization", "Bearer t"),
            ("x-custom", "a"),
            ("x-custom", "b"),
        ] {
            h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        drop_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "x-custom"]);
        assert_eq!(h.get_all("x-custom").iter().count(), 2);
    }

    #[test]
    fn request_paths_join_the_upstream_base() {
        let u = Upstream::parse("http://127.0.0.1:9000/api/")
            .map_err(|_| ())
            .unwrap();
        let uri: Uri = "/v1/x?b=2&a=1".parse().unwrap();
        assert_eq!(u.target(&uri), "http://127.0.0.1:9000/api/v1/x?b=2&a=1");
        let root = Upstream::parse("http://origin.test")
            .map_err(|_| ())
            .unwrap();
        assert_eq!(root.target(&"/".parse().unwrap()), "http://origin.test/");
        for bad in ["ftp://x/", "http://h/?q=1", "not a url", "http://u:p@h/"] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
    }
}
