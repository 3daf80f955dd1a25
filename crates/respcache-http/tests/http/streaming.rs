//! `send_streaming` and `body_stream`: bodies that pass through without
//! being held whole. Each test gates its origin so that a body held whole
//! (instead of streamed) would deadlock, and a time limit turns that into a
//! failure.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use respcache_conformance::origin::{Body, Origin, full};
use respcache_http::{CacheOutcome, ErrorKind, ResponseBody};
use tokio::sync::{Notify, mpsc};

use crate::{B, client, clock};

crate::backend_tests!(
    a_large_storable_body_streams_before_the_origin_finishes,
    a_body_the_cache_may_not_keep_streams_from_the_first_byte,
    a_content_length_over_the_limit_streams_at_once,
    a_small_storable_body_comes_whole_and_is_stored,
    a_request_body_streams_to_the_origin,
    a_streamed_request_body_of_a_cached_method_is_part_of_the_key,
    a_stalled_body_is_a_timeout,
    concurrent_streaming_requests_each_get_the_whole_body,
    a_redirect_that_would_resend_a_streamed_body_is_returned,
    answers_that_could_never_be_served_again_are_not_held_back,
    stale_if_error_covers_a_body_that_stalls_while_read_to_store,
    an_upload_that_keeps_moving_outlasts_the_time_limit,
    an_upload_that_stalls_is_a_timeout,
    concurrent_streaming_requests_for_a_small_storable_body_coalesce,
    a_request_body_too_large_to_key_goes_past_the_cache_streaming,
);

/// Must not take longer: a body held whole would deadlock on the gates.
const LIMIT: Duration = Duration::from_secs(10);

/// The kit's streaming origin, without an automatic `Date` (see
/// `origin.rs`: the client runs on a manual clock).
async fn streaming_origin<F, Fut>(f: F) -> Origin
where
    F: Fn(http::Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = http::Response<Body>> + Send + 'static,
{
    Origin::builder().date(false).streaming(f).await
}

/// A body fed chunk by chunk through the returned sender.
fn channel_body() -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    (tx, BodyExt::boxed(StreamBody::new(stream)))
}

fn response(headers: &[(&str, String)], body: Body) -> http::Response<Body> {
    let mut r = http::Response::new(body);
    for (k, v) in headers {
        r.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    r
}

/// `n` bytes of a repeating pattern that shows misplaced chunks.
fn pattern(n: usize, seed: u8) -> Bytes {
    (0..n)
        .map(|i| (i % 251) as u8 ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

/// An origin that sends `first`, waits for `gate`, then sends `second`
/// and ends; `headers` on every answer.
async fn gated_origin(
    headers: Vec<(&'static str, String)>,
    first: Bytes,
    second: Bytes,
    gate: Arc<Notify>,
) -> Origin {
    streaming_origin(move |_req| {
        let (headers, first, second, gate) =
            (headers.clone(), first.clone(), second.clone(), gate.clone());
        async move {
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let _ = tx.send(first).await;
                gate.notified().await;
                let _ = tx.send(second).await;
            });
            response(&headers, body)
        }
    })
    .await
}

/// Reads frames until at least `n` bytes are in.
async fn read_at_least(body: &mut ResponseBody, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        let frame = body.frame().await.expect("more body").expect("a frame");
        if let Ok(data) = frame.into_data() {
            got.extend_from_slice(&data);
        }
    }
    got
}

async fn a_large_storable_body_streams_before_the_origin_finishes(b: B) {
    let (first, second) = (pattern(1 << 20, 1), pattern(1 << 20, 2));
    let gate = Arc::new(Notify::new());
    // Storable by its headers, but chunked: its size shows only as it comes.
    let origin = gated_origin(
        vec![("cache-control", "max-age=600".into())],
        first.clone(),
        second.clone(),
        gate.clone(),
    )
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| b.max_body_size(256 * 1024)).await;
    let r = tokio::time::timeout(LIMIT, c.get(&origin.url("/big")).send_streaming())
        .await
        .expect("the head comes before the whole body")
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.outcome(), CacheOutcome::Miss);
    assert!(!r.from_cache());
    let mut body = r.into_body();
    assert!(!body.is_whole());
    let mut got = tokio::time::timeout(LIMIT, read_at_least(&mut body, first.len()))
        .await
        .expect("the first megabyte arrives while the origin holds the rest");
    gate.notify_one();
    let rest = tokio::time::timeout(LIMIT, body.bytes())
        .await
        .unwrap()
        .unwrap();
    got.extend_from_slice(&rest);
    assert_eq!(got.len(), 2 << 20);
    assert_eq!(&got[..1 << 20], &first[..]);
    assert_eq!(&got[1 << 20..], &second[..]);
    // Larger than the limit: passed on, not stored.
    gate.notify_one();
    let again = tokio::time::timeout(LIMIT, c.get(&origin.url("/big")).send())
        .await
        .unwrap()
        .unwrap();
    assert!(!again.from_cache());
    assert_eq!(again.bytes().len(), 2 << 20);
    assert_eq!(origin.total(), 2);
    assert_eq!(c.stats().stored, 0);
}

async fn a_body_the_cache_may_not_keep_streams_from_the_first_byte(b: B) {
    let gate = Arc::new(Notify::new());
    let origin = gated_origin(
        vec![("cache-control", "no-store".into())],
        Bytes::from_static(b"first "),
        Bytes::from_static(b"second"),
        gate.clone(),
    )
    .await;
    let clock = clock();
    // No size limit set: only the rules keep this body out of memory.
    let c = client(b, &clock, |b| b).await;
    let r = tokio::time::timeout(LIMIT, c.get(&origin.url("/live")).send_streaming())
        .await
        .expect("the head comes at once")
        .unwrap();
    let mut body = r.into_body();
    let got = tokio::time::timeout(LIMIT, read_at_least(&mut body, 6))
        .await
        .expect("the first chunk comes before the origin goes on");
    assert_eq!(got, b"first ");
    gate.notify_one();
    assert_eq!(body.bytes().await.unwrap(), "second");
}

async fn a_content_length_over_the_limit_streams_at_once(b: B) {
    let gate = Arc::new(Notify::new());
    let (first, second) = (pattern(1000, 3), pattern(4000, 4));
    let origin = gated_origin(
        vec![
            ("cache-control", "max-age=600".into()),
            ("content-length", "5000".into()),
        ],
        first.clone(),
        second.clone(),
        gate.clone(),
    )
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| b.max_body_size(2000)).await;
    let r = tokio::time::timeout(LIMIT, c.get(&origin.url("/sized")).send_streaming())
        .await
        .expect("a body over the limit by its length is not read first")
        .unwrap();
    assert_eq!(r.headers()["content-length"], "5000");
    let mut body = r.into_body();
    assert_eq!(hyper::body::Body::size_hint(&body).exact(), Some(5000));
    let got = tokio::time::timeout(LIMIT, read_at_least(&mut body, 1000))
        .await
        .unwrap();
    assert_eq!(got, first);
    gate.notify_one();
    assert_eq!(body.bytes().await.unwrap(), second);
    assert_eq!(c.stats().stored, 0);
}

async fn a_small_storable_body_comes_whole_and_is_stored(b: B) {
    let origin = streaming_origin(|_| async {
        response(&[("cache-control", "max-age=600".into())], full("tracks"))
    })
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| b.max_body_size(1024)).await;
    let first = c.get(&origin.url("/t")).send_streaming().await.unwrap();
    assert!(first.body().is_whole());
    assert!(first.cache_status().to_string().contains("stored"));
    assert_eq!(first.into_body().bytes().await.unwrap(), "tracks");
    let second = c.get(&origin.url("/t")).send_streaming().await.unwrap();
    assert!(second.from_cache());
    assert_eq!(second.outcome(), CacheOutcome::Hit);
    assert!(second.body().is_whole());
    let cached = second.into_cached().await.unwrap();
    assert_eq!(cached.bytes(), "tracks");
    assert_eq!(origin.total(), 1);
}

async fn a_request_body_streams_to_the_origin(b: B) {
    let got_first = Arc::new(Notify::new());
    let received = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let (g, r) = (got_first.clone(), received.clone());
    let origin = streaming_origin(move |req| {
        let (g, r) = (g.clone(), r.clone());
        async move {
            let mut body = req.into_body();
            let mut first = true;
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    r.lock().unwrap().extend_from_slice(&data);
                    if first {
                        first = false;
                        g.notify_one();
                    }
                }
            }
            let n = r.lock().unwrap().len();
            response(&[], full(format!("got {n}")))
        }
    })
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| b).await;
    let (tx, body) = channel_body();
    let (one, two) = (pattern(300_000, 5), pattern(300_000, 6));
    let (o, t) = (one.clone(), two.clone());
    let producer = tokio::spawn(async move {
        tx.send(o).await.unwrap();
        // The rest comes only once the origin has the first part: a client
        // that read the whole body before sending would wait forever.
        got_first.notified().await;
        tx.send(t).await.unwrap();
    });
    let r = tokio::time::timeout(
        LIMIT,
        c.post(&origin.url("/upload")).body_stream(body).send(),
    )
    .await
    .expect("the request body streamed")
    .unwrap();
    producer.await.unwrap();
    assert_eq!(r.text(), "got 600000");
    let all = received.lock().unwrap().clone();
    assert_eq!(&all[..300_000], &one[..]);
    assert_eq!(&all[300_000..], &two[..]);
    assert_eq!(r.outcome(), CacheOutcome::Bypass);
}

async fn a_streamed_request_body_of_a_cached_method_is_part_of_the_key(b: B) {
    let origin = streaming_origin(|req| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        response(
            &[("cache-control", "max-age=600".into())],
            full(format!("answer to {}", String::from_utf8_lossy(&body))),
        )
    })
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| b).await;
    let (tx, body) = channel_body();
    tx.send(Bytes::from_static(b"que")).await.unwrap();
    tx.send(Bytes::from_static(b"ry")).await.unwrap();
    drop(tx);
    let first = c
        .get(&origin.url("/search"))
        .body_stream(body)
        .send_streaming()
        .await
        .unwrap()
        .into_cached()
        .await
        .unwrap();
    assert_eq!(first.text(), "answer to query");
    // The same body given whole finds the same entry; another body does not.
    let same = c
        .get(&origin.url("/search"))
        .body("query")
        .send()
        .await
        .unwrap();
    assert!(same.from_cache());
    assert_eq!(same.text(), "answer to query");
    let other = c
        .get(&origin.url("/search"))
        .body("other")
        .send()
        .await
        .unwrap();
    assert!(!other.from_cache());
    assert_eq!(other.text(), "answer to other");
    assert_eq!(origin.total(), 2);
}

async fn a_stalled_body_is_a_timeout(b: B) {
    let gate = Arc::new(Notify::new());
    let origin = gated_origin(
        vec![("cache-control", "no-store".into())],
        Bytes::from_static(b"partial"),
        Bytes::from_static(b"never"),
        gate,
    )
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| b.timeout(Duration::from_millis(300))).await;
    let r = c.get(&origin.url("/stall")).send_streaming().await.unwrap();
    let mut body = r.into_body();
    assert_eq!(read_at_least(&mut body, 7).await, b"partial");
    let e = tokio::time::timeout(LIMIT, body.frame())
        .await
        .expect("the body's time limit fires")
        .expect("an error frame")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(
        body.frame().await.is_none(),
        "the body ends after its error"
    );
}

async fn concurrent_streaming_requests_each_get_the_whole_body(b: B) {
    // Storable, chunked, larger than the limit: the first request finds out
    // only while reading; requests that waited for it must ask again.
    let big = pattern(200_000, 7);
    let body = big.clone();
    let origin = streaming_origin(move |_| {
        let body = body.clone();
        async move {
            let (tx, out) = channel_body();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                for chunk in body.chunks(20_000) {
                    let _ = tx.send(Bytes::copy_from_slice(chunk)).await;
                }
            });
            response(&[("cache-control", "max-age=600".into())], out)
        }
    })
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| b.max_body_size(50_000)).await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (c, url) = (c.clone(), origin.url("/shared"));
        tasks.push(tokio::spawn(async move {
            let r = c.get(&url).send_streaming().await.unwrap();
            r.into_body().bytes().await.unwrap()
        }));
    }
    for t in tasks {
        let got = tokio::time::timeout(LIMIT, t).await.unwrap().unwrap();
        assert_eq!(got, big);
    }
    // Each request asked the origin once: the one that led a flight, and
    // each that waited for it and found it streamed to its leader alone.
    assert_eq!(origin.total(), 6);
    assert_eq!(c.in_flight(), 0);
    assert_eq!(c.stats().stored, 0);
}

async fn a_redirect_that_would_resend_a_streamed_body_is_returned(b: B) {
    let origin = streaming_origin(|req| async move {
        match req.uri().path() {
            "/old" => {
                let mut r = response(&[("location", "/new".into())], full(""));
                *r.status_mut() = http::StatusCode::TEMPORARY_REDIRECT;
                r
            }
            _ => {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                response(&[], full(body))
            }
        }
    })
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| b).await;
    // Whole: resent to the new place.
    let whole = c
        .post(&origin.url("/old"))
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.text(), "data");
    // Streamed: sent once, so the 307 comes back to the caller.
    let (tx, body) = channel_body();
    tx.send(Bytes::from_static(b"data")).await.unwrap();
    drop(tx);
    let streamed = c
        .post(&origin.url("/old"))
        .body_stream(body)
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 307);
    assert_eq!(streamed.headers()["location"], "/new");
    assert_eq!(origin.total(), 3);
}

async fn answers_that_could_never_be_served_again_are_not_held_back(b: B) {
    // Storable by the rules, but stale at once with nothing to revalidate
    // with (what many APIs send); and an event stream, whatever its headers.
    for (cc, content_type) in [
        (Some("no-cache"), "application/json"),
        (None, "application/json"),
        (Some("max-age=60"), "text/event-stream"),
    ] {
        let gate = Arc::new(Notify::new());
        let mut headers = vec![("content-type", content_type.to_owned())];
        if let Some(cc) = cc {
            headers.push(("cache-control", cc.to_owned()));
        }
        let origin = gated_origin(
            headers,
            Bytes::from_static(b"data: one\n\n"),
            Bytes::from_static(b"data: two\n\n"),
            gate.clone(),
        )
        .await;
        let clock = clock();
        let c = client(b.clone(), &clock, |b| b).await;
        let r = tokio::time::timeout(LIMIT, c.get(&origin.url("/events")).send_streaming())
            .await
            .unwrap_or_else(|_| panic!("{cc:?} {content_type}: the head waited for the body"))
            .unwrap();
        let mut body = r.into_body();
        let got = tokio::time::timeout(LIMIT, read_at_least(&mut body, 11))
            .await
            .unwrap_or_else(|_| panic!("{cc:?} {content_type}: the first event waited"));
        assert_eq!(got, b"data: one\n\n");
        gate.notify_one();
        assert_eq!(body.bytes().await.unwrap(), "data: two\n\n");
    }
}

async fn stale_if_error_covers_a_body_that_stalls_while_read_to_store(b: B) {
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    let origin = streaming_origin(move |_| {
        let first = count.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                return response(
                    &[("cache-control", "max-age=10, stale-if-error=100".into())],
                    full("good"),
                );
            }
            // Storable, 100 bytes announced, 10 sent, then nothing.
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"0123456789")).await;
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(tx);
            });
            response(
                &[
                    ("cache-control", "max-age=10".into()),
                    ("content-length", "100".into()),
                ],
                body,
            )
        }
    })
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| b.timeout(Duration::from_millis(300))).await;
    let url = origin.url("/sie");
    c.get(&url).send().await.unwrap();
    clock.advance(crate::secs(20));
    let whole = tokio::time::timeout(LIMIT, c.get(&url).send())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(whole.outcome(), CacheOutcome::StaleIfError, "send()");
    assert_eq!(whole.text(), "good");
    let streamed = tokio::time::timeout(LIMIT, c.get(&url).send_streaming())
        .await
        .unwrap()
        .expect("send_streaming(): the stale answer, as send() gives");
    assert_eq!(streamed.outcome(), CacheOutcome::StaleIfError);
    assert_eq!(streamed.into_body().bytes().await.unwrap(), "good");
}

/// An origin that reads the whole request body and answers `got N`.
async fn counting_origin() -> Origin {
    streaming_origin(|req| async move {
        let n = req
            .into_body()
            .collect()
            .await
            .map_or(0, |b| b.to_bytes().len());
        response(&[], full(format!("got {n}")))
    })
    .await
}

async fn an_upload_that_keeps_moving_outlasts_the_time_limit(b: B) {
    let origin = counting_origin().await;
    let clock = clock();
    let c = client(b, &clock, |b| b.timeout(Duration::from_millis(500))).await;
    let (tx, body) = channel_body();
    let producer = tokio::spawn(async move {
        // 1.2 s in all, never more than 100 ms between chunks.
        for _ in 0..12 {
            if tx.send(Bytes::from(vec![b'u'; 1000])).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let r = tokio::time::timeout(
        LIMIT,
        c.post(&origin.url("/upload")).body_stream(body).send(),
    )
    .await
    .unwrap();
    producer.await.unwrap();
    assert_eq!(
        r.expect("the upload never idled for 500 ms").text(),
        "got 12000"
    );
}

async fn an_upload_that_stalls_is_a_timeout(b: B) {
    let origin = counting_origin().await;
    let clock = clock();
    let c = client(b, &clock, |b| b.timeout(Duration::from_millis(300))).await;
    let (tx, body) = channel_body();
    let producer = tokio::spawn(async move {
        tx.send(Bytes::from_static(b"start")).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(tx);
    });
    let started = std::time::Instant::now();
    let e = tokio::time::timeout(
        LIMIT,
        c.post(&origin.url("/upload")).body_stream(body).send(),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    producer.abort();
}

async fn concurrent_streaming_requests_for_a_small_storable_body_coalesce(b: B) {
    let origin = streaming_origin(|_| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        response(&[("cache-control", "max-age=600".into())], full("shared"))
    })
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| b.max_body_size(1024)).await;
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (c, url) = (c.clone(), origin.url("/s"));
        tasks.push(tokio::spawn(async move {
            let r = c.get(&url).send_streaming().await.unwrap();
            r.into_body().bytes().await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(
            tokio::time::timeout(LIMIT, t).await.unwrap().unwrap(),
            "shared"
        );
    }
    assert_eq!(origin.total(), 1);
    assert_eq!(c.stats().coalesced, 4);
}

async fn a_request_body_too_large_to_key_goes_past_the_cache_streaming(b: B) {
    // POST is cached here, so its body is part of the key: read first, up
    // to the limit. One larger must not be held whole: the request goes
    // past the cache, streaming on from what was read.
    let got_first = Arc::new(Notify::new());
    let g = got_first.clone();
    let origin = streaming_origin(move |req| {
        let g = g.clone();
        async move {
            let mut body = req.into_body();
            let mut n = 0;
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    if n == 0 {
                        g.notify_one();
                    }
                    n += data.len();
                }
            }
            response(
                &[("cache-control", "max-age=600".into())],
                full(format!("got {n}")),
            )
        }
    })
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| {
        b.allowed_methods([http::Method::GET, http::Method::POST])
            .max_body_size(1000)
    })
    .await;
    let (tx, body) = channel_body();
    let producer = tokio::spawn(async move {
        tx.send(Bytes::from(vec![b'x'; 3000])).await.unwrap();
        got_first.notified().await;
        tx.send(Bytes::from(vec![b'y'; 3000])).await.unwrap();
    });
    let r = tokio::time::timeout(
        LIMIT,
        c.post(&origin.url("/search")).body_stream(body).send(),
    )
    .await
    .expect("the body streamed past the cache")
    .unwrap();
    producer.await.unwrap();
    assert_eq!(r.text(), "got 6000");
    assert_eq!(r.outcome(), CacheOutcome::Bypass);
    // A small body is still part of the key, and cached.
    for _ in 0..2 {
        let r = c
            .post(&origin.url("/search"))
            .body_stream(full("small"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.text(), "got 5");
    }
    assert_eq!(origin.total(), 2);
}
