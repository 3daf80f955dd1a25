//! Criterion benches of the store operations on every reachable backend,
//! next to their raw baselines: the same fixtures the table runner
//! (`bench-table`) times.
//!
//! `cargo bench -p respcache-bench --bench store`. Environment:
//! `RESPCACHE_BENCH_BACKENDS=sqlite,fs` limits the backends;
//! `RESPCACHE_BENCH_ENTRIES` sets the size of the count/clear/scan store
//! (default 100,000). An unreachable service is reported and skipped.

// Bench code: a failed unwrap is a failed bench.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use respcache_bench::backends::{self, BackendKind};
use respcache_bench::data;
use respcache_bench::raw::{RawFile, RawSqlite, RawTokioSqlite};
use respcache_bench::store_ops::{BATCH, Hits, Large, Size, Writes};

fn selected() -> Vec<BackendKind> {
    let only = std::env::var("RESPCACHE_BENCH_BACKENDS").unwrap_or_default();
    BackendKind::ALL
        .into_iter()
        .filter(|k| k.compiled())
        .filter(|k| only.is_empty() || only.split(',').any(|n| n.trim() == k.name()))
        .collect()
}

fn entries() -> usize {
    std::env::var("RESPCACHE_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn store(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for kind in selected() {
        let connected = match rt.block_on(backends::connect(kind)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("store/{kind}: unreachable, skipped: {e}");
                continue;
            }
        };
        let backend = connected.backend.as_ref();
        let cache = data::run_cache_name(kind.name()).unwrap();
        let hits = rt.block_on(Hits::seed(backend, &cache)).unwrap();
        let n = AtomicU64::new(0);
        let next = || n.fetch_add(1, Ordering::Relaxed);

        let mut g = c.benchmark_group(format!("store/{kind}"));
        g.throughput(Throughput::Elements(1));
        for size in [Size::Small, Size::Large] {
            let label = size.label().replace(' ', "");
            g.bench_function(format!("get_hit_{label}"), |b| {
                b.to_async(&rt).iter(|| hits.get(size, next()))
            });
            // The raw baselines of the same bytes, in the same group.
            if let Some(path) = &connected.sqlite_path {
                let raw = RawSqlite::open(path, &cache, "hits").unwrap();
                g.bench_function(format!("raw_rusqlite_inline_{label}"), |b| {
                    b.iter(|| raw.read(hits.key(size, next()), size.bytes()).unwrap())
                });
                let raw = rt
                    .block_on(RawTokioSqlite::open(path.clone(), &cache, "hits"))
                    .unwrap();
                g.bench_function(format!("raw_tokio_rusqlite_{label}"), |b| {
                    b.to_async(&rt).iter(|| async {
                        raw.read(hits.key(size, next()), size.bytes())
                            .await
                            .unwrap()
                    })
                });
            }
            if let Some(fs) = &connected.fs {
                let store = rt
                    .block_on(fs.open_fs_store(&data::spec(&cache, "hits").unwrap()))
                    .unwrap();
                let raw = RawFile::new(&hits, |k| store.entry_path(k));
                g.bench_function(format!("raw_std_fs_read_{label}"), |b| {
                    b.iter(|| raw.read(size, next()).unwrap())
                });
            }
            #[cfg(feature = "redis")]
            if let (BackendKind::Redis, Some(url)) = (kind, &connected.location) {
                let prefix = format!("{}-raw", cache.as_str());
                let raw = rt
                    .block_on(respcache_bench::raw::RawRedis::connect(url, &prefix))
                    .unwrap();
                g.bench_function(format!("raw_redis_get_{label}"), |b| {
                    b.to_async(&rt)
                        .iter(|| async { raw.get(size, next()).await.unwrap() })
                });
                rt.block_on(raw.cleanup()).unwrap();
            }
        }

        let writes = rt.block_on(Writes::seed(backend, &cache)).unwrap();
        g.bench_function("put_1KB", |b| {
            b.to_async(&rt)
                .iter(|| async { writes.put(writes.entry(next())).await.unwrap() })
        });
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function("get_many_1000", |b| {
            b.to_async(&rt)
                .iter(|| async { writes.get_many().await.unwrap() })
        });
        g.bench_function("put_many_1000", |b| {
            b.to_async(&rt).iter_batched(
                || writes.batch(),
                |batch| async { writes.put_many(batch).await.unwrap() },
                BatchSize::SmallInput,
            )
        });
        g.finish();

        let n = entries();
        let large = rt.block_on(Large::seed(backend, &cache, n)).unwrap();
        let mut g = c.benchmark_group(format!("store/{kind}/{n}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(100))
            .throughput(Throughput::Elements(n as u64));
        g.bench_function("count_fresh", |b| {
            b.to_async(&rt)
                .iter(|| async { large.count_fresh().await.unwrap() })
        });
        g.bench_function("scan_all", |b| {
            b.to_async(&rt)
                .iter(|| async { large.scan().await.unwrap() })
        });
        g.throughput(Throughput::Elements(large.expired_len() as u64));
        g.bench_function("clear_expired", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        large.restore_expired().await.unwrap();
                        let t0 = std::time::Instant::now();
                        large.clear_expired().await.unwrap();
                        total += t0.elapsed();
                    }
                    total
                })
            })
        });
        g.finish();

        rt.block_on(async {
            for repo in ["hits", "writes", Large::REPOSITORY] {
                let repo = respcache_core::Name::new(repo).unwrap();
                connected.backend.drop_store(&cache, &repo).await.unwrap();
            }
            connected.backend.close().await.unwrap();
        });
    }
}

criterion_group!(benches, store);
criterion_main!(benches);
