//! Latency of the MongoDB backend's hot calls against the raw driver calls
//! they are built on, on the server at `RESPCACHE_MONGODB_URL` (default: a
//! local server).
//!
//! `cargo bench -p respcache-mongodb --bench latency`

// Bench code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use respcache_core::{Backend, Entry, Key, KeySchema, Name, StoreSpec, Timestamp};
use respcache_mongodb::MongoDbBackend;
use respcache_mongodb::mongodb::bson::doc;

fn latency(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend = match rt.block_on(MongoDbBackend::connect_from_env()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("latency bench skipped: {e}");
            return;
        }
    };
    let cache = Name::new(format!("bench-{}", std::process::id())).unwrap();
    let repo = Name::new("latency").unwrap();
    let spec = StoreSpec::new(cache.clone(), repo.clone(), KeySchema::default());
    let store = rt.block_on(backend.open_store(&spec)).unwrap();
    let coll = rt.block_on(backend.collection(&cache, &repo)).unwrap();
    let key = Key::new("GET", []);
    let entry = Entry::new(key.clone(), Timestamp::now(), vec![7u8; 1024]);
    rt.block_on(store.put(entry.clone())).unwrap();
    let id = key.encode();

    let mut group = c.benchmark_group("mongodb_1KiB");
    group.bench_function("get", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(store.get(&key).await.unwrap()) })
    });
    group.bench_function("driver_find_one", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(coll.find_one(doc! { "_id": id.as_str() }).await.unwrap()) })
    });
    group.bench_function("put", |b| {
        b.to_async(&rt)
            .iter(|| async { store.put(entry.clone()).await.unwrap() })
    });
    let keys: Vec<Key> = (0..100i64).map(|i| Key::new("GET", [i.into()])).collect();
    let entries: Vec<Entry> = keys
        .iter()
        .map(|k| Entry::new(k.clone(), Timestamp::now(), vec![7u8; 1024]))
        .collect();
    group.bench_function("put_many_100", |b| {
        b.to_async(&rt)
            .iter(|| async { store.put_many(entries.clone()).await.unwrap() })
    });
    group.bench_function("get_many_100", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(store.get_many(&keys).await.unwrap()) })
    });
    group.finish();
    rt.block_on(backend.drop_store(&cache, &repo)).unwrap();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = latency
}
criterion_main!(benches);
