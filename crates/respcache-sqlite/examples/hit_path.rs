//! A rough measurement of the cache-hit path (not a benchmark suite): 100k
//! `get`s of 1 KiB entries, inline on the reader pool versus through the
//! writer thread, then 64 concurrent readers.
//!
//! ```text
//! cargo run --release -p respcache-sqlite --example hit_path
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use respcache_core::{
    Backend, DynStore, Entry, FieldKind, Key, KeyPart, KeySchema, Name, StoreSpec, Timestamp,
};
use respcache_sqlite::{SqliteBackend, SqliteConfig, rusqlite};

const ENTRIES: usize = 10_000;
const GETS: usize = 100_000;
const TASKS: usize = 64;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn key(i: usize) -> Key {
    Key::new("GET", [KeyPart::Text(format!("track-{i:05}"))])
}

/// A cheap deterministic sequence of entry indexes (xorshift).
fn indexes(n: usize, seed: u64) -> Vec<usize> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % ENTRIES as u64) as usize
        })
        .collect()
}

async fn fill(backend: &SqliteBackend) -> AnyResult<Arc<DynStore>> {
    let schema = KeySchema::new([("id", FieldKind::Text)])?;
    let spec = StoreSpec::new(Name::new("bench")?, Name::new("tracks")?, schema);
    let store = backend.open_store(&spec).await?;
    let payload = vec![7u8; 1024];
    let entries = (0..ENTRIES)
        .map(|i| Entry::new(key(i), Timestamp::now(), payload.clone()))
        .collect();
    store.put_many(entries).await?;
    Ok(store)
}

fn stats(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64 * 1e6;
    format!(
        "median {:6.2} µs  p99 {:7.2} µs  mean {:6.2} µs",
        pick(0.5),
        pick(0.99),
        mean
    )
}

async fn sequential(store: &DynStore) -> AnyResult<String> {
    let keys: Vec<Key> = indexes(GETS, 42).into_iter().map(key).collect();
    let mut samples = Vec::with_capacity(GETS);
    for k in &keys {
        let t = Instant::now();
        let hit = store.get(k).await?;
        samples.push(t.elapsed());
        if hit.map(|e| e.payload.len()) != Some(1024) {
            return Err("miss".into());
        }
    }
    Ok(stats(samples))
}

async fn concurrent(store: Arc<DynStore>) -> AnyResult<String> {
    let per_task = GETS / TASKS * 2;
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in indexes(per_task, t as u64 + 7) {
                    store.get(&key(i)).await?;
                }
                Ok::<_, respcache_core::Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let total = per_task * TASKS;
    let secs = started.elapsed().as_secs_f64();
    Ok(format!(
        "{TASKS} tasks: {:>9.0} hits/s ({total} hits in {secs:.2} s)",
        total as f64 / secs
    ))
}

fn raw_baseline(path: &std::path::Path) -> AnyResult<String> {
    let conn = rusqlite::Connection::open(path)?;
    let keys: Vec<String> = indexes(GETS, 42)
        .into_iter()
        .map(|i| format!("track-{i:05}"))
        .collect();
    let mut samples = Vec::with_capacity(GETS);
    for k in &keys {
        let t = Instant::now();
        let mut stmt = conn.prepare_cached(
            r#"SELECT name, cached_at, expires_at, payload, meta FROM "bench:tracks" WHERE method = ?1 AND "f_id" = ?2"#,
        )?;
        let payload: Vec<u8> = stmt.query_row(["GET", k.as_str()], |r| r.get(3))?;
        samples.push(t.elapsed());
        assert_eq!(payload.len(), 1024);
    }
    Ok(stats(samples))
}

async fn run() -> AnyResult<()> {
    for (label, config) in [
        ("file,   inline readers", SqliteConfig::temp()),
        (
            "file,   writer thread ",
            SqliteConfig::temp().with_readers(0),
        ),
        ("memory, inline readers", SqliteConfig::memory()),
        (
            "memory, writer thread ",
            SqliteConfig::memory().with_readers(0),
        ),
    ] {
        let backend = config.connect().await?;
        let store = fill(&backend).await?;
        let seq = sequential(store.as_ref()).await?;
        let conc = concurrent(Arc::clone(&store)).await?;
        println!("{label}: get {seq} | {conc} | {:?}", backend.read_counts());
        if let (true, Some(path)) = (label.starts_with("file,   inline"), backend.path()) {
            println!(
                "plain rusqlite, same table (baseline): {}",
                raw_baseline(path)?
            );
        }
        backend.close().await?;
    }
    Ok(())
}

fn main() -> AnyResult<()> {
    // `hit_path current` runs on a current-thread runtime instead.
    let runtime = if std::env::args().any(|a| a == "current") {
        println!("current-thread runtime");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        println!("multi-thread runtime");
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    runtime.block_on(run())
}
