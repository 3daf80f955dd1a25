//! The byte budget on a real file: the issue's number (50 MB budget, 200 MB
//! written, the file — WAL included — stays under 60 MB), tables made
//! before budgets, and use times written in batches rather than per hit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use respcache_core::budget::Budget;
use respcache_core::{
    Backend, BytesCodec, Entry, FieldKind, Key, KeyPart, KeySchema, Name, Repository,
    RepositoryOptions, Request, StoreSpec, TemplateSettings, Timestamp,
};
use respcache_sqlite::{SqliteBackend, SqliteConfig, rusqlite};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// `len` bytes no compressor shrinks, different for each `seed`.
fn noise(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The database file, its WAL and its shared-memory file together.
fn on_disk(path: &Path) -> (u64, u64) {
    let size = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        std::fs::metadata(p).map_or(0, |m| m.len())
    };
    (size(""), size("-wal") + size("-shm"))
}

#[tokio::test]
async fn a_fifty_megabyte_budget_keeps_the_file_under_sixty_with_two_hundred_written() -> TestResult
{
    const BUDGET: u64 = 50_000_000;
    const LIMIT: u64 = 60_000_000;
    const BODY: usize = 100 * 1024;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cache.sqlite");
    let backend = SqliteConfig::file(&path)
        .with_budget(Budget::bytes(BUDGET))
        .connect()
        .await?;
    let settings = TemplateSettings::<Bytes>::new("pages", "/pages/{id:int}", BytesCodec)?;
    let pages =
        Repository::create(&backend, "site", settings, RepositoryOptions::default()).await?;
    let mut written = 0u64;
    let mut largest = (0u64, 0u64);
    let mut i = 0u64;
    // Bounded: 200 MB of 100 KiB bodies is 2048 writes.
    while written < 200 * 1024 * 1024 {
        let req = Request::get(&format!("https://example.com/pages/{i}"))?;
        pages.save_response(&req, &noise(i, BODY)).await?;
        written += BODY as u64;
        // Keep an early page in use: it must survive the trims.
        if i.is_multiple_of(16) {
            let first = Request::get("https://example.com/pages/0")?;
            assert!(
                pages.get_response(&first).await?.is_some(),
                "page 0 evicted at {i}"
            );
        }
        if i.is_multiple_of(32) {
            let (db, wal) = on_disk(&path);
            if db + wal > largest.0 + largest.1 {
                largest = (db, wal);
            }
        }
        i += 1;
    }
    let (db, wal) = on_disk(&path);
    if db + wal > largest.0 + largest.1 {
        largest = (db, wal);
    }
    let usage = backend.eviction().unwrap().usage().await?;
    eprintln!(
        "budget {BUDGET} B, written {written} B in {i} bodies: usage {} B in {} entries; \
         largest on disk: file {} B + WAL/SHM {} B; at the end: file {db} B + WAL/SHM {wal} B",
        usage.bytes, usage.entries, largest.0, largest.1
    );
    assert!(usage.bytes <= BUDGET, "{usage:?}");
    assert!(usage.bytes >= BUDGET * 8 / 10, "{usage:?}");
    assert!(largest.0 + largest.1 < LIMIT, "{largest:?}");
    backend.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_table_made_before_budgets_gets_its_use_column_and_is_trimmed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("old.sqlite");
    {
        let conn = rusqlite::Connection::open(&path)?;
        conn.execute_batch(
            r#"CREATE TABLE "c:r" ("method" TEXT NOT NULL, "f_id" TEXT NOT NULL, name TEXT,
                cached_at INTEGER NOT NULL, expires_at INTEGER, payload BLOB NOT NULL, meta BLOB,
                PRIMARY KEY ("method", "f_id"));
               CREATE INDEX "c:r:expires_at" ON "c:r" (expires_at);
               INSERT INTO "c:r" VALUES ('GET', 'old', NULL, 1, NULL, x'0102', NULL);"#,
        )?;
    }
    let backend = SqliteConfig::file(&path).connect().await?;
    let eviction = backend.eviction().unwrap();
    // Not opened yet: the trim finds it anyway and adds the column.
    assert_eq!(eviction.usage().await?.entries, 1);
    let store = backend
        .open_store(&StoreSpec::new(
            Name::new("c")?,
            Name::new("r")?,
            KeySchema::new([("id", FieldKind::Text)])?,
        ))
        .await?;
    let key = |id: &str| Key::new("GET", [KeyPart::Text(id.to_owned())]);
    let raw = rusqlite::Connection::open(&path)?;
    let old_used: i64 = raw.query_row(r#"SELECT used_at FROM "c:r""#, [], |r| r.get(0))?;
    assert_eq!(
        old_used, 0,
        "rows from before budgets count as least recently used"
    );
    store
        .put(Entry::new(key("new"), Timestamp::from_millis(2), "x"))
        .await?;
    let done = eviction.trim_to(Budget::entries(1), &|_| {}).await?;
    assert_eq!(done.removed, 1);
    assert!(store.get(&key("new")).await?.is_some());
    assert!(store.get(&key("old")).await?.is_none());
    backend.close().await?;
    Ok(())
}

#[tokio::test]
async fn hits_write_use_times_in_batches_not_one_per_hit() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("hits.sqlite");
    let backend = SqliteBackend::open(&path).await?;
    let store = backend
        .open_store(&StoreSpec::new(
            Name::new("c")?,
            Name::new("r")?,
            KeySchema::new([("id", FieldKind::Text)])?,
        ))
        .await?;
    let key = Key::new("GET", [KeyPart::Text("k".into())]);
    store
        .put(Entry::new(key.clone(), Timestamp::from_millis(1), "v"))
        .await?;
    let raw = rusqlite::Connection::open(&path)?;
    let used_at = || -> rusqlite::Result<i64> {
        raw.query_row(r#"SELECT used_at FROM "c:r""#, [], |r| r.get(0))
    };
    let written = used_at()?;
    let changes =
        || -> rusqlite::Result<i64> { raw.query_row("PRAGMA data_version", [], |r| r.get(0)) };
    let before = changes()?;
    for _ in 0..500 {
        assert!(store.get(&key).await?.is_some());
    }
    // No commit by another connection since: the file did not change.
    assert_eq!(changes()?, before, "a hit wrote to the file");
    assert_eq!(used_at()?, written);
    // A trim (or close) writes the use time once.
    backend.eviction().unwrap().usage().await?;
    assert!(used_at()? > written);
    assert_ne!(changes()?, before);
    let _: Arc<dyn Backend> = Arc::new(backend);
    Ok(())
}
