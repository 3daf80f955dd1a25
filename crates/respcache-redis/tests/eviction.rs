//! respcache on a Redis that evicts: `maxmemory` with `allkeys-lru` is how
//! a Redis cache is bounded (the docs say so), so every call must go on
//! working while Redis drops entries under it — an evicted entry is a
//! miss, never an error. And on a full Redis that does not evict (the
//! default `noeviction`), a write fails cleanly with a backend error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use respcache_core::{
    Backend, BytesCodec, ErrorKind, Repository, RepositoryOptions, Request, TemplateSettings,
};
use respcache_redis::RedisBackend;

use common::{Server, raw, unique_cache};

/// 10 KiB that do not compress, different for each `seed`.
fn body(seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..10 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn used_memory(url: &str) -> u64 {
    let mut conn = raw(url).await;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lru_redis_evicts_under_respcache_and_every_call_goes_on_working() {
    let server = Server::start(&["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru"]);
    let backend = RedisBackend::connect(&server.url()).await.unwrap();
    let cache = unique_cache("evict");
    let settings = TemplateSettings::<Bytes>::new("pages", "/pages/{id:int}", BytesCodec).unwrap();
    let pages = Repository::create(
        &backend,
        cache.as_str(),
        settings,
        RepositoryOptions::default(),
    )
    .await
    .unwrap();
    let req = |i: u64| Request::get(&format!("https://example.com/pages/{i}")).unwrap();
    // 20 MB through a 4 MB server: every write succeeds, and reads answer
    // the body or a miss. (Which entries go is Redis's choice: its LRU
    // samples a few keys and its clock ticks once a second, so within one
    // second it is close to random.)
    for i in 0..2000 {
        pages.save_response(&req(i), &body(i)).await.unwrap();
        if i % 10 == 0 {
            let got = pages.get_response(&req(i / 2)).await.unwrap();
            assert!(got.is_none() || got == Some(body(i / 2)), "page {}", i / 2);
        }
    }
    let used = used_memory(&server.url()).await;
    assert!(used <= 4 * 1024 * 1024 + 512 * 1024, "used_memory {used}");
    let mut present = 0;
    for i in 0..2000 {
        if let Some(b) = pages.get_response(&req(i)).await.unwrap() {
            assert_eq!(b, body(i), "page {i}");
            present += 1;
        }
    }
    assert!(
        (1..1000).contains(&present),
        "{present} of 2000 pages kept in 4 MB"
    );
    // Counting, scanning and clearing walk what is left.
    let left = pages.count(true).await.unwrap();
    assert!((10..2000).contains(&left), "{left}");
    // The store registry may have been evicted too: opening the store again
    // registers it, and writes go on.
    let settings = TemplateSettings::<Bytes>::new("pages", "/pages/{id:int}", BytesCodec).unwrap();
    let again = Repository::create(
        &backend,
        cache.as_str(),
        settings,
        RepositoryOptions::default(),
    )
    .await
    .unwrap();
    again.save_response(&req(5000), &body(5000)).await.unwrap();
    assert!(
        backend
            .list_stores(&cache)
            .await
            .unwrap()
            .iter()
            .any(|n| n.as_str() == "pages")
    );
    assert!(pages.clear(false).await.unwrap() >= 1);
    backend.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_that_does_not_evict_fails_writes_cleanly_and_reads_go_on() {
    let server = Server::start(&["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]);
    let backend = RedisBackend::connect(&server.url()).await.unwrap();
    let cache = unique_cache("full");
    let settings = TemplateSettings::<Bytes>::new("pages", "/pages/{id:int}", BytesCodec).unwrap();
    let pages = Repository::create(
        &backend,
        cache.as_str(),
        settings,
        RepositoryOptions::default(),
    )
    .await
    .unwrap();
    let req = |i: u64| Request::get(&format!("https://example.com/pages/{i}")).unwrap();
    let mut refused = None;
    for i in 0..1000 {
        if let Err(e) = pages.save_response(&req(i), &body(i)).await {
            refused = Some((i, e));
            break;
        }
    }
    let (at, error) = refused.expect("a 2 MB server took 10 MB");
    assert!(at > 10, "refused from the start: {error}");
    assert_eq!(error.backend(), Some("redis"));
    assert!(matches!(error.kind(), ErrorKind::Backend), "{error}");
    assert!(error.to_string().contains("OOM"), "{error}");
    // What was stored still reads.
    assert_eq!(pages.get_response(&req(0)).await.unwrap(), Some(body(0)));
    backend.close().await.unwrap();
}
