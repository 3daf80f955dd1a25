//! A loop of cache hits through `CachedClient`, for profilers (`perf`,
//! `valgrind --tool=callgrind`): primes 64 URLs from a local origin (1 KiB
//! bodies, `max-age=86400`, as the bench's origin), then answers them from
//! the cache on one thread and prints the time per hit.
//!
//! ```text
//! cargo run --release -p respcache-http --example hit_profile -- [memory|sqlite] [hits]
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use respcache_core::{Backend, MemoryBackend};
use respcache_http::{CacheOutcome, CachedClient};
use respcache_sqlite::SqliteBackend;

const URLS: usize = 64;

async fn origin() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    let mut r = hyper::Response::new(Full::new(Bytes::from(vec![b'x'; 1024])));
                    let h = r.headers_mut();
                    h.insert("content-type", "application/octet-stream".parse().unwrap());
                    h.insert("cache-control", "max-age=86400".parse().unwrap());
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

fn main() {
    let mut args = std::env::args().skip(1);
    let backend_name = args.next().unwrap_or_else(|| "memory".to_owned());
    let hits: usize = args.next().map_or(200_000, |n| n.parse().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let base = origin().await;
        let backend: Arc<dyn Backend> = match backend_name.as_str() {
            "memory" => Arc::new(MemoryBackend::new()),
            "sqlite" => Arc::new(SqliteBackend::temp().await.unwrap()),
            other => panic!("unknown backend {other}"),
        };
        let client = CachedClient::builder()
            .cache_name("profile")
            .build(backend)
            .await
            .unwrap();
        let urls: Vec<String> = (0..URLS).map(|i| format!("{base}/hit/{i}")).collect();
        for url in &urls {
            let r = client.get(url).send().await.unwrap();
            assert!(r.cache_status().stored(), "{url} not stored");
        }
        let future = std::mem::size_of_val(&client.get(&urls[0]).send());
        println!("a send() future: {future} bytes");
        let start = Instant::now();
        for i in 0..hits {
            let r = client.get(&urls[i % URLS]).send().await.unwrap();
            assert_eq!(r.outcome(), CacheOutcome::Hit);
            assert_eq!(r.bytes().len(), 1024);
        }
        let per = start.elapsed().as_nanos() as f64 / hits as f64;
        println!("{backend_name}: {hits} hits, {per:.0} ns per hit");
    });
}
