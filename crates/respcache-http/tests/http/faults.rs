//! Bad input and faults, the response API and observability.

use bytes::Bytes;
use respcache_core::{Entry, FieldKind, Key, KeyPart, KeySchema, Name, StoreSpec};
use respcache_http::{CacheOutcome, CachedResponse, ErrorKind, FinalUrl};

use tracing::instrument::WithSubscriber as _;

use crate::origin::{Origin, Reply, resetting_origin};
use crate::{B, client, clock, secs};

crate::backend_tests!(
    an_invalid_url_is_an_error_without_a_request,
    json_on_a_body_that_is_not_json_is_a_decode_error,
    an_origin_that_resets_the_connection_is_a_connection_error,
    a_slow_origin_is_a_timeout,
    a_body_over_the_limit_is_returned_but_not_stored,
    a_cache_backend_that_is_down_never_fails_a_request,
    undecodable_meta_is_a_counted_miss,
    a_payload_that_does_not_match_its_meta_is_a_counted_miss,
    meta_with_very_many_headers_is_a_counted_miss_not_a_panic,
    cached_response_converts_to_and_from_http_response,
    counters_and_cache_status_tell_what_happened,
    tracing_span_records_each_outcome,
);

async fn an_invalid_url_is_an_error_without_a_request(b: B) {
    let clock = clock();
    let c = client(b, &clock, |b| b).await;
    for bad in ["not a url", "ftp://example.com/x", "http://"] {
        let e = c.get(bad).send().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidUrl, "{bad}");
    }
    let e = c
        .get("http://127.0.0.1:1/")
        .header("bad header", "x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert_eq!(c.stats().origin_requests, 0);
}

async fn json_on_a_body_that_is_not_json_is_a_decode_error(b: B) {
    let origin = Origin::without_date(|_| {
        Reply::ok("<html>not json</html>").header("cache-control", "max-age=60")
    })
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| b).await;
    for _ in 0..2 {
        let r = c.get(&origin.url("/j")).send().await.unwrap();
        let e = r.json::<serde_json::Value>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert_eq!(r.text(), "<html>not json</html>");
    }
    assert_eq!(origin.count("/j"), 1, "the body is cached as it is");
}

async fn an_origin_that_resets_the_connection_is_a_connection_error(b: B) {
    let (addr, _task) = resetting_origin().await;
    let clock = clock();
    let c = client(b, &clock, |b| b).await;
    let e = c.get(&format!("http://{addr}/x")).send().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert!(e.is_temporary());
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
    let refused = c.get("http://127.0.0.1:1/x").send().await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Connection);
}

async fn a_slow_origin_is_a_timeout(b: B) {
    let origin =
        Origin::without_date(|_| Reply::ok("late").delay(std::time::Duration::from_millis(500)))
            .await;
    let clock = clock();
    let c = client(b, &clock, |b| b).await;
    let e = c
        .get(&origin.url("/slow"))
        .timeout(std::time::Duration::from_millis(50))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    let ok = c.get(&origin.url("/slow")).send().await.unwrap();
    assert_eq!(ok.text(), "late", "no timeout unless asked");
}

async fn a_body_over_the_limit_is_returned_but_not_stored(b: B) {
    let origin = Origin::without_date(|s| {
        let size = if s.path == "/big" { 10_000 } else { 100 };
        Reply::ok(vec![b'x'; size]).header("cache-control", "max-age=60")
    })
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| b.max_body_size(1000)).await;
    for _ in 0..2 {
        let big = c.get(&origin.url("/big")).send().await.unwrap();
        assert_eq!(big.bytes().len(), 10_000);
        assert!(!big.from_cache() && !big.cache_status().stored());
        c.get(&origin.url("/small")).send().await.unwrap();
    }
    assert_eq!((origin.count("/big"), origin.count("/small")), (2, 1));
}

async fn a_cache_backend_that_is_down_never_fails_a_request(b: B) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("#{}", s.n)).header("cache-control", "max-age=60")
    })
    .await;
    let clock = clock();
    let c = client(b.clone(), &clock, |b| b).await;
    c.get(&origin.url("/a")).send().await.unwrap();
    b.close().await.unwrap();
    for i in 2..4 {
        let r = c.get(&origin.url("/a")).send().await.unwrap();
        assert_eq!(r.text(), format!("#{i}"));
        assert!(!r.from_cache());
    }
    let stats = c.stats();
    // Each request's read fails and is counted; after it the request makes
    // no further cache call (no redirect lookup, no write).
    assert_eq!(
        stats.cache_errors, 2,
        "one failed read per request, then no more cache calls: {stats:?}"
    );
    assert_eq!(stats.stored, 1);
}

async fn undecodable_meta_is_a_counted_miss(b: B) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("#{}", s.n)).header("cache-control", "max-age=60")
    })
    .await;
    let clock = clock();
    let c = client(b.clone(), &clock, |b| b.cache_name("corrupt")).await;
    let first = c.get(&origin.url("/c")).send().await.unwrap();
    // Overwrite the entry's meta with bytes of an unknown version.
    let spec = StoreSpec::new(
        Name::new("corrupt").unwrap(),
        Name::new("http").unwrap(),
        KeySchema::new([("request", FieldKind::Text)]).unwrap(),
    );
    let store = b.open_store(&spec).await.unwrap();
    let key = Key::decode(first.cache_key().unwrap()).unwrap();
    assert!(matches!(key.fields(), [KeyPart::Text(_)]));
    let bogus = Entry::new(key, clock_now(&c), Bytes::from_static(b"#1"))
        .with_meta(Bytes::from_static(&[200, 1, 2, 3]));
    store.put(bogus).await.unwrap();
    let before = respcache_core::stats::undecodable_entries();
    let r = c.get(&origin.url("/c")).send().await.unwrap();
    assert!(!r.from_cache());
    assert_eq!(r.text(), "#2");
    assert_eq!(c.stats().undecodable, 1);
    assert!(respcache_core::stats::undecodable_entries() > before);
    assert!(
        c.get(&origin.url("/c")).send().await.unwrap().from_cache(),
        "rewritten"
    );
}

/// Issue 16: the stored body carries its length and BLAKE3 hash in the
/// meta. A payload replaced behind the meta's back — shorter, or the same
/// length with other bytes — is never served: a counted undecodable miss,
/// fetched and stored anew.
async fn a_payload_that_does_not_match_its_meta_is_a_counted_miss(b: B) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("body #{}", s.n)).header("cache-control", "max-age=600")
    })
    .await;
    let clock = clock();
    let c = client(b.clone(), &clock, |b| b.cache_name("spoiled")).await;
    let spec = StoreSpec::new(
        Name::new("spoiled").unwrap(),
        Name::new("http").unwrap(),
        KeySchema::new([("request", FieldKind::Text)]).unwrap(),
    );
    let store = b.open_store(&spec).await.unwrap();
    for (round, forged) in [(1, &b"short"[..]), (2, &b"BODY #2"[..])] {
        let first = c.get(&origin.url("/p")).send().await.unwrap();
        assert_eq!(first.text(), format!("body #{round}"));
        let key = Key::decode(first.cache_key().unwrap()).unwrap();
        let entry = store.get(&key).await.unwrap().unwrap();
        store
            .put(Entry {
                payload: Bytes::copy_from_slice(forged),
                ..entry
            })
            .await
            .unwrap();
        let r = c.get(&origin.url("/p")).send().await.unwrap();
        assert_eq!(r.outcome(), CacheOutcome::Miss, "round {round}");
        assert_eq!(r.text(), format!("body #{}", round + 1));
        assert_eq!(c.stats().undecodable, round);
        // Stored anew, and served from the cache again.
        let again = c.get(&origin.url("/p")).send().await.unwrap();
        assert_eq!(again.outcome(), CacheOutcome::Hit);
        assert_eq!(again.text(), format!("body #{}", round + 1));
    }
}

/// Stored meta someone else wrote (a shared Redis, a corrupted file): a
/// response meta with 25 000 tiny headers (about 100 KB) must be a counted
/// miss; the hit path's `HeaderMap::with_capacity` panics on it instead.
async fn meta_with_very_many_headers_is_a_counted_miss_not_a_panic(b: B) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("#{}", s.n)).header("cache-control", "max-age=60")
    })
    .await;
    let clock = clock();
    let c = client(b.clone(), &clock, |b| b.cache_name("hostile")).await;
    let first = c.get(&origin.url("/h")).send().await.unwrap();
    let spec = StoreSpec::new(
        Name::new("hostile").unwrap(),
        Name::new("http").unwrap(),
        KeySchema::new([("request", FieldKind::Text)]).unwrap(),
    );
    let store = b.open_store(&spec).await.unwrap();
    let key = Key::decode(first.cache_key().unwrap()).unwrap();
    let mut entry = store.get(&key).await.unwrap().unwrap();
    let mut meta = respcache_http::ResponseMeta::decode(entry.meta.as_ref().unwrap()).unwrap();
    meta.headers = vec![("x".to_owned(), b"y".to_vec()); 25_000];
    entry.meta = Some(meta.encode().unwrap());
    store.put(entry).await.unwrap();
    let c2 = c.clone();
    let url = origin.url("/h");
    let r = tokio::spawn(async move { c2.get(&url).send().await.unwrap() }).await;
    let r = r.expect("the request panicked");
    assert!(!r.from_cache());
    assert_eq!(c.stats().undecodable, 1);
}

fn clock_now(c: &respcache_http::CachedClient) -> respcache_core::Timestamp {
    c.clock().now()
}

async fn cached_response_converts_to_and_from_http_response(b: B) {
    let origin = Origin::without_date(|_| {
        Reply::ok(r#"{"id": 7, "name": "Hey Jude"}"#)
            .header("content-type", "application/json")
            .header("cache-control", "max-age=60")
    })
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| b).await;
    let url = origin.url("/t/7");
    let fresh = c.get(&url).send().await.unwrap();
    let cached = c.get(&url).send().await.unwrap();
    #[derive(serde::Deserialize, PartialEq, Debug)]
    struct Track {
        id: u32,
        name: String,
    }
    let expected = Track {
        id: 7,
        name: "Hey Jude".into(),
    };
    assert_eq!(fresh.json::<Track>().unwrap(), expected);
    assert_eq!(cached.json::<Track>().unwrap(), expected);
    assert_eq!(cached.text(), fresh.text());
    let http: http::Response<Bytes> = cached.clone().into();
    assert_eq!(http.status(), 200);
    assert_eq!(http.headers()["content-type"], "application/json");
    assert_eq!(
        http.extensions().get::<FinalUrl>().map(|u| u.0.as_str()),
        Some(url.as_str())
    );
    let back = CachedResponse::from(http);
    assert!(back.from_cache());
    assert_eq!(back.outcome(), CacheOutcome::Hit);
    assert_eq!(back.url().map(|u| u.as_str()), Some(url.as_str()));
    assert_eq!(back.bytes(), cached.bytes());
    // And a request built with http::Request goes through the cache too.
    let req = http::Request::get(url.as_str()).body(Bytes::new()).unwrap();
    assert!(c.send(req).await.unwrap().from_cache());
}

async fn counters_and_cache_status_tell_what_happened(b: B) {
    let origin = Origin::without_date(|s| {
        Reply::ok(vec![b'a'; 10])
            .header("cache-control", "max-age=10")
            .header("etag", "\"e\"")
            .header("x-n", s.n.to_string())
    })
    .await;
    let origin304 = Origin::without_date(|s| {
        if s.headers.contains_key("if-none-match") {
            Reply::status(304)
                .header("etag", "\"e\"")
                .header("cache-control", "max-age=10")
        } else {
            Reply::ok(vec![b'b'; 5])
                .header("cache-control", "max-age=10")
                .header("etag", "\"e\"")
        }
    })
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| b).await;
    let miss = c.get(&origin.url("/s")).send().await.unwrap();
    assert!(
        miss.cache_status()
            .to_string()
            .starts_with("respcache; fwd=uri-miss; fwd-status=200"),
        "{}",
        miss.cache_status()
    );
    c.get(&origin.url("/s")).send().await.unwrap();
    c.get(&origin.url("/s")).send().await.unwrap();
    c.get(&origin304.url("/v")).send().await.unwrap();
    clock.advance(secs(11));
    let rv = c.get(&origin304.url("/v")).send().await.unwrap();
    assert_eq!(
        rv.cache_status().to_string(),
        "respcache; fwd=stale; fwd-status=304; ttl=10; stored; detail=revalidated"
    );
    c.post(&origin.url("/s")).send().await.unwrap();
    let s = c.stats();
    assert_eq!(s.requests, 6);
    assert_eq!(s.hits, 2);
    assert_eq!(s.misses, 2);
    assert_eq!(s.revalidations, 1);
    assert_eq!(s.bypassed, 1);
    assert_eq!(s.origin_requests, 4);
    assert_eq!(s.origin_requests_saved, 2);
    assert_eq!(s.bytes_from_cache, 10 + 10 + 5);
    assert_eq!(s.stored, 3);
    assert_eq!(s.cache_errors, 0);
}

/// A minimal subscriber that remembers the `outcome` recorded on each
/// `respcache_http.request` span.
mod capture {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    #[derive(Clone, Default)]
    pub(crate) struct Outcomes(pub Arc<Mutex<Vec<String>>>);

    struct V<'a>(&'a Mutex<Vec<String>>);

    impl Visit for V<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "outcome" {
                self.0.lock().unwrap().push(value.to_owned());
            }
        }
        fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
    }

    impl Subscriber for Outcomes {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, values: &Record<'_>) {
            values.record(&mut V(&self.0));
        }
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, _: &Event<'_>) {}
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
}

async fn tracing_span_records_each_outcome(b: B) {
    let origin = Origin::without_date(|s| {
        let r = Reply::ok("x").header("cache-control", "max-age=60");
        if s.path == "/slow" {
            r.delay(secs(10))
        } else {
            r
        }
    })
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| b).await;
    let outcomes = capture::Outcomes::default();
    let dispatch = tracing::Dispatch::new(outcomes.clone());
    let url = origin.url("/t");
    let work = async {
        c.get(&url).send().await.unwrap();
        c.get(&url).send().await.unwrap();
        c.get(&origin.url("/none"))
            .only_if_cached()
            .send()
            .await
            .unwrap();
        c.get("http://127.0.0.1:1/").send().await.unwrap_err();
        // A request dropped before its answer says so too.
        let slow = c.get(&origin.url("/slow")).send();
        let dropped = tokio::time::timeout(std::time::Duration::from_millis(100), slow).await;
        assert!(dropped.is_err());
    };
    work.with_subscriber(dispatch).await;
    assert_eq!(
        *outcomes.0.lock().unwrap(),
        ["miss", "hit", "only-if-cached-miss", "error", "cancelled"]
    );
}

/// Issue 16: an entry the backend itself cannot decode (here a torn fs
/// envelope) is a miss for the client, and shows in its stats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_fs_envelope_shows_in_the_clients_stats() {
    let dir = tempfile::tempdir().unwrap();
    let backend: B = std::sync::Arc::new(
        respcache_fs::FsBackend::connect(respcache_fs::FsConfig::new(dir.path().to_path_buf()))
            .await
            .unwrap(),
    );
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("body #{}", s.n)).header("cache-control", "max-age=600")
    })
    .await;
    let clock = clock();
    let c = client(backend, &clock, |b| b).await;
    c.get(&origin.url("/e")).send().await.unwrap();
    assert!(c.get(&origin.url("/e")).send().await.unwrap().from_cache());
    let mut torn = 0;
    let mut stack = vec![
        dir.path()
            .join(respcache_http::DEFAULT_CACHE_NAME)
            .join("http"),
    ];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let len = std::fs::metadata(&path).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(len / 2)
                    .unwrap();
                torn += 1;
            }
        }
    }
    assert!(torn >= 1, "no entry file found to damage");
    let before = c.stats().store_undecodable;
    let r = c.get(&origin.url("/e")).send().await.unwrap();
    assert!(!r.from_cache());
    assert_eq!(r.text(), "body #2");
    assert!(c.stats().store_undecodable > before);
}
