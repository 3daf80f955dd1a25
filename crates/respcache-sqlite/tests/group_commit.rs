//! Group commit ([`SqliteConfig::group_commit`]): what a user notices —
//! concurrent puts share commits, each put returns once its row is
//! committed, nothing overtakes a call sent before it, and one bad row
//! does not fail the others.

// The helpers below are test code too: a failed setup should stop the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use respcache_core::{
    Backend, DynStore, Entry, FieldKind, Key, KeyPart, KeySchema, Name, StoreSpec, Timestamp,
};
use respcache_sqlite::{SqliteBackend, SqliteConfig, rusqlite};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn key(id: &str) -> Key {
    Key::new("GET", [KeyPart::Text(id.to_owned())])
}

fn entry(id: &str, payload: &str) -> Entry {
    Entry::new(key(id), Timestamp::now(), payload.to_owned())
}

async fn grouped(path: &Path) -> SqliteBackend {
    SqliteConfig::file(path)
        .with_group_commit(true)
        .connect()
        .await
        .unwrap()
}

async fn open(backend: &SqliteBackend, repo: &str) -> Arc<DynStore> {
    let spec = StoreSpec::new(
        Name::new("c").unwrap(),
        Name::new(repo).unwrap(),
        KeySchema::new([("id", FieldKind::Text)]).unwrap(),
    );
    backend.open_store(&spec).await.unwrap()
}

/// A write that keeps the writer thread busy for a while, so the puts
/// polled right after it are queued behind it, together.
async fn busy(store: &DynStore) -> respcache_core::Result<()> {
    let rows = (0..2_000).map(|i| entry(&format!("bulk{i}"), &"x".repeat(512)));
    store.put_many(rows.collect()).await
}

async fn payload(store: &DynStore, id: &str) -> Option<String> {
    let entry = store.get(&key(id)).await.unwrap()?;
    Some(String::from_utf8(entry.payload.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_share_commits_and_another_handle_sees_every_row() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cache.sqlite");
    let backend = grouped(&path).await;
    let store = open(&backend, "r").await;

    let puts = (0..64).map(|i| store.put(entry(&format!("k{i}"), &format!("v{i}"))));
    for outcome in futures::future::join_all(puts).await {
        outcome?;
    }

    let counts = backend.write_counts();
    assert_eq!(counts.grouped, 64, "{counts:?}");
    assert_eq!(counts.inline, 0, "{counts:?}");
    assert!(
        counts.group_commits < 64,
        "64 concurrent puts took {} commits",
        counts.group_commits
    );
    // Each put returned after its commit: a second backend on the file
    // (another connection, as another process would be) reads them all.
    let other = SqliteBackend::open(&path).await?;
    let other_store = open(&other, "r").await;
    for i in [0, 31, 63] {
        assert_eq!(
            payload(&*other_store, &format!("k{i}")).await,
            Some(format!("v{i}"))
        );
    }
    other.close().await?;
    backend.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_put_sent_after_a_delete_is_not_written_before_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let backend = grouped(&dir.path().join("cache.sqlite")).await;
    let store = open(&backend, "r").await;
    let k = key("k");

    // Polled in this order, behind a busy writer thread: the first put
    // starts a batch; the delete is queued behind it; the second put must
    // not join the first batch (written before the delete), but start one
    // behind the delete.
    let (bulk, first, deleted, second) = futures::join!(
        busy(&*store),
        store.put(entry("k", "first")),
        store.delete(&k),
        store.put(entry("k", "second")),
    );
    bulk?;
    first?;
    deleted?;
    second?;
    assert_eq!(payload(&*store, "k").await.as_deref(), Some("second"));
    backend.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_row_that_fails_in_a_batch_does_not_fail_the_others() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cache.sqlite");
    let backend = grouped(&path).await;
    let (a, b) = (open(&backend, "a").await, open(&backend, "b").await);
    // Another connection drops b's table: a batch holding a put into b
    // fails as a whole, and each put is then written on its own (b's
    // table made again).
    let raw = rusqlite::Connection::open(&path)?;
    raw.execute_batch("DROP TABLE \"c:b\"")?;
    drop(raw);

    let (bulk, into_a, into_b) = futures::join!(
        busy(&*a),
        a.put(entry("x", "in a")),
        b.put(entry("y", "in b"))
    );
    bulk?;
    into_a?;
    into_b?;
    assert_eq!(payload(&*a, "x").await.as_deref(), Some("in a"));
    assert_eq!(payload(&*b, "y").await.as_deref(), Some("in b"));
    let counts = backend.write_counts();
    assert_eq!((counts.grouped, counts.group_commits), (2, 1), "{counts:?}");
    backend.close().await?;
    Ok(())
}

#[tokio::test]
async fn group_commit_is_a_url_option() -> TestResult {
    let on: SqliteConfig = "sqlite:///tmp/x.sqlite?group_commit=true".parse()?;
    assert!(on.group_commit);
    let off: SqliteConfig = "sqlite:///tmp/x.sqlite".parse()?;
    assert!(!off.group_commit);
    let bad = "sqlite:///tmp/x.sqlite?group_commit=sometimes"
        .parse::<SqliteConfig>()
        .unwrap_err();
    assert!(bad.to_string().contains("group_commit"), "{bad}");
    Ok(())
}
