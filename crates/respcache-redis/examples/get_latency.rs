//! Rough latency of a cache hit through [`RedisStore::get`] against a raw
//! `GET` of the same bytes on the same kind of connection, sequential, one
//! task. Run in release against a local Redis:
//!
//! ```text
//! cargo run --release -p respcache-redis --example get_latency [-- <iterations> <payload bytes>]
//! ```
//!
//! [`RedisStore::get`]: respcache_redis::RedisStore

use std::time::{Duration, Instant};

use respcache_core::{
    Backend, Entry, FieldKind, Key, KeyPart, KeySchema, Name, Store, StoreSpec, Timestamp,
};
use respcache_redis::RedisBackend;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("RESPCACHE_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let size: usize = args.next().map_or(Ok(1024), |a| a.parse())?;

    let backend = RedisBackend::connect(&url).await?;
    let cache = Name::new(format!("bench-{}", std::process::id()))?;
    let spec = StoreSpec::new(
        cache.clone(),
        Name::new("r")?,
        KeySchema::new([("id", FieldKind::Text)])?,
    );
    let store = backend.store(&spec).await?;
    let key = Key::new("GET", [KeyPart::Text("item-42".to_owned())]);
    let now = Timestamp::now();
    store
        .put(
            Entry::new(key.clone(), now, vec![b'x'; size])
                .with_expires_at(Some(now.saturating_add(Duration::from_secs(3600)))),
        )
        .await?;
    let redis_key = store.redis_key(&key);
    let mut raw = backend.connection()?;

    // Alternating blocks, so both sides see the same machine load; the
    // medians of the per-block means are reported.
    let blocks = 20;
    let per_block = (n / blocks).max(1);
    println!(
        "{n} sequential GET hits each, {size}-byte payload, {url}, {blocks} alternating blocks"
    );
    let (mut raw_us, mut store_us) = (Vec::new(), Vec::new());
    for _ in 0..blocks {
        let started = Instant::now();
        for _ in 0..per_block {
            let v: Option<Vec<u8>> = redis::cmd("GET")
                .arg(&redis_key)
                .query_async(&mut raw)
                .await?;
            std::hint::black_box(v);
        }
        raw_us.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(per_block));

        let started = Instant::now();
        for _ in 0..per_block {
            let e = store.get(&key).await?;
            std::hint::black_box(e);
        }
        store_us.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(per_block));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (raw_med, store_med) = (median(&mut raw_us), median(&mut store_us));
    println!(
        "median: raw GET {raw_med:.1} µs/op, RedisStore::get {store_med:.1} µs/op, ratio {:.2}",
        store_med / raw_med
    );
    backend.drop_store(&cache, &Name::new("r")?).await?;
    backend.close().await?;
    Ok(())
}
