//! Measures the backend against a running DynamoDB (Local): single-item
//! latencies, batches, and the suite's 10k `put_many` / 100k `scan`.
//!
//! ```text
//! cargo run -p respcache-dynamodb --example latency -- [URL] [ENTRIES]
//! ```
//! URL defaults to `RESPCACHE_DYNAMODB_URL` or DynamoDB Local on
//! 127.0.0.1:8000; ENTRIES (default 100000) sizes the scan test.

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use respcache_core::{
    Backend, Entry, FieldKind, Key, KeyPart, KeySchema, Name, Select, StoreSpec, Timestamp,
};
use respcache_dynamodb::DynamoDbBackend;

const DEFAULT_URL: &str =
    "dynamodb://respcache-test?endpoint=http://127.0.0.1:8000&region=us-east-1";

fn key(i: usize) -> Key {
    Key::new("GET", [KeyPart::from(format!("{i:06}"))])
}

fn entry(i: usize, payload: usize) -> Entry {
    Entry::new(key(i), Timestamp::now(), vec![b'x'; payload])
}

fn per_op(total: Duration, n: usize) -> String {
    format!("{:.2} ms/op", total.as_secs_f64() * 1000.0 / n as f64)
}

#[tokio::main]
async fn main() -> respcache_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("RESPCACHE_DYNAMODB_URL").ok())
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);

    let t = Instant::now();
    let backend = DynamoDbBackend::connect(&url).await?;
    println!("connect (table check): {:?}", t.elapsed());

    let cache = Name::new(format!("bench-{:08x}", rand_suffix()))?;
    let spec = StoreSpec::new(
        cache.clone(),
        Name::new("r")?,
        KeySchema::new([("id", FieldKind::Text)])?,
    );
    let store = backend.open_store(&spec).await?;

    // Single-item latencies, 1 KiB payload, sequential.
    let ops = 300;
    let t = Instant::now();
    for i in 0..ops {
        store.put(entry(i, 1024)).await?;
    }
    println!("put 1 KiB:          {}", per_op(t.elapsed(), ops));
    let t = Instant::now();
    for i in 0..ops {
        store.get(&key(i)).await?;
    }
    println!("get 1 KiB (hit):    {}", per_op(t.elapsed(), ops));
    let t = Instant::now();
    for i in 0..ops {
        store.get(&key(i + 1_000_000)).await?;
    }
    println!("get (miss):         {}", per_op(t.elapsed(), ops));
    let t = Instant::now();
    for i in 0..ops {
        store.contains(&key(i), Timestamp::now()).await?;
    }
    println!("contains:           {}", per_op(t.elapsed(), ops));
    let t = Instant::now();
    for i in 0..ops {
        store.delete(&key(i)).await?;
    }
    println!("delete:             {}", per_op(t.elapsed(), ops));

    // Batches.
    let batch: Vec<Entry> = (0..100).map(|i| entry(i, 1024)).collect();
    let t = Instant::now();
    store.put_many(batch).await?;
    println!("put_many 100 x 1 KiB: {:?}", t.elapsed());
    let keys: Vec<Key> = (0..100).map(key).collect();
    let t = Instant::now();
    let got = store.get_many(&keys).await?;
    println!(
        "get_many 100 x 1 KiB: {:?} ({} hits)",
        t.elapsed(),
        got.iter().flatten().count()
    );
    let t = Instant::now();
    let gone = store.delete_many(&keys).await?;
    println!("delete_many 100:      {:?} ({gone} existed)", t.elapsed());

    // Large entries.
    for size in [1 << 20, 5 << 20] {
        let t = Instant::now();
        store.put(entry(7, size)).await?;
        let put = t.elapsed();
        let t = Instant::now();
        let back = store.get(&key(7)).await?;
        let get = t.elapsed();
        println!(
            "{} MiB entry: put {put:?}, get {get:?} (read back {} bytes)",
            size >> 20,
            back.map_or(0, |e| e.payload.len())
        );
    }
    store.delete(&key(7)).await?;

    // The suite's 10k put_many of small entries.
    let entries: Vec<Entry> = (0..10_000)
        .map(|i| Entry::new(key(i), Timestamp::now(), format!("v{i}")))
        .collect();
    let t = Instant::now();
    store.put_many(entries).await?;
    println!("put_many 10k small: {:?}", t.elapsed());
    let t = Instant::now();
    let c = store.count(Select::All, Timestamp::now()).await?;
    println!("count 10k:          {:?} ({c})", t.elapsed());
    let t = Instant::now();
    let removed = store.clear(Select::All, Timestamp::now()).await?;
    println!("clear 10k:          {:?} ({removed})", t.elapsed());

    // The suite's 100k scan: write in 5k put_many calls, then scan.
    let t = Instant::now();
    for chunk in 0..n.div_ceil(5_000) {
        let entries: Vec<Entry> = (chunk * 5_000..((chunk + 1) * 5_000).min(n))
            .map(|i| Entry::new(key(i), Timestamp::now(), &b"0123456789abcdef"[..]))
            .collect();
        store.put_many(entries).await?;
    }
    let write = t.elapsed();
    println!(
        "write {n} (put_many x 5k): {write:?} ({:.0} items/s)",
        n as f64 / write.as_secs_f64()
    );
    let t = Instant::now();
    let first: Vec<Entry> = futures::StreamExt::take(store.scan(Select::All, Timestamp::now()), 10)
        .try_collect()
        .await?;
    println!("scan first 10:      {:?} ({})", t.elapsed(), first.len());
    let t = Instant::now();
    let seen = store
        .scan(Select::All, Timestamp::now())
        .try_fold(0usize, |n, _| async move { Ok(n + 1) })
        .await?;
    let scan = t.elapsed();
    println!(
        "scan {seen}:         {scan:?} ({:.0} items/s)",
        seen as f64 / scan.as_secs_f64()
    );
    let t = Instant::now();
    let c = store.count(Select::Fresh, Timestamp::now()).await?;
    println!("count {c}:         {:?}", t.elapsed());
    let t = Instant::now();
    backend.drop_store(&cache, &Name::new("r")?).await?;
    println!("drop_store {n}:    {:?}", t.elapsed());
    Ok(())
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id()
}
