//! A loop of cache hits through `CachedClient`, or through `CacheLayer`
//! over a plain hyper-util client, for profilers (`perf`,
//! `valgrind --tool=callgrind`): primes 64 URLs from a local origin (1 KiB
//! bodies, `max-age=86400`, as the bench's origin), then answers them from
//! the cache on one thread and prints the time per hit.
//!
//! ```text
//! cargo run --release -p respcache-http --example hit_profile -- [memory|sqlite] [hits] [client|layer|miss|raw]
//! ```
//!
//! `miss` asks a new URL each time (a miss that fetches and stores, the
//! issue 20 path); `raw` does the same with the plain hyper-util client
//! (no cache), the miss path's baseline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use http_body_util::{BodyExt as _, Empty};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use respcache_core::{Backend, MemoryBackend};
use respcache_http::{CacheOutcome, CacheService, CacheStatus, CachedClient, RequestBody};
use respcache_sqlite::SqliteBackend;
use tower::ServiceExt as _;

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
    let front = args.next().unwrap_or_else(|| "client".to_owned());
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
        if front == "layer" {
            return layer_hits(backend, &base, hits, &backend_name).await;
        }
        if front == "raw" {
            return raw_gets(&base, hits).await;
        }
        let client = CachedClient::builder()
            .cache_name("profile")
            .build(backend)
            .await
            .unwrap();
        if front == "miss" {
            let start = Instant::now();
            for i in 0..hits {
                let r = client
                    .get(&format!("{base}/miss/{i}"))
                    .send()
                    .await
                    .unwrap();
                assert!(r.cache_status().stored());
            }
            let per = start.elapsed().as_nanos() as f64 / hits as f64;
            println!("{backend_name}: {hits} misses stored, {per:.0} ns per miss");
            return;
        }
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

/// One request through the layer, its body read whole.
async fn layer_get(service: &CacheService, url: &str) -> (CacheStatus, usize) {
    let request = http::Request::get(url).body(Empty::<Bytes>::new()).unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    let status = *response.extensions().get::<CacheStatus>().unwrap();
    let len = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .len();
    (status, len)
}

async fn layer_hits(backend: Arc<dyn Backend>, base: &str, hits: usize, backend_name: &str) {
    let layer = CachedClient::builder()
        .cache_name("profile")
        .layer(backend)
        .await
        .unwrap();
    let plain: Client<_, RequestBody> = Client::builder(TokioExecutor::new()).build_http();
    let service = tower::Layer::layer(&layer, plain);
    let urls: Vec<String> = (0..URLS).map(|i| format!("{base}/hit/{i}")).collect();
    for url in &urls {
        let (status, _) = layer_get(&service, url).await;
        assert!(status.stored(), "{url} not stored");
    }
    let start = Instant::now();
    for i in 0..hits {
        let (status, len) = layer_get(&service, &urls[i % URLS]).await;
        assert_eq!(status.outcome(), CacheOutcome::Hit);
        assert_eq!(len, 1024);
    }
    let per = start.elapsed().as_nanos() as f64 / hits as f64;
    println!("{backend_name} through CacheLayer: {hits} hits, {per:.0} ns per hit");
}

/// The miss path's baseline: new URLs through a plain hyper-util client.
async fn raw_gets(base: &str, n: usize) {
    let plain: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let start = Instant::now();
    for i in 0..n {
        let uri: hyper::Uri = format!("{base}/miss/{i}").parse().unwrap();
        let response = plain.get(uri).await.unwrap();
        let len = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .len();
        assert_eq!(len, 1024);
    }
    let per = start.elapsed().as_nanos() as f64 / n as f64;
    println!("plain hyper-util: {n} GETs, {per:.0} ns per GET");
}
