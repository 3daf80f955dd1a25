//! A damaged database file at open time: a clear error naming the file, or
//! with `?on_corrupt=reset`, the file moved aside and a fresh database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use respcache_core::{
    Backend, Entry, ErrorKind, FieldKind, Key, KeyPart, KeySchema, Name, StoreSpec, Timestamp,
};
use respcache_sqlite::SqliteBackend;

fn spec(repo: &str) -> StoreSpec {
    StoreSpec::new(
        Name::new("c").unwrap(),
        Name::new(repo).unwrap(),
        KeySchema::new([("id", FieldKind::Text)]).unwrap(),
    )
}

fn key(id: &str) -> Key {
    Key::new("GET", [KeyPart::Text(id.to_owned())])
}

fn url(path: &Path, options: &str) -> String {
    format!("sqlite://{}{options}", path.display())
}

/// 64 KiB that are not a database.
fn garbage(path: &Path) {
    let bytes: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 + 13) as u8).collect();
    std::fs::write(path, bytes).unwrap();
}

/// A real database of about 2 MB, closed (so checkpointed, no WAL left),
/// then cut to a third of its length, as a full disk or a bad copy leaves it.
async fn truncated(path: &Path) {
    let backend = SqliteBackend::open(path).await.unwrap();
    let store = backend.open_store(&spec("r")).await.unwrap();
    let payload = "x".repeat(1024);
    let entries = (0..2000)
        .map(|i| Entry::new(key(&format!("k{i}")), Timestamp::now(), payload.clone()))
        .collect();
    store.put_many(entries).await.unwrap();
    drop(store);
    backend.close().await.unwrap();
    let len = std::fs::metadata(path).unwrap().len();
    assert!(len > 1_000_000, "the database is {len} bytes");
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(len / 3).unwrap();
}

/// The files named `<db>.corrupt-*` next to `db`.
fn moved_aside(db: &Path) -> Vec<PathBuf> {
    let prefix = format!("{}.corrupt-", db.file_name().unwrap().to_string_lossy());
    let mut found: Vec<PathBuf> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .collect();
    found.sort();
    found
}

async fn assert_refused(path: &Path) {
    let err = SqliteBackend::connect(&url(path, ""))
        .await
        .expect_err("a damaged file was opened");
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("on_corrupt=reset"), "{text}");
    assert!(
        moved_aside(path).is_empty(),
        "nothing is moved without the option"
    );
}

async fn assert_reset(path: &Path, original: &[u8]) {
    let backend = SqliteBackend::connect(&url(path, "?on_corrupt=reset"))
        .await
        .unwrap_or_else(|e| panic!("on_corrupt=reset did not start afresh: {e}"));
    let store = backend.open_store(&spec("r")).await.unwrap();
    assert_eq!(
        store.get(&key("k1")).await.unwrap(),
        None,
        "a fresh database"
    );
    let entry = Entry::new(key("new"), Timestamp::now(), "fresh");
    store.put(entry.clone()).await.unwrap();
    assert_eq!(store.get(&entry.key).await.unwrap(), Some(entry));
    let aside = moved_aside(path);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(&aside[0]).unwrap(),
        original,
        "the damaged file is kept as it was"
    );
}

#[tokio::test]
async fn a_garbage_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.sqlite");
    garbage(&path);
    assert_refused(&path).await;
}

#[tokio::test]
async fn a_truncated_database_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.sqlite");
    truncated(&path).await;
    assert_refused(&path).await;
}

#[tokio::test]
async fn on_corrupt_reset_moves_a_garbage_file_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.sqlite");
    garbage(&path);
    let original = std::fs::read(&path).unwrap();
    assert_reset(&path, &original).await;
}

#[tokio::test]
async fn on_corrupt_reset_moves_a_truncated_database_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.sqlite");
    truncated(&path).await;
    let original = std::fs::read(&path).unwrap();
    assert_reset(&path, &original).await;
}

#[tokio::test]
async fn on_corrupt_reset_leaves_a_sound_database_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.sqlite");
    {
        let backend = SqliteBackend::open(&path).await.unwrap();
        let store = backend.open_store(&spec("r")).await.unwrap();
        store
            .put(Entry::new(key("kept"), Timestamp::now(), "v"))
            .await
            .unwrap();
        backend.close().await.unwrap();
    }
    let backend = SqliteBackend::connect(&url(&path, "?on_corrupt=reset"))
        .await
        .unwrap();
    let store = backend.open_store(&spec("r")).await.unwrap();
    assert!(store.get(&key("kept")).await.unwrap().is_some());
    assert!(moved_aside(&path).is_empty());
}
