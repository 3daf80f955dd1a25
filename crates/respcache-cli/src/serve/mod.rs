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
//! Requests are checked before anything is forwarded ([`screen`],
//! [`path`]): the path is normalised (dot segments, `%2e` forms) and may
//! never leave the upstream's base path (`400`); an HTTP/1.1 request needs
//! exactly one `Host` (`400`); `CONNECT` is not relayed (`501`); `OPTIONS *`
//! is answered here. Upgrades are not relayed: `Upgrade` is a hop-by-hop
//! header, and an upstream `101` is a `502`.
//!
//! Bodies stream. A response body is held in memory only while the cache
//! keeps it (the rules allow storing it, a stored copy could be served
//! again, and it is no larger than `--max-body-size`); every other response
//! body — too large by its `Content-Length`, not storable, never servable
//! again, an event stream, or growing past the limit — is passed on chunk by
//! chunk as the upstream sends it, and not stored. Request bodies
//! of methods the cache answers (GET, HEAD) are part of the cache key, so
//! they are read whole (over `--max-body-size`: `413`; not in within
//! `--body-timeout`: `408`); every other method's body streams to the
//! upstream, whatever its size. All bodies held in memory share one
//! `--buffer-budget` (default 256 MiB): a request body it cannot hold gets
//! `503` with `Retry-After`, a response body it cannot hold is passed on
//! unstored ([`budget`]).
//!
//! Connections ([`limits`], [`watch`]): at most `--max-connections` (1024)
//! at once, the rest wait in the listen backlog; a request head must arrive
//! within `--header-timeout` (10 s) of its first byte; a connection idle for
//! `--idle-timeout` (60 s), or whose client leaves an answer unread that
//! long, is closed. The open-file limit is raised to its hard limit and the
//! default cap lowered to fit it; failed accepts (out of file descriptors)
//! back off and are reported at most every 10 s.
//!
//! No message prints a password from the command line's URLs or a
//! secret-looking query parameter ([`crate::redact`]).

mod answer;
mod budget;
mod hop;
mod limits;
mod path;
mod screen;
mod shutdown;
mod watch;

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use respcache_http::{BufferBudget, CachedClient, ErrorKind, ResponseBody};
use tokio::net::TcpListener;

use self::answer::{Answer, own_answer, relay};
use self::hop::drop_hop_by_hop;
use self::limits::{AcceptBackoff, Slots};
use self::path::Upstream;
use self::shutdown::Shutdown;
use self::watch::{InFlight, Timeouts, Tracked, Watch, Watched};
use crate::args::ServeArgs;
use crate::failure::{CliResult, Failure};
use crate::location::Location;

/// How long open connections may take to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

/// What every request handler shares.
struct Proxy {
    client: CachedClient,
    upstream: Upstream,
    max_body_size: usize,
    body_timeout: Duration,
    budget: BufferBudget,
}

/// Runs the proxy until SIGINT (Ctrl-C) or SIGTERM, then lets open
/// connections finish (up to 10 s) and returns.
///
/// The backend is connected by the client itself: a backend that cannot be
/// reached at start (a Redis that is down) does not stop the proxy — it
/// starts degraded, passes requests to the upstream, and connects in the
/// background (issue 16: a cache failure never fails a request).
pub(crate) async fn run(
    location: &Location,
    args: &ServeArgs,
    out: &mut impl Write,
) -> CliResult<()> {
    let upstream = Upstream::parse(&args.upstream)?;
    let shutdown = Shutdown::install()?;
    let budget = BufferBudget::new(args.buffer_budget);
    // Before the client: it registers its metrics when built.
    let metrics = match args.metrics {
        Some(addr) => format!(
            ", metrics http://{}/metrics",
            crate::metrics::serve(addr).await?
        ),
        None => String::new(),
    };
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
        .buffer_budget(budget.clone())
        .timeout(args.timeout)
        .connect_timeout(args.timeout.min(Duration::from_secs(10)));
    if let Some(retention) = location.retention {
        builder = builder.retention(retention);
    }
    let url = location.backend_url().to_owned();
    let client = builder
        .build_connecting(move || {
            let url = url.clone();
            async move { respcache::connect(&url).await }
        })
        .await
        .map_err(|e| Failure::new(format!("{location}: {e}")))?;
    if let Some(why) = client.store_error() {
        crate::note(&format!(
            "{location}: the cache cannot be opened yet ({why}); requests go to the upstream while it is retried"
        ));
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::new(format!("cannot listen on {}: {e}", args.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::new(format!("cannot listen on {}: {e}", args.listen)))?;
    let start_line = format!(
        "respcache serve: listening on http://{local}, upstream {upstream}, {location}{metrics}"
    );
    writeln!(out, "{}", crate::redact::scrub(&start_line))?;
    out.flush()?;

    let proxy = Arc::new(Proxy {
        client: client.clone(),
        upstream,
        max_body_size: args.max_body_size,
        body_timeout: args.body_timeout,
        budget,
    });
    let timeouts = Timeouts {
        header: args.header_timeout,
        idle: args.idle_timeout,
    };
    let graceful = GracefulShutdown::new();
    let mut server = auto::Builder::new(TokioExecutor::new());
    // hyper's own HTTP/1 limit, behind the watch (which also covers the
    // first bytes read to tell HTTP/1 from HTTP/2, and HTTP/2 itself): it
    // counts from the end of the previous answer, so never below the idle
    // limit.
    server
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(args.header_timeout.max(args.idle_timeout));
    let (max_connections, mismatch) = limits::connection_cap(args.max_connections);
    if let Some(note) = mismatch {
        crate::note(&note);
    }
    let slots = Slots::new(max_connections);
    let mut backoff = AcceptBackoff::new();
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let slot = tokio::select! {
            slot = slots.take() => slot,
            () = &mut stop => break,
        };
        let Some(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff.succeeded();
                stream
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, go on.
                let (report, wait) = backoff.failed(&e);
                if let Some(report) = report {
                    crate::note(&report);
                }
                drop(slot);
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    () = &mut stop => break,
                }
            }
        };
        let watch = Watch::new(timeouts);
        let io = TokioIo::new(Watched::new(stream, Arc::clone(&watch)));
        let proxy = Arc::clone(&proxy);
        let requests = Arc::clone(&watch);
        let service = service_fn(move |req| handle(Arc::clone(&proxy), req, requests.request()));
        let conn = graceful.watch(server.serve_connection(io, service).into_owned());
        tokio::spawn(async move {
            let _slot = slot;
            // A client that goes away mid-request is not an error of ours;
            // a connection past its time limit is dropped (closed).
            tokio::select! {
                _ = conn => {}
                () = watch.expired() => {}
            }
        });
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

async fn handle(
    proxy: Arc<Proxy>,
    req: Request<Incoming>,
    request: InFlight,
) -> Result<Response<Tracked<ResponseBody>>, Infallible> {
    let answer = forward(&proxy, req).await.unwrap_or_else(|answer| answer);
    Ok(answer.map(|body| Tracked::new(body, request)))
}

/// Sends one request through the cache; `Err` is an answer of our own.
async fn forward(proxy: &Proxy, req: Request<Incoming>) -> Result<Answer, Answer> {
    let (parts, body) = req.into_parts();
    if let Some(answer) = screen::screen(&parts) {
        return Err(answer);
    }
    let url = proxy
        .upstream
        .target(&parts.uri)
        .map_err(|e| own_answer(StatusCode::BAD_REQUEST, &e.to_string()))?;
    let mut headers = parts.headers;
    drop_hop_by_hop(&mut headers);
    // The upstream's own host goes in its place.
    headers.remove(header::HOST);
    let head = parts.method == Method::HEAD;
    let cached_method = proxy.client.caches_method(&parts.method);
    let request = proxy.client.request(parts.method, &url).headers(headers);
    let request = if cached_method {
        // Part of the cache key: read whole, within the limits.
        let body = budget::read_whole(body, proxy.max_body_size, &proxy.budget, proxy.body_timeout)
            .await
            .map_err(|e| e.answer())?;
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
