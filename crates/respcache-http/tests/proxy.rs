//! [`Proxy`] as a library: embedded in a program's own hyper server (or
//! called directly as a tower `Service`), in front of a local counting
//! origin, without the `respcache` command. Every server is real and on
//! 127.0.0.1; every wait is bounded.

// Tests assert: a failed call is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use respcache_conformance::origin::{Origin, Reply};
use respcache_core::MemoryBackend;
use respcache_http::proxy::UpstreamError;
use respcache_http::{ErrorKind, Proxy, ProxyBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// Every bounded wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// A task that is aborted when dropped.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The origin (the test kit's): counts requests, keeps their headers, and
/// answers `hello N` cacheable for a minute, with hop-by-hop headers of
/// its own that must not reach the proxy's client.
async fn start_origin() -> Origin {
    let hits = AtomicUsize::new(0);
    Origin::start(move |_| {
        let n = hits.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::ok(format!("hello {n}"))
            .header("cache-control", "max-age=60")
            .header("content-type", "text/plain")
            .header("connection", "x-origin-hop")
            .header("x-origin-hop", "per connection")
            .header("proxy-authenticate", "Basic realm=origin")
            .header("x-end-to-end", "kept")
    })
    .await
}

/// A proxy in front of `upstream` over a fresh memory backend.
async fn proxy(upstream: &str, f: impl FnOnce(ProxyBuilder) -> ProxyBuilder) -> Proxy {
    f(Proxy::builder(upstream).unwrap())
        .build(Arc::new(MemoryBackend::new()))
        .await
        .unwrap()
}

/// The program's own server: hyper-util's `auto` connections on
/// 127.0.0.1:0, each request handed to the proxy, as the `Proxy` docs show.
async fn serve(proxy: Proxy) -> (SocketAddr, Task) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let proxy = proxy.clone();
            let service = service_fn(move |request| proxy.clone().oneshot(request));
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, Task(task))
}

/// A GET through a plain hyper-util client: status, headers, body.
async fn get(url: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut request = Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(WAIT, client.request(request.body(Empty::new()).unwrap()))
        .await
        .expect("an answer in time")
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(WAIT, body.collect())
        .await
        .expect("a body in time")
        .unwrap()
        .to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// Sends `request` as raw bytes (targets a client library would refuse or
/// rewrite) and returns the status of the answer.
async fn raw_status(addr: SocketAddr, request: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        // Bounded: at most 64 reads of the head.
        for _ in 0..64 {
            let n = stream.read(&mut buf).await.unwrap();
            head.extend_from_slice(&buf[..n]);
            if n == 0 || head.windows(2).any(|w| w == b"\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("an answer in time");
    let line = String::from_utf8_lossy(&head);
    let status = line.split(' ').nth(1).expect("a status line");
    status.parse().expect("a numeric status")
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map_or("", |v| v.to_str().unwrap_or_default())
}

#[tokio::test]
async fn an_embedded_proxy_answers_the_second_get_from_the_cache() {
    let origin = start_origin().await;
    let (addr, _server) = serve(proxy(&origin.url(""), |b| b).await).await;
    let url = format!("http://{addr}/tracks/7?market=SE");

    let (status, first, body) = get(&url, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, "hello 1");
    let cache_status = header(&first, "cache-status");
    assert!(
        cache_status.starts_with("respcache; fwd=") && cache_status.contains("stored"),
        "{cache_status}"
    );

    let (status, second, body) = get(&url, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, "hello 1", "the stored answer");
    let cache_status = header(&second, "cache-status");
    assert!(cache_status.starts_with("respcache; hit"), "{cache_status}");
    assert_eq!(origin.total(), 1, "one upstream request for two GETs");
}

#[tokio::test]
async fn a_path_that_climbs_above_the_base_path_is_400_and_not_forwarded() {
    let origin = start_origin().await;
    let upstream = format!("{}/api/v1", origin.url(""));
    let (addr, _server) = serve(proxy(&upstream, |b| b).await).await;
    for target in [
        "/../admin",
        "/../../admin",
        "/%2e%2e/admin",
        "/a/..%2f..%2fadmin",
        "/a/..%5C..%5Cadmin",
    ] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: proxy.test\r\n\r\n");
        assert_eq!(raw_status(addr, &request).await, 400, "{target}");
    }
    assert_eq!(origin.total(), 0, "no escape reached the upstream");
    // Dot segments within the base are fine.
    let (status, _, body) = get(&format!("http://{addr}/a/../b"), &[]).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "hello 1"));
}

#[tokio::test]
async fn connect_is_501_and_options_asterisk_is_answered_by_the_proxy() {
    let origin = start_origin().await;
    let (addr, _server) = serve(proxy(&origin.url(""), |b| b).await).await;
    let connect = "CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n\r\n";
    assert_eq!(raw_status(addr, connect).await, 501);
    let options = "OPTIONS * HTTP/1.1\r\nHost: proxy.test\r\n\r\n";
    assert_eq!(raw_status(addr, options).await, 200);
    let no_host = "GET / HTTP/1.1\r\n\r\n";
    assert_eq!(raw_status(addr, no_host).await, 400);
    assert_eq!(origin.total(), 0);
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded_either_way() {
    let origin = start_origin().await;
    let (addr, _server) = serve(proxy(&origin.url(""), |b| b).await).await;
    let (status, answer, _) = get(
        &format!("http://{addr}/hop"),
        &[
            ("connection", "x-client-hop"),
            ("x-client-hop", "per connection"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("te", "trailers"),
            ("x-end-to-end", "kept"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let seen = origin.last().unwrap().headers;
    for hop in ["x-client-hop", "keep-alive", "proxy-authorization", "te"] {
        assert!(
            seen.get(hop).is_none(),
            "{hop} reached the upstream: {seen:?}"
        );
    }
    assert_eq!(header(&seen, "x-end-to-end"), "kept");
    // The upstream's own hop-by-hop headers stop at the proxy too.
    for hop in ["x-origin-hop", "proxy-authenticate"] {
        assert!(
            answer.get(hop).is_none(),
            "{hop} reached the client: {answer:?}"
        );
    }
    assert_eq!(header(&answer, "x-end-to-end"), "kept");
}

#[tokio::test]
async fn called_directly_an_unreachable_upstream_is_502_with_the_error_attached() {
    // A port nothing listens on: bound, then closed.
    let port = respcache_conformance::net::spare_port().unwrap();
    let proxy = proxy(&format!("http://127.0.0.1:{port}"), |b| {
        b.timeout(Duration::from_secs(5))
    })
    .await;
    let request = Request::get("/x")
        .header("host", "proxy.test")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let answer = tokio::time::timeout(WAIT, proxy.oneshot(request))
        .await
        .expect("an answer in time")
        .unwrap();
    assert_eq!(answer.status(), 502);
    let failure = answer
        .extensions()
        .get::<UpstreamError>()
        .expect("the upstream error in the extensions");
    assert_eq!(failure.error().kind(), ErrorKind::Connection);
    assert_eq!(answer.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn called_directly_a_get_body_over_the_limit_is_413_and_not_forwarded() {
    let origin = start_origin().await;
    let proxy = proxy(&origin.url(""), |b| b.max_body_size(16)).await;
    let request = Request::get("/search")
        .header("host", "proxy.test")
        .body(Full::new(Bytes::from(vec![b'x'; 17])))
        .unwrap();
    let answer = tokio::time::timeout(WAIT, proxy.clone().oneshot(request))
        .await
        .expect("an answer in time")
        .unwrap();
    assert_eq!(answer.status(), 413);
    assert_eq!(origin.total(), 0);
    // Within the limit it goes through, and is a cache key like any other.
    let request = Request::get("/search")
        .header("host", "proxy.test")
        .body(Full::new(Bytes::from_static(b"q=abc")))
        .unwrap();
    let answer = proxy.oneshot(request).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(origin.total(), 1);
}

#[test]
fn an_upstream_url_with_credentials_is_refused_without_showing_them() {
    let e = Proxy::builder("http://user:hunter2@origin.test/").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidUrl);
    assert!(!e.to_string().contains("hunter2"), "{e}");
    for bad in ["ftp://origin.test/", "http://origin.test/?q=1", "not a url"] {
        assert!(Proxy::builder(bad).is_err(), "{bad}");
    }
}

/// RFC 9111 §4.2.2: `public` lets a cache give any final status a
/// heuristic lifetime (from `Last-Modified`); without it, only the
/// heuristically cacheable statuses get one.
#[tokio::test]
async fn a_public_answer_of_any_status_is_reused_on_a_heuristic_lifetime() {
    let origin = Origin::start(|seen| {
        let reply = Reply::ok("unknown").with_status(599).header(
            "last-modified",
            respcache_conformance::origin::http_date(-100_000),
        );
        if seen.path == "/public" {
            reply.header("cache-control", "public")
        } else {
            reply
        }
    })
    .await;
    for shared in [false, true] {
        let (addr, _server) = serve(proxy(&origin.url(""), |b| b.shared(shared)).await).await;
        for path in ["/public", "/not-public"] {
            let before = origin.count(path);
            for _ in 0..2 {
                let (status, _, body) = get(&format!("http://{addr}{path}"), &[]).await;
                assert_eq!((status.as_u16(), body.as_str()), (599, "unknown"));
            }
            let asked = origin.count(path) - before;
            let want = if path == "/public" { 1 } else { 2 };
            assert_eq!(asked, want, "{path}, shared: {shared}");
        }
    }
}

/// RFC 9110 §9.3.3: an answer to a `POST` with explicit freshness whose
/// `Content-Location` names the request's URL is stored for later `GET`s of
/// it; one naming another URL, without explicit freshness, or not a success
/// (a `500`), is not.
#[tokio::test]
async fn a_post_answer_naming_its_own_url_answers_the_next_get() {
    let origin = Origin::start(|seen| {
        let reply = Reply::ok(format!("{} {}", seen.method, seen.path));
        match seen.path.as_str() {
            "/itself" => reply
                .header("cache-control", "max-age=3600")
                .header("content-location", "/itself"),
            "/other" => reply
                .header("cache-control", "max-age=3600")
                .header("content-location", "/elsewhere"),
            "/failed" => reply
                .with_status(500)
                .header("cache-control", "max-age=3600")
                .header("content-location", "/failed"),
            _ => reply.header("content-location", "/no-freshness"),
        }
    })
    .await;
    let (addr, _server) = serve(proxy(&origin.url(""), |b| b).await).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    for path in ["/itself", "/other", "/no-freshness", "/failed"] {
        let url = format!("http://{addr}{path}");
        let post = Request::post(&url)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(b"12345")))
            .unwrap();
        let answer = tokio::time::timeout(WAIT, client.request(post))
            .await
            .expect("an answer in time")
            .unwrap();
        let want = if path == "/failed" { 500 } else { 200 };
        assert_eq!(answer.status(), want, "{path}");
        let stored = header(answer.headers(), "cache-status").contains("stored");
        assert_eq!(stored, path == "/itself", "{path}: POST's Cache-Status");
        let (status, headers, body) = get(&url, &[]).await;
        assert_eq!(status, want, "{path}");
        let cache_status = header(&headers, "cache-status");
        if path == "/itself" {
            assert_eq!(body, "POST /itself", "the POST's answer");
            assert!(cache_status.starts_with("respcache; hit"), "{cache_status}");
            assert_eq!(origin.count(path), 1, "{path}");
        } else {
            assert_eq!(body, format!("GET {path}"));
            assert_eq!(origin.count(path), 2, "{path}");
        }
    }
}

/// A proxy passes redirects back: sharing a cache with a client that
/// follows them (and so keeps a pointer from the redirecting URL to the
/// final one), it still answers the redirecting URL with the redirect,
/// never with the final URL's stored answer.
#[tokio::test]
async fn a_proxy_never_answers_through_another_clients_redirect_pointer() {
    let origin = Origin::start(|seen| match seen.path.as_str() {
        "/moved" => Reply::status(302).header("location", "/target"),
        _ => Reply::ok("target").header("cache-control", "max-age=3600"),
    })
    .await;
    let backend: Arc<dyn respcache_core::Backend> = Arc::new(MemoryBackend::new());
    let following = respcache_http::CachedClient::builder()
        .cache_name("shared")
        .build(Arc::clone(&backend))
        .await
        .unwrap();
    let followed = following.get(&origin.url("/moved")).send().await.unwrap();
    assert_eq!(followed.text(), "target", "the client follows the redirect");
    let again = following.get(&origin.url("/moved")).send().await.unwrap();
    assert!(again.from_cache(), "and answers it through its pointer");

    let proxy = Proxy::builder(&origin.url(""))
        .unwrap()
        .client(|c| c.cache_name("shared"))
        .build(backend)
        .await
        .unwrap();
    let (addr, _server) = serve(proxy).await;
    let (status, headers, _) = get(&format!("http://{addr}/moved"), &[]).await;
    assert_eq!(status, 302, "the proxy passes the redirect back");
    assert_eq!(header(&headers, "location"), "/target");
}

/// An answer already stale when it arrives (its `Age` past its `max-age`),
/// with nothing to revalidate it with, is still kept by the proxy: it may
/// answer a request whose `max-stale` allows it, or stand in while the
/// upstream is unreachable — as `CachedClient` (which reads bodies whole)
/// already kept it.
#[tokio::test]
async fn an_answer_stale_on_arrival_is_kept_for_max_stale() {
    let origin = Origin::start(|_| {
        Reply::ok("old")
            .header("cache-control", "max-age=1500")
            .header("age", "2000")
    })
    .await;
    let (addr, _server) = serve(proxy(&origin.url(""), |b| b).await).await;
    let url = format!("http://{addr}/aged");
    let (status, _, body) = get(&url, &[]).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "old"));
    let (status, headers, body) = get(&url, &[("cache-control", "max-stale=1000")]).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "old"));
    let cache_status = header(&headers, "cache-status");
    assert!(cache_status.starts_with("respcache; hit"), "{cache_status}");
    assert_eq!(origin.count("/aged"), 1);
    // Without max-stale it is stale: the upstream is asked.
    let _ = get(&url, &[]).await;
    assert_eq!(origin.count("/aged"), 2);
}
