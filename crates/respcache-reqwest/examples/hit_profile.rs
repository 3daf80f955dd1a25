//! A loop of cache hits through each front-end — `CachedClient`,
//! `CacheLayer` over a plain hyper-util client, and the reqwest middleware
//! — for profilers (`valgrind --tool=callgrind`, whose instruction counts do
//! not depend on the machine's load): primes 64 URLs from a local origin
//! (1 KiB bodies, `max-age=86400`), then answers them from the memory (or
//! SQLite) backend on one thread and prints the time per hit. `miss` asks
//! a new URL each time through `CachedClient` (a miss that fetches and
//! stores); `raw` does the same with the plain hyper-util client, the miss
//! path's baseline.
//!
//! ```text
//! cargo run --release -p respcache-reqwest --example hit_profile -- [client|layer|reqwest|miss|raw] [n] [memory|sqlite]
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use respcache_core::{Backend, MemoryBackend};
use respcache_http::{CacheOutcome, CacheStatus, CachedClient, RequestBody};
use tower::ServiceExt as _;

const URLS: usize = 64;

async fn origin() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        while let Ok((stream, _)) = listener.accept().await {
            stream.set_nodelay(true).unwrap();
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
    };
    // `HIT_PROFILE_ORIGIN=thread`: the origin on a thread and a one-thread
    // runtime of its own, as in the bench table.
    if std::env::var("HIT_PROFILE_ORIGIN").as_deref() == Ok("thread") {
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(serve);
        });
    } else {
        tokio::spawn(serve);
    }
    format!("http://{addr}")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let front = args.next().unwrap_or_else(|| "client".to_owned());
    let hits: usize = args.next().map_or(200_000, |n| n.parse().unwrap());
    let backend_name = args.next().unwrap_or_else(|| "memory".to_owned());
    // `HIT_PROFILE_RT=multi`: the benches' multi-thread runtime (the
    // origin still runs on it), to see what thread hops add.
    let mut rt = if std::env::var("HIT_PROFILE_RT").as_deref() == Ok("multi") {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let rt = rt.enable_all().build().unwrap();
    rt.block_on(async {
        let base = origin().await;
        let urls: Vec<String> = (0..URLS).map(|i| format!("{base}/hit/{i}")).collect();
        let backend: Arc<dyn Backend> = match backend_name.as_str() {
            "memory" => Arc::new(MemoryBackend::new()),
            "sqlite" => Arc::new(respcache_sqlite::SqliteBackend::temp().await.unwrap()),
            other => panic!("unknown backend {other}"),
        };
        let mut builder = CachedClient::builder().cache_name("profile");
        // `HIT_PROFILE_REDIRECTS=off`: a client that never follows redirects
        // (so a miss looks no redirect pointer up).
        if std::env::var("HIT_PROFILE_REDIRECTS").as_deref() == Ok("off") {
            builder = builder.follow_redirects(false);
        }
        let start = match front.as_str() {
            "miss" => {
                let client = builder.build(backend).await.unwrap();
                let start = Instant::now();
                for i in 0..hits {
                    let r = client
                        .get(&format!("{base}/miss/{i}"))
                        .send()
                        .await
                        .unwrap();
                    assert!(r.cache_status().stored());
                }
                start
            }
            "raw" => {
                let plain: Client<_, Empty<Bytes>> =
                    Client::builder(TokioExecutor::new()).build_http();
                let start = Instant::now();
                for i in 0..hits {
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
                start
            }
            "client" => {
                let client = builder.build(backend).await.unwrap();
                for url in &urls {
                    client.get(url).send().await.unwrap();
                }
                // `HIT_PROFILE_TASKS=64`: the hits shared among that many
                // tasks at once (the bench's concurrent row; use it with
                // `HIT_PROFILE_RT=multi`).
                let tasks: usize =
                    std::env::var("HIT_PROFILE_TASKS").map_or(1, |t| t.parse().unwrap());
                if tasks > 1 {
                    let urls = Arc::new(urls);
                    let start = Instant::now();
                    let mut running = Vec::new();
                    for t in 0..tasks {
                        let (client, urls) = (client.clone(), Arc::clone(&urls));
                        running.push(tokio::spawn(async move {
                            for i in 0..hits / tasks {
                                let r = client.get(&urls[(t + i) % URLS]).send().await.unwrap();
                                assert_eq!(r.outcome(), CacheOutcome::Hit);
                            }
                        }));
                    }
                    for r in running {
                        r.await.unwrap();
                    }
                    return report(&front, &backend_name, hits, start);
                }
                let start = Instant::now();
                for i in 0..hits {
                    let r = client.get(&urls[i % URLS]).send().await.unwrap();
                    assert_eq!(r.outcome(), CacheOutcome::Hit);
                    assert_eq!(r.bytes().len(), 1024);
                }
                start
            }
            "layer" => {
                let layer = builder.layer(backend).await.unwrap();
                let plain: Client<_, RequestBody> =
                    Client::builder(TokioExecutor::new()).build_http();
                let service = tower::Layer::layer(&layer, plain);
                let get = |url: &str| {
                    let request = http::Request::get(url).body(Empty::<Bytes>::new()).unwrap();
                    service.clone().oneshot(request)
                };
                for url in &urls {
                    get(url).await.unwrap();
                }
                let start = Instant::now();
                for i in 0..hits {
                    let r = get(&urls[i % URLS]).await.unwrap();
                    let status = *r.extensions().get::<CacheStatus>().unwrap();
                    assert_eq!(status.outcome(), CacheOutcome::Hit);
                    assert_eq!(
                        r.into_body().collect().await.unwrap().to_bytes().len(),
                        1024
                    );
                }
                start
            }
            "reqwest" => {
                let layer = builder.layer(backend).await.unwrap();
                let reqwest = reqwest::Client::new();
                let client = reqwest_middleware::ClientBuilder::new(reqwest.clone())
                    .with(respcache_reqwest::Cache::new(&layer, reqwest))
                    .build();
                for url in &urls {
                    client.get(url).send().await.unwrap();
                }
                let start = Instant::now();
                for i in 0..hits {
                    let r = client.get(&urls[i % URLS]).send().await.unwrap();
                    let status = *r.extensions().get::<CacheStatus>().unwrap();
                    assert_eq!(status.outcome(), CacheOutcome::Hit);
                    assert_eq!(r.bytes().await.unwrap().len(), 1024);
                }
                start
            }
            other => panic!("unknown front-end {other}"),
        };
        report(&front, &backend_name, hits, start);
    });
}

fn report(front: &str, backend_name: &str, hits: usize, start: Instant) {
    let per = start.elapsed().as_nanos() as f64 / hits as f64;
    println!("{front} on {backend_name}: {hits} requests, {per:.0} ns each");
}
