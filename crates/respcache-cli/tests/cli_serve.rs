//! `respcache serve`: the built binary as a caching reverse proxy in front
//! of a local hyper origin, with a temporary SQLite cache, driven by a
//! plain hyper client.

// Test helpers assert: a failed call is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use respcache_conformance::origin::{Origin, Reply, Seen};
use tokio::net::TcpListener;
use tokio::sync::Notify;

mod serve_common;
use serve_common::Proxy;

/// Every bounded wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// A local origin (the test kit's) that records every request. Paths:
/// - `/fresh`: `max-age=60`;
/// - `/private`: `private, max-age=60`;
/// - `/nostore`: `no-store`;
/// - `/etag`: `max-age=0` with `ETag: "v1"`; `If-None-Match: "v1"` gets 304;
/// - `/redirect`: 302 to `/fresh`;
/// - `/flaky`: `max-age=0, stale-if-error=60` the first time, then 503;
/// - `/drain`: answers after 700 ms;
/// - anything else: 200, `no-store`, body `PATH METHOD`.
async fn start_origin() -> Origin {
    Origin::start(answer).await
}

fn answer(seen: &Seen) -> Reply {
    let ok = |cache_control: &str| Reply::ok("").header("cache-control", cache_control);
    let reply = match seen.path.as_str() {
        "/fresh" => ok("max-age=60"),
        "/private" => ok("private, max-age=60"),
        "/nostore" => ok("no-store"),
        "/etag" => {
            if seen
                .headers
                .get("if-none-match")
                .is_some_and(|v| v == "\"v1\"")
            {
                return ok("max-age=0").header("etag", "\"v1\"").with_status(304);
            }
            ok("max-age=0").header("etag", "\"v1\"")
        }
        "/flaky" => {
            if seen.n > 1 {
                return Reply::ok("down").with_status(503);
            }
            ok("max-age=0, stale-if-error=60")
        }
        "/big" => ok("max-age=60"),
        "/redirect" => {
            return Reply::ok("moved")
                .with_status(302)
                .header("location", "/fresh");
        }
        "/drain" => ok("no-store").delay(Duration::from_millis(700)),
        _ => ok("no-store"),
    };
    let body = if seen.path == "/big" {
        "b".repeat(100)
    } else {
        format!("{} {}", seen.path, seen.method)
    };
    Reply {
        body: Bytes::from(body),
        ..reply
    }
    .header("x-origin", "yes")
    .header("connection", "x-hop-response")
    .header("x-hop-response", "must not pass")
    .header("keep-alive", "timeout=5")
}

/// An answer as the test client read it.
struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends one request (bounded wait).
async fn send(req: Request<Full<Bytes>>) -> Got {
    let response = tokio::time::timeout(WAIT, client().request(req))
        .await
        .expect("an answer in time")
        .expect("an answer");
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(WAIT, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    Got {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn get(url: &str) -> Got {
    send(Request::get(url).body(Full::new(Bytes::new())).unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cacheable_get_is_a_miss_then_a_hit_with_age() {
    let origin = start_origin().await;
    let proxy = Proxy::start(&origin.url(""), &[]);
    assert!(
        proxy.start_line.contains(&origin.url("")),
        "{}",
        proxy.start_line
    );
    assert!(proxy.start_line.contains("proxy"), "{}", proxy.start_line);

    let first = get(&format!("{}/fresh", proxy.url)).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, "/fresh GET");
    let status = first.header("cache-status");
    assert!(status.starts_with("respcache"), "{status}");
    assert!(!status.contains("; hit"), "{status}");
    assert!(
        status.contains("fwd=uri-miss") && status.contains("stored"),
        "{status}"
    );

    let second = get(&format!("{}/fresh", proxy.url)).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body, "/fresh GET");
    assert_eq!(second.header("x-origin"), "yes");
    for got in [&first, &second] {
        assert!(got.headers.get("x-hop-response").is_none());
        assert!(got.headers.get("keep-alive").is_none());
    }
    assert_eq!(second.header("cache-control"), "max-age=60");
    assert!(
        second.header("cache-status").starts_with("respcache; hit"),
        "{}",
        second.header("cache-status")
    );
    let age: u64 = second.header("age").parse().expect("a numeric Age");
    assert!(age < 60, "{age}");
    assert_eq!(origin.seen_at("/fresh").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_store_answer_is_never_cached() {
    let origin = start_origin().await;
    let proxy = Proxy::start(&origin.url(""), &[]);
    for _ in 0..3 {
        let got = get(&format!("{}/nostore", proxy.url)).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, "/nostore GET");
        let status = got.header("cache-status");
        assert!(
            !status.contains("hit") && !status.contains("stored"),
            "{status}"
        );
    }
    assert_eq!(origin.seen_at("/nostore").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_answer_is_revalidated_and_the_client_gets_the_body() {
    let origin = start_origin().await;
    let proxy = Proxy::start(&origin.url(""), &[]);
    let first = get(&format!("{}/etag", proxy.url)).await;
    assert_eq!(first.status, 200);
    let second = get(&format!("{}/etag", proxy.url)).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body, "/etag GET");
    assert_eq!(second.header("etag"), "\"v1\"");
    let status = second.header("cache-status");
    assert!(status.contains("fwd-status=304"), "{status}");
    assert!(status.contains("detail=revalidated"), "{status}");
    let seen = origin.seen_at("/etag");
    assert_eq!(seen.len(), 2);
    assert!(seen[0].headers.get("if-none-match").is_none());
    assert_eq!(seen[1].headers["if-none-match"], "\"v1\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_and_extension_methods_reach_the_origin_with_body_and_headers() {
    let origin = start_origin().await;
    let proxy = Proxy::start(&origin.url(""), &[]);
    for method in ["POST", "PURGEX"] {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}/echo?b=2&a=1", proxy.url))
            .header("authorization", "Bearer secret-token")
            .header("x-custom", "one")
            .header("x-custom", "two")
            .header("content-type", "application/json")
            .header("connection", "x-hop")
            .header("x-hop", "must not pass")
            .header("proxy-authorization", "Basic cHJveHk=")
            .body(Full::new(Bytes::from_static(br#"{"n":1}"#)))
            .unwrap();
        let got = send(req).await;
        assert_eq!(got.status, 200, "{method}");
        assert_eq!(got.body, format!("/echo {method}"));
        assert!(got.header("cache-status").starts_with("respcache"));
    }
    let seen = origin.seen_at("/echo");
    assert_eq!(seen.len(), 2);
    for (s, method) in seen.iter().zip(["POST", "PURGEX"]) {
        assert_eq!(s.method.as_str(), method);
        assert_eq!(s.body, r#"{"n":1}"#);
        assert_eq!(s.headers["authorization"], "Bearer secret-token");
        let custom: Vec<_> = s.headers.get_all("x-custom").iter().collect();
        assert_eq!(custom, ["one", "two"]);
        assert_eq!(s.headers["content-type"], "application/json");
        assert!(s.headers.get("x-hop").is_none(), "{:?}", s.headers);
        assert!(s.headers.get("proxy-authorization").is_none());
        assert_eq!(
            s.headers["host"],
            origin.url("").trim_start_matches("http://")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_passed_back_not_followed() {
    let origin = start_origin().await;
    let proxy = Proxy::start(&origin.url(""), &[]);
    let got = get(&format!("{}/redirect", proxy.url)).await;
    assert_eq!(got.status, 302);
    assert_eq!(got.header("location"), "/fresh");
    assert_eq!(got.body, "moved");
    assert_eq!(origin.seen_at("/redirect").len(), 1);
    assert!(origin.seen_at("/fresh").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_answers_are_cached_only_by_a_private_cache() {
    let origin = start_origin().await;
    let private = Proxy::start(&origin.url(""), &[]);
    get(&format!("{}/private", private.url)).await;
    let second = get(&format!("{}/private", private.url)).await;
    assert!(second.header("cache-status").contains("hit"));
    assert_eq!(origin.seen_at("/private").len(), 1);

    let shared = Proxy::start(&origin.url(""), &["--shared"]);
    for _ in 0..2 {
        let got = get(&format!("{}/private", shared.url)).await;
        assert_eq!(got.status, 200);
        assert!(!got.header("cache-status").contains("hit"));
    }
    assert_eq!(origin.seen_at("/private").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_down_gives_502_quickly() {
    // A port that was just free: nothing listens there.
    let port = respcache_conformance::net::spare_port().unwrap();
    let proxy = Proxy::start(&format!("http://127.0.0.1:{port}"), &[]);
    let started = Instant::now();
    let got = get(&format!("{}/anything", proxy.url)).await;
    assert_eq!(got.status, 502);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(got.header("cache-status").starts_with("respcache"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_drops_the_connection_gives_502() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    let proxy = Proxy::start(&url, &[]);
    let got = get(&format!("{}/x", proxy.url)).await;
    assert_eq!(got.status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_shuts_the_proxy_down_with_exit_code_0() {
    let origin = start_origin().await;
    // One worker (a current-thread runtime) and several (a multi-thread one).
    for workers in ["1", "3"] {
        let proxy = Proxy::start(&origin.url(""), &["--workers", workers]);
        assert_eq!(get(&format!("{}/fresh", proxy.url)).await.status, 200);
        assert_eq!(proxy.interrupt(), Some(0), "--workers {workers}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_lets_a_request_in_flight_finish() {
    let origin = start_origin().await;
    for workers in ["1", "3"] {
        let proxy = Proxy::start(&origin.url(""), &["--workers", workers]);
        let url = format!("{}/drain", proxy.url);
        let before = origin.seen_at("/drain").len();
        let pending = tokio::spawn(async move { get(&url).await });
        let deadline = Instant::now() + WAIT;
        while origin.seen_at("/drain").len() == before && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let code = tokio::task::spawn_blocking(move || proxy.interrupt())
            .await
            .unwrap();
        let got = pending.await.unwrap();
        assert_eq!(got.status, 200, "--workers {workers}");
        assert_eq!(got.body, "/drain GET");
        assert_eq!(code, Some(0), "--workers {workers}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upstream_gives_the_stale_answer_where_stale_if_error_allows() {
    let origin = start_origin().await;
    let proxy = Proxy::start(&origin.url(""), &[]);
    let first = get(&format!("{}/flaky", proxy.url)).await;
    assert_eq!(first.status, 200);
    let second = get(&format!("{}/flaky", proxy.url)).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body, "/flaky GET");
    let status = second.header("cache-status");
    assert!(status.contains("fwd-status=503"), "{status}");
    assert!(status.contains("detail=stale-if-error"), "{status}");
    assert_eq!(origin.seen_at("/flaky").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_is_answered_from_a_stored_get_with_its_length() {
    let origin = start_origin().await;
    let proxy = Proxy::start(&origin.url(""), &[]);
    get(&format!("{}/fresh", proxy.url)).await;
    let head = send(
        Request::head(format!("{}/fresh", proxy.url))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), "10");
    assert!(head.header("cache-status").contains("hit"));
    assert_eq!(origin.seen_at("/fresh").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_body_over_the_limit_gets_413_a_post_body_streams_on() {
    let origin = start_origin().await;
    let proxy = Proxy::start(&origin.url(""), &["--max-body-size", "16"]);
    // A GET body is part of the cache key: read whole, so bounded.
    let req = Request::get(format!("{}/echo", proxy.url))
        .body(Full::new(Bytes::from(vec![b'x'; 17])))
        .unwrap();
    assert_eq!(send(req).await.status, 413);
    assert!(origin.seen_at("/echo").is_empty());
    // Other methods' bodies stream to the upstream whatever their size.
    let req = Request::post(format!("{}/echo", proxy.url))
        .body(Full::new(Bytes::from(vec![b'x'; 17])))
        .unwrap();
    assert_eq!(send(req).await.status, 200);
    let seen = origin.seen_at("/echo");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, vec![b'x'; 17]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_gives_504_after_the_timeout() {
    let hole = respcache_conformance::net::BlackHole::start()
        .await
        .unwrap();
    let proxy = Proxy::start(&hole.http_url(), &["--timeout", "500ms"]);
    let started = Instant::now();
    let got = get(&format!("{}/slow", proxy.url)).await;
    assert_eq!(got.status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_over_the_body_limit_is_passed_on_but_not_stored() {
    let origin = start_origin().await;
    let proxy = Proxy::start(&origin.url(""), &["--max-body-size", "64"]);
    for _ in 0..2 {
        let got = get(&format!("{}/big", proxy.url)).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, "b".repeat(100));
        assert!(!got.header("cache-status").contains("hit"));
    }
    assert_eq!(origin.seen_at("/big").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_proxy_does_not_serve_one_users_authorized_answer_to_another() {
    let origin = start_origin().await;
    let proxy = Proxy::start(&origin.url(""), &["--shared"]);
    for token in ["Bearer alice", "Bearer bob"] {
        let req = Request::get(format!("{}/fresh", proxy.url))
            .header("authorization", token)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let got = send(req).await;
        assert_eq!(got.status, 200);
        assert!(!got.header("cache-status").contains("hit"), "{token}");
    }
    let seen = origin.seen_at("/fresh");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].headers["authorization"], "Bearer bob");
}

/// A request or response body fed chunk by chunk through the sender.
fn channel_body() -> (
    tokio::sync::mpsc::Sender<Bytes>,
    http_body_util::combinators::BoxBody<Bytes, Infallible>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(hyper::body::Frame::data(chunk)), rx))
    });
    (tx, http_body_util::StreamBody::new(stream).boxed())
}

/// An upstream for the streaming tests:
/// - `/chunks`: `max-age=60` (storable by its headers), chunked: 1 MiB of
///   `a`, then, once `gate` opens, 1 MiB of `b`;
/// - `/huge`: `size` bytes with a `Content-Length`, sent 64 KiB at a time;
///   `/huge-chunked` the same without one (storable by its headers: the
///   proxy starts reading it to store it and must give up at the limit);
/// - `/upload`: reads the request body, notifies `got_first` after its
///   first chunk, answers with the byte count.
struct StreamingUpstream {
    url: String,
    origin: Origin,
    gate: Arc<Notify>,
    got_first: Arc<Notify>,
}

impl StreamingUpstream {
    async fn start(size: usize) -> StreamingUpstream {
        let (gate, got_first) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (g, f) = (gate.clone(), got_first.clone());
        let origin =
            Origin::streaming(move |req| stream_answer(req, size, g.clone(), f.clone())).await;
        StreamingUpstream {
            url: origin.url(""),
            origin,
            gate,
            got_first,
        }
    }
}

async fn stream_answer(
    req: Request<Incoming>,
    size: usize,
    gate: Arc<Notify>,
    got_first: Arc<Notify>,
) -> Response<http_body_util::combinators::BoxBody<Bytes, Infallible>> {
    let (tx, body) = channel_body();
    let mut answer = Response::new(body);
    match req.uri().path() {
        "/chunks" => {
            answer.headers_mut().insert(
                "cache-control",
                hyper::header::HeaderValue::from_static("max-age=60"),
            );
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from(vec![b'a'; 1 << 20])).await;
                gate.notified().await;
                let _ = tx.send(Bytes::from(vec![b'b'; 1 << 20])).await;
            });
        }
        path @ ("/huge" | "/huge-chunked") => {
            answer.headers_mut().insert(
                "cache-control",
                hyper::header::HeaderValue::from_static("max-age=60"),
            );
            if path == "/huge" {
                answer.headers_mut().insert(
                    "content-length",
                    hyper::header::HeaderValue::from(size as u64),
                );
            }
            tokio::spawn(async move {
                let chunk = Bytes::from(vec![b'h'; 64 * 1024]);
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if tx.send(chunk.slice(..n)).await.is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        }
        _ => {
            let mut body = req.into_body();
            let mut total = 0usize;
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    if total == 0 {
                        got_first.notify_one();
                    }
                    total += data.len();
                }
            }
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from(format!("got {total}"))).await;
            });
        }
    }
    answer
}

/// Sends `req` and returns the head and the unread body (bounded wait for
/// the head).
async fn open(
    req: Request<http_body_util::combinators::BoxBody<Bytes, Infallible>>,
) -> Response<Incoming> {
    let client: Client<HttpConnector, _> = Client::builder(TokioExecutor::new()).build_http();
    tokio::time::timeout(WAIT, client.request(req))
        .await
        .expect("the head in time")
        .expect("an answer")
}

/// Reads `body` to its end, counting bytes and checking each is `byte`.
async fn count_body(mut body: Incoming, byte: u8) -> usize {
    let mut total = 0;
    while let Some(frame) = tokio::time::timeout(WAIT, body.frame()).await.unwrap() {
        if let Ok(data) = frame.unwrap().into_data() {
            assert!(data.iter().all(|b| *b == byte));
            total += data.len();
        }
    }
    total
}

/// The peak resident memory of process `pid`, in bytes (Linux).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_streams_through_while_the_upstream_is_still_sending() {
    let upstream = StreamingUpstream::start(0).await;
    let proxy = Proxy::start(&upstream.url, &["--max-body-size", "65536"]);
    for round in 0..2 {
        let req = Request::get(format!("{}/chunks", proxy.url))
            .body(Full::new(Bytes::new()).boxed())
            .unwrap();
        let answer = open(req).await;
        assert_eq!(answer.status(), 200);
        let status = answer.headers()["cache-status"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            !status.contains("hit") && !status.contains("stored"),
            "{status}"
        );
        let mut body = answer.into_body();
        // The first megabyte arrives while the upstream holds the second.
        let mut first = 0;
        while first < 1 << 20 {
            let frame = tokio::time::timeout(WAIT, body.frame())
                .await
                .expect("the first part streams before the upstream finishes")
                .unwrap()
                .unwrap();
            if let Ok(data) = frame.into_data() {
                assert!(data.iter().all(|b| *b == b'a'), "round {round}");
                first += data.len();
            }
        }
        assert_eq!(first, 1 << 20);
        upstream.gate.notify_one();
        assert_eq!(count_body(body, b'b').await, 1 << 20);
    }
    // Larger than --max-body-size: passed on both times, never stored.
    assert_eq!(upstream.origin.total(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_body_passes_through_in_bounded_memory() {
    const SIZE: usize = 256 << 20;
    let upstream = StreamingUpstream::start(SIZE).await;
    let proxy = Proxy::start(&upstream.url, &["--max-body-size", "1048576"]);
    let before = peak_rss(proxy.child.id());
    for path in ["/huge", "/huge-chunked"] {
        let req = Request::get(format!("{}{path}", proxy.url))
            .body(Full::new(Bytes::new()).boxed())
            .unwrap();
        let answer = open(req).await;
        assert_eq!(answer.status(), 200);
        if path == "/huge" {
            assert_eq!(
                answer.headers()["content-length"],
                SIZE.to_string().as_str()
            );
        }
        assert_eq!(count_body(answer.into_body(), b'h').await, SIZE, "{path}");
        let peak = peak_rss(proxy.child.id());
        assert!(
            peak < before + (64 << 20),
            "{path}: the proxy's peak memory grew from {before} to {peak} bytes relaying {SIZE}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_streams_to_the_upstream_whatever_its_size() {
    let upstream = StreamingUpstream::start(0).await;
    let proxy = Proxy::start(&upstream.url, &["--max-body-size", "1024"]);
    let (tx, body) = channel_body();
    let got_first = upstream.got_first.clone();
    let producer = tokio::spawn(async move {
        tx.send(Bytes::from(vec![b'u'; 300_000])).await.unwrap();
        // The rest only once the upstream has the first part: a proxy that
        // read the whole body before forwarding would wait forever.
        got_first.notified().await;
        tx.send(Bytes::from(vec![b'v'; 300_000])).await.unwrap();
    });
    let req = Request::put(format!("{}/upload", proxy.url))
        .body(body)
        .unwrap();
    let answer = open(req).await;
    assert_eq!(answer.status(), 200);
    let text = tokio::time::timeout(WAIT, answer.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(text, "got 600000");
    producer.await.unwrap();
}

// ---- streaming: failure paths (found in review) ----

type BoxedBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// An upstream (the test kit's streaming origin) whose answers `f` builds
/// from the request's index and the request; returns its URL and the
/// origin, which stops when dropped.
async fn upstream_with<F, Fut>(f: F) -> (String, Origin)
where
    F: Fn(usize, Request<Incoming>) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Response<BoxedBody>> + Send + 'static,
{
    let count = Arc::new(AtomicUsize::new(0));
    let origin = Origin::streaming(move |req| f(count.fetch_add(1, Ordering::SeqCst), req)).await;
    (origin.url(""), origin)
}

fn answer_with(headers: &[(&'static str, &str)], body: BoxedBody) -> Response<BoxedBody> {
    let mut r = Response::new(body);
    for (k, v) in headers {
        r.headers_mut()
            .insert(*k, hyper::header::HeaderValue::from_str(v).unwrap());
    }
    r
}

/// An upstream whose storable answer stalls mid-body (read whole to store
/// it, so nothing was sent yet): the stale answer, where stale-if-error
/// allows, as for an upstream that is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_falls_back_to_stale_if_error() {
    let (url, _origin) = upstream_with(|i, _req| async move {
        if i == 0 {
            return answer_with(
                &[("cache-control", "max-age=1, stale-if-error=600")],
                Full::new(Bytes::from_static(b"good")).boxed(),
            );
        }
        let (tx, body) = channel_body();
        tokio::spawn(async move {
            let _ = tx.send(Bytes::from_static(b"0123456789")).await;
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(tx);
        });
        answer_with(
            &[("cache-control", "max-age=60"), ("content-length", "100")],
            body,
        )
    })
    .await;
    let proxy = Proxy::start(&url, &["--timeout", "1s"]);
    let first = get(&format!("{}/sie", proxy.url)).await;
    assert_eq!(first.body, "good");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let second = get(&format!("{}/sie", proxy.url)).await;
    assert_eq!(
        (second.status, second.body.clone()),
        (StatusCode::OK, Bytes::from_static(b"good")),
        "cache-status: {}",
        second.header("cache-status")
    );
}

/// An upload that keeps flowing (a chunk every 100 ms) for longer than
/// --timeout is not cut off: the limit counts from its last chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_longer_than_the_timeout_that_never_idles_passes() {
    let (url, _origin) = upstream_with(|_, req| async move {
        let n = match req.into_body().collect().await {
            Ok(b) => b.to_bytes().len(),
            Err(_) => 0,
        };
        answer_with(&[], Full::new(Bytes::from(format!("got {n}"))).boxed())
    })
    .await;
    let proxy = Proxy::start(&url, &["--timeout", "1s"]);
    let (tx, body) = channel_body();
    tokio::spawn(async move {
        for _ in 0..20 {
            if tx.send(Bytes::from(vec![b'u'; 1000])).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let req = Request::put(format!("{}/upload", proxy.url))
        .body(body)
        .unwrap();
    let answer = open(req).await;
    let status = answer.status();
    let text = tokio::time::timeout(WAIT, answer.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(
        (status, text),
        (StatusCode::OK, Bytes::from_static(b"got 20000"))
    );
}

/// A client that goes away mid-stream: the proxy lets go of the upstream
/// (its connection closes) instead of holding it until --timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_stream_releases_the_upstream() {
    let released = Arc::new(Notify::new());
    let r = released.clone();
    let (url, _origin) = upstream_with(move |_, _req| {
        let r = r.clone();
        async move {
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from(vec![b'a'; 1000])).await;
                tx.closed().await;
                r.notify_one();
            });
            answer_with(&[("cache-control", "no-store")], body)
        }
    })
    .await;
    let proxy = Proxy::start(&url, &["--timeout", "60s"]);
    let req = Request::get(format!("{}/stall", proxy.url))
        .body(Full::new(Bytes::new()).boxed())
        .unwrap();
    let answer = open(req).await;
    let mut body = answer.into_body();
    let frame = tokio::time::timeout(WAIT, body.frame()).await.unwrap();
    assert!(frame.is_some());
    drop(body);
    tokio::time::timeout(Duration::from_secs(5), released.notified())
        .await
        .expect("the upstream connection is closed soon after the client left");
}

/// An upstream that stalls mid-body: the client must see an error (a body
/// cut short), never a clean end of a shorter body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_mid_stream_is_an_error_for_the_client() {
    for length in [None, Some("5000")] {
        let (url, _origin) = upstream_with(move |_, _req| async move {
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from(vec![b'a'; 1000])).await;
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(tx);
            });
            let mut h = vec![("cache-control", "no-store")];
            if let Some(l) = length {
                h.push(("content-length", l));
            }
            answer_with(&h, body)
        })
        .await;
        let proxy = Proxy::start(&url, &["--timeout", "1s"]);
        let req = Request::get(format!("{}/stall", proxy.url))
            .body(Full::new(Bytes::new()).boxed())
            .unwrap();
        let answer = open(req).await;
        let out = tokio::time::timeout(WAIT, answer.into_body().collect())
            .await
            .expect("the stall ends the body within the timeout");
        assert!(
            out.is_err(),
            "{length:?}: a truncated body read as complete"
        );
    }
}

/// A streamed POST still invalidates the stored GET of its URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_post_invalidates() {
    let (url, origin) = upstream_with(|_, req| async move {
        let m = req.method().clone();
        let _ = req.into_body().collect().await;
        answer_with(
            &[("cache-control", "max-age=600")],
            Full::new(Bytes::from(m.to_string())).boxed(),
        )
    })
    .await;
    let proxy = Proxy::start(&url, &[]);
    let a = get(&format!("{}/doc", proxy.url)).await;
    assert!(a.header("cache-status").contains("stored"));
    let (tx, body) = channel_body();
    tokio::spawn(async move {
        let _ = tx.send(Bytes::from_static(b"edit")).await;
    });
    let answer = open(
        Request::post(format!("{}/doc", proxy.url))
            .body(body)
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status(), 200);
    let _ = answer.into_body().collect().await;
    let b = get(&format!("{}/doc", proxy.url)).await;
    assert!(
        !b.header("cache-status").contains("hit"),
        "{}",
        b.header("cache-status")
    );
    assert_eq!(origin.total(), 3);
}

/// HEAD on a miss that is streamed keeps the upstream's Content-Length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_miss_keeps_content_length() {
    let (url, _origin) = upstream_with(|_, _req| async move {
        answer_with(
            &[("cache-control", "no-store"), ("content-length", "11")],
            Full::new(Bytes::from_static(b"hello world")).boxed(),
        )
    })
    .await;
    let proxy = Proxy::start(&url, &[]);
    let got = send(
        Request::head(format!("{}/h", proxy.url))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-length"), "11");
    assert!(got.body.is_empty());
}

/// Server-sent events through the proxy, with `Cache-Control: no-cache`
/// (what SSE servers commonly send) or no cache headers at all: each event
/// reaches the client as it comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_reaches_the_client_as_it_comes() {
    for cc in [Some("no-cache"), None] {
        let (url, _origin) = upstream_with(move |_, _req| async move {
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"data: one\n\n")).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
                drop(tx);
            });
            let mut h = vec![("content-type", "text/event-stream")];
            if let Some(cc) = cc {
                h.push(("cache-control", cc));
            }
            answer_with(&h, body)
        })
        .await;
        let proxy = Proxy::start(&url, &["--timeout", "20s"]);
        let req = Request::get(format!("{}/events", proxy.url))
            .body(Full::new(Bytes::new()).boxed())
            .unwrap();
        let client: Client<HttpConnector, _> = Client::builder(TokioExecutor::new()).build_http();
        let answer = tokio::time::timeout(Duration::from_secs(5), client.request(req))
            .await
            .unwrap_or_else(|_| panic!("cache-control {cc:?}: no head within 5 s"))
            .unwrap();
        let mut body = answer.into_body();
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .unwrap_or_else(|_| panic!("cache-control {cc:?}: no first event within 5 s"))
            .unwrap()
            .unwrap();
        assert_eq!(frame.into_data().unwrap(), "data: one\n\n");
    }
}

/// The value of the sample line `name{labels}` in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_in_prometheus_text_form() {
    let origin = start_origin().await;
    let proxy = Proxy::start(&origin.url(""), &["--metrics", "127.0.0.1:0"]);
    let metrics = proxy
        .start_line
        .split(", metrics ")
        .nth(1)
        .unwrap_or_else(|| panic!("no metrics address in {:?}", proxy.start_line))
        .trim()
        .to_owned();
    assert!(metrics.ends_with("/metrics"), "{metrics}");
    for _ in 0..3 {
        assert_eq!(get(&format!("{}/fresh", proxy.url)).await.status, 200);
    }
    assert_eq!(get(&format!("{}/nostore", proxy.url)).await.status, 200);

    let got = get(&metrics).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), "text/plain; version=0.0.4");
    let text = String::from_utf8(got.body.to_vec()).unwrap();
    let value =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(
        value(r#"respcache_http_requests_total{outcome="miss"}"#),
        2.0
    );
    assert_eq!(
        value(r#"respcache_http_requests_total{outcome="hit"}"#),
        2.0
    );
    assert_eq!(value("respcache_http_stored_total"), 1.0);
    assert_eq!(
        value(r#"respcache_http_not_stored_total{reason="streamed"}"#),
        1.0
    );
    assert_eq!(value("respcache_http_origin_requests_total"), 2.0);
    assert_eq!(value("respcache_http_origin_seconds_count"), 2.0);
    // Each request read the cache once (hits), the misses and the put too.
    assert!(value(r#"respcache_http_store_seconds_count{operation="get"}"#) >= 4.0);
    assert_eq!(
        value(r#"respcache_http_store_seconds_count{operation="put"}"#),
        1.0
    );
    assert!(
        text.contains("# TYPE respcache_http_store_seconds histogram"),
        "{text}"
    );

    let other = get(&metrics.replace("/metrics", "/other")).await;
    assert_eq!(other.status, 404);
}

/// Issue 16: a backend that cannot be reached at start does not stop the
/// proxy — it serves from the upstream, says so once, and uses the cache
/// once the backend answers (here a `redis-server` this test starts on the
/// port that was closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_that_is_down_at_start_does_not_stop_the_proxy() {
    let origin = start_origin().await;
    let port = respcache_conformance::net::spare_port().unwrap();
    let cache = format!("redis://127.0.0.1:{port}/0?cache=down");
    let proxy = Proxy::launch(&origin.url(""), &[], Some(&cache), None);
    let first = get(&format!("{}/fresh", proxy.url)).await;
    assert_eq!(first.status, 200);
    assert!(
        proxy.stderr().contains("cannot be opened yet"),
        "{}",
        proxy.stderr()
    );
    // Now the backend comes up; the proxy starts caching within a bound.
    let dir = tempfile::tempdir().unwrap();
    let mut redis = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let mut hit = false;
    while std::time::Instant::now() < deadline && !hit {
        tokio::time::sleep(Duration::from_millis(250)).await;
        hit = get(&format!("{}/fresh", proxy.url))
            .await
            .header("cache-status")
            .contains("hit");
    }
    let _ = redis.kill();
    let _ = redis.wait();
    assert!(hit, "no hit within 40 s of the backend coming up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_number_of_workers_serves_and_caches() {
    let origin = start_origin().await;
    for workers in ["1", "3"] {
        let proxy = Proxy::start(&origin.url(""), &["--workers", workers]);
        let path = format!("/fresh?workers={workers}");
        let first = get(&format!("{}{path}", proxy.url)).await;
        let second = get(&format!("{}{path}", proxy.url)).await;
        assert_eq!(first.status, 200, "{workers}");
        assert_eq!(second.status, 200, "{workers}");
        assert!(
            second.header("cache-status").starts_with("respcache; hit"),
            "--workers {workers}: {}",
            second.header("cache-status")
        );
    }
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_respcache"))
        .args([
            "serve",
            "--cache",
            "memory://",
            "--upstream",
            &origin.url(""),
        ])
        .args(["--workers", "0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--workers"), "{stderr}");
}
