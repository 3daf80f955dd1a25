//! Criterion benches of `CachedSession` on every reachable backend against
//! a local origin on loopback: hit, miss-and-store, `304` revalidation, 64
//! concurrent hits, and the uncached hyper `GET` baseline. The same
//! fixtures the table runner (`bench-table`) times.
//!
//! `cargo bench -p respcache-bench --bench http`;
//! `RESPCACHE_BENCH_BACKENDS=sqlite,memory` limits the backends.

// Bench code: a failed unwrap is a failed bench.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use respcache_bench::backends::{self, BackendKind};
use respcache_bench::data;
use respcache_bench::origin::{ETAG, Origin};
use respcache_bench::raw::RawHttp;
use respcache_bench::session::{HIT_URLS, Session};

fn selected() -> Vec<BackendKind> {
    let only = std::env::var("RESPCACHE_BENCH_BACKENDS").unwrap_or_default();
    BackendKind::ALL
        .into_iter()
        .filter(|k| k.compiled())
        .filter(|k| only.is_empty() || only.split(',').any(|n| n.trim() == k.name()))
        .collect()
}

fn http(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = Origin::start().unwrap();
    let raw = RawHttp::new();
    let mut g = c.benchmark_group("http/raw");
    g.throughput(Throughput::Elements(1));
    let url = origin.url("/raw");
    g.bench_function("hyper_get_1KB", |b| {
        b.to_async(&rt)
            .iter(|| async { raw.get(&url, &[], 200).await.unwrap() })
    });
    let url = origin.url("/etag/raw");
    g.bench_function("hyper_get_304", |b| {
        b.to_async(&rt).iter(|| async {
            raw.get(&url, &[("if-none-match", ETAG)], 304)
                .await
                .unwrap()
        })
    });
    g.finish();

    for kind in selected() {
        let connected = match rt.block_on(backends::connect(kind)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("http/{kind}: unreachable, skipped: {e}");
                continue;
            }
        };
        let cache = data::run_cache_name(kind.name()).unwrap();
        let session = Arc::new(
            rt.block_on(Session::new(
                Arc::clone(&connected.backend),
                &cache,
                &origin,
            ))
            .unwrap(),
        );
        let n = AtomicU64::new(0);
        let mut g = c.benchmark_group(format!("http/{kind}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("hit", |b| {
            b.to_async(&rt).iter(|| async {
                session
                    .hit(n.fetch_add(1, Ordering::Relaxed))
                    .await
                    .unwrap()
            })
        });
        g.bench_function("miss_and_store", |b| {
            b.to_async(&rt)
                .iter(|| async { session.miss_and_store().await.unwrap() })
        });
        g.bench_function("revalidate_304", |b| {
            b.to_async(&rt).iter(|| async {
                session
                    .revalidate(n.fetch_add(1, Ordering::Relaxed))
                    .await
                    .unwrap()
            })
        });
        // 64 tasks share the iterations; the time is the wall time of all.
        g.bench_function("hit_64_tasks", |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let session = Arc::clone(&session);
                async move {
                    let per_task = iters.div_ceil(HIT_URLS).max(1);
                    let t0 = Instant::now();
                    let tasks: Vec<_> = (0..HIT_URLS)
                        .map(|t| {
                            let s = Arc::clone(&session);
                            tokio::spawn(async move {
                                for _ in 0..per_task {
                                    s.hit(t).await.unwrap();
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                    let wall = t0.elapsed();
                    // Scale to `iters` hits (the tasks ran per_task × 64).
                    wall.mul_f64(iters as f64 / (per_task * HIT_URLS) as f64)
                }
            })
        });
        g.finish();
        rt.block_on(async {
            for repo in ["http", "http_redirects"] {
                let repo = respcache_core::Name::new(repo).unwrap();
                connected.backend.drop_store(&cache, &repo).await.unwrap();
            }
            connected.backend.close().await.unwrap();
        });
    }
}

criterion_group!(benches, http);
criterion_main!(benches);
