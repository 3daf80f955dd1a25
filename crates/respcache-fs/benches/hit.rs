//! The filesystem hit path against the raw file read it is built on.
//!
//! `cargo bench -p respcache-fs --bench hit`. Target: a 1 KiB hit within 2×
//! `std::fs::read` of the same file.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use respcache_core::{Entry, Key, KeySchema, Name, Store, StoreSpec, Timestamp};
use respcache_fs::{FsBackend, FsStore};

fn setup(rt: &tokio::runtime::Runtime) -> (FsBackend, Arc<FsStore>) {
    rt.block_on(async {
        let backend = FsBackend::temp().await.unwrap();
        let spec = StoreSpec::new(
            Name::new("bench").unwrap(),
            Name::new("hits").unwrap(),
            KeySchema::default(),
        );
        let store = backend.open_fs_store(&spec).await.unwrap();
        (backend, store)
    })
}

fn hits(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_backend, store) = setup(&rt);
    for (label, size) in [
        ("1KiB", 1024),
        ("64KiB", 64 * 1024 - 200),
        ("1MiB", 1024 * 1024),
    ] {
        let key = Key::new("GET", [label.into()]);
        let entry = Entry::new(key.clone(), Timestamp::now(), vec![7u8; size]);
        rt.block_on(store.put(entry)).unwrap();
        let path = store.entry_path(&key);
        let mut group = c.benchmark_group(format!("hit_{label}"));
        group.bench_function("fs_get", |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(store.get(&key).await.unwrap()) })
        });
        group.bench_function("std_fs_read", |b| {
            b.iter(|| black_box(std::fs::read(&path).unwrap()))
        });
        group.bench_function("spawn_blocking_std_fs_read", |b| {
            b.to_async(&rt).iter(|| async {
                let p = path.clone();
                black_box(
                    tokio::task::spawn_blocking(move || std::fs::read(p))
                        .await
                        .unwrap(),
                )
            })
        });
        group.finish();
    }
    let key = Key::new("GET", ["put".into()]);
    c.bench_function("put_1KiB", |b| {
        b.to_async(&rt).iter(|| async {
            store
                .put(Entry::new(key.clone(), Timestamp::now(), vec![1u8; 1024]))
                .await
                .unwrap()
        })
    });
    let miss = Key::new("GET", ["missing".into()]);
    c.bench_function("miss", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(store.get(&miss).await.unwrap()) })
    });
}

criterion_group!(benches, hits);
criterion_main!(benches);
