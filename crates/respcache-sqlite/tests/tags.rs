//! The SQLite tag index: a table made before tags reads as untagged and is
//! migrated in place; the index follows every write path, including the
//! SQL a user runs by hand; a purge is one indexed `DELETE`.

// The helpers below are test code too: a failed setup should stop the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use respcache_core::{
    Backend, Entry, FieldKind, Key, KeySchema, Name, Select, StoreSpec, Tags, Timestamp,
};
use respcache_sqlite::{SqliteBackend, rusqlite};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn spec() -> StoreSpec {
    StoreSpec::new(
        Name::new("c").unwrap(),
        Name::new("r").unwrap(),
        KeySchema::new([("id", FieldKind::Text)]).unwrap(),
    )
}

fn key(id: &str) -> Key {
    Key::new("GET", [id.into()])
}

fn index_rows(path: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(r#"SELECT count(*) FROM "c:r:tags""#, [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_table_made_before_tags_reads_as_untagged_and_is_migrated() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("old.sqlite");
    {
        // The schema the previous version created.
        let conn = rusqlite::Connection::open(&path)?;
        conn.execute_batch(
            r#"CREATE TABLE "c:r" ("method" TEXT NOT NULL, "f_id" TEXT NOT NULL, name TEXT,
                 cached_at INTEGER NOT NULL, expires_at INTEGER, payload BLOB NOT NULL, meta BLOB,
                 used_at INTEGER NOT NULL DEFAULT 0, PRIMARY KEY ("method", "f_id"));
               CREATE INDEX "c:r:expires_at" ON "c:r" (expires_at);
               CREATE INDEX "c:r:used_at" ON "c:r" (used_at);
               INSERT INTO "c:r" VALUES ('GET', 'old', NULL, 5, NULL, X'6F6C64', NULL, 0);"#,
        )?;
    }
    let backend = SqliteBackend::open(&path).await?;
    let store = backend.open_store(&spec()).await?;
    let old = store.get(&key("old")).await?.ok_or("the old row is gone")?;
    assert!(old.tags.is_empty());
    assert_eq!(old.payload.as_ref(), b"old");
    store
        .put(Entry::new(key("new"), Timestamp::now(), "n").with_tags(Tags::new(["t"])?))
        .await?;
    assert_eq!(store.purge_tag("t").await?, 1);
    assert_eq!(
        store.count(Select::All, Timestamp::now()).await?,
        1,
        "the old row stays"
    );
    backend.close().await?;
    Ok(())
}

#[tokio::test]
async fn the_index_follows_writes_deletes_and_hand_written_sql() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("idx.sqlite");
    let backend = SqliteBackend::open(&path).await?;
    let store = backend.open_store(&spec()).await?;
    let tagged = |id: &str, tags: &[&str]| {
        Entry::new(key(id), Timestamp::now(), "p")
            .with_tags(Tags::new(tags.iter().copied()).unwrap())
    };
    store
        .put_many(vec![
            tagged("a", &["x", "y"]),
            tagged("b", &["x"]),
            tagged("c", &[]),
        ])
        .await?;
    assert_eq!(index_rows(&path), 3);
    store.put(tagged("a", &["z"])).await?;
    assert_eq!(index_rows(&path), 2, "a replaced: x and y out, z in");
    store.delete(&key("b")).await?;
    assert_eq!(index_rows(&path), 1);
    {
        let conn = rusqlite::Connection::open(&path)?;
        conn.execute(r#"DELETE FROM "c:r" WHERE "f_id" = 'a'"#, [])?;
    }
    assert_eq!(
        index_rows(&path),
        0,
        "a user's own DELETE keeps the index right"
    );
    store.put(tagged("d", &["x"])).await?;
    store.clear(Select::All, Timestamp::now()).await?;
    assert_eq!(index_rows(&path), 0, "clear(All)");
    backend
        .drop_store(&spec().cache, &spec().repository)
        .await?;
    let conn = rusqlite::Connection::open(&path)?;
    let left: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'c:r%'",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(left, 0, "drop_store removes the index table and triggers");
    backend.close().await?;
    Ok(())
}

/// Purges 1,000 tagged entries among 10,000 and prints the time (the
/// report's number); bounded generously.
#[tokio::test]
async fn purge_of_a_thousand_tagged_entries() -> TestResult {
    let backend = SqliteBackend::temp().await?;
    let store = backend.open_store(&spec()).await?;
    let tags = Tags::new(["hot"])?;
    let entries: Vec<Entry> = (0..10_000)
        .map(|i| {
            let e = Entry::new(key(&format!("k{i}")), Timestamp::now(), vec![0u8; 100]);
            if i % 10 == 0 {
                e.with_tags(tags.clone())
            } else {
                e
            }
        })
        .collect();
    store.put_many(entries).await?;
    let started = Instant::now();
    assert_eq!(store.purge_tag("hot").await?, 1_000);
    let took = started.elapsed();
    eprintln!("sqlite: purge_tag of 1,000 of 10,000 entries took {took:?}");
    assert!(took.as_secs() < 10, "{took:?}");
    assert_eq!(store.count(Select::All, Timestamp::now()).await?, 9_000);
    Ok(())
}
