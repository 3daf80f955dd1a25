//! The hit path: a fresh stored response served by `CachedClient` on the
//! memory and SQLite backends (a local origin answers the one warm-up miss).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use respcache_core::{Backend, MemoryBackend};
use respcache_http::CachedClient;
use respcache_sqlite::SqliteBackend;

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
                    let body = Bytes::from(vec![b'x'; 1024]);
                    let mut r = hyper::Response::new(Full::new(body));
                    r.headers_mut()
                        .insert("cache-control", "max-age=3600".parse().unwrap());
                    r.headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    Ok::<_, Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}/v1/tracks/42?market=SE")
}

fn hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = rt.block_on(origin());
    let backends: Vec<(&str, Arc<dyn Backend>)> = rt.block_on(async {
        vec![
            ("memory", Arc::new(MemoryBackend::new()) as Arc<dyn Backend>),
            (
                "sqlite",
                Arc::new(SqliteBackend::temp().await.unwrap()) as Arc<dyn Backend>,
            ),
        ]
    });
    let mut group = c.benchmark_group("hit");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, backend) in backends {
        let client = rt.block_on(async {
            let client = CachedClient::new(backend).await.unwrap();
            let first = client.get(&url).send().await.unwrap();
            assert!(!first.from_cache());
            client
        });
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let r = client.get(&url).send().await.unwrap();
                assert!(r.from_cache());
                r
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hit);
criterion_main!(benches);
