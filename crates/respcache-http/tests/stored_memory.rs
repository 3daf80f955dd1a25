//! What a stored response costs in memory: an answer read from the origin
//! and kept by the memory backend holds its own bytes, not the connection's
//! read buffer it arrived in (hyper hands a body out as a slice of a buffer
//! of 8 KiB or more; kept as it is, a 1 KiB entry pinned all of it, and a
//! memory backend bounded to N bytes held several times N).
//!
//! A test binary of its own: it counts the bytes live on the heap with
//! dhat's global allocator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use respcache_core::MemoryBackend;
use respcache_http::{CacheOutcome, CachedClient};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

const BODY: usize = 1024;

/// An origin answering every path with a cacheable 1 KiB body.
async fn origin() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    let mut r = hyper::Response::new(Full::new(Bytes::from(vec![b'x'; BODY])));
                    r.headers_mut()
                        .insert("cache-control", "max-age=86400".parse().unwrap());
                    Ok::<_, Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "current_thread")]
async fn a_stored_1_kib_answer_keeps_about_its_own_size_in_memory() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let live = || dhat::HeapStats::get().curr_bytes;
    let base = origin().await;
    let client = CachedClient::builder()
        .build(Arc::new(MemoryBackend::new()))
        .await
        .unwrap();
    let miss = |i: usize| {
        let client = &client;
        let url = format!("{base}/{i}");
        async move {
            let r = client.get(&url).send().await.unwrap();
            assert_eq!(r.outcome(), CacheOutcome::Miss, "{url}");
            assert!(r.cache_status().stored(), "{url} was not stored");
            assert_eq!(r.bytes().len(), BODY);
        }
    };
    // The connection, the per-thread memos and the tables warm up first.
    for i in 0..200 {
        miss(i).await;
    }
    const N: usize = 400;
    let before = live();
    for i in 200..200 + N {
        miss(i).await;
    }
    let per_entry = (live() - before) / N;
    println!("{per_entry} bytes live per stored 1 KiB answer");
    // The body, the meta (its head, ~200 bytes), the key (twice: table and
    // recency order) and the tables' slots; a pinned read buffer is 8 KiB.
    assert!(
        per_entry < 3 * 1024,
        "{per_entry} bytes live per stored 1 KiB answer"
    );
}
