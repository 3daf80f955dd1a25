//! The filesystem tag index: marker files under `<store>/_tags/`, written
//! before the entry, so a crash leaves at worst a stale marker, which a
//! purge checks against the entry's own tags and later removes.

// Test code: a failed setup should stop the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use respcache_core::{
    Backend, Entry, FieldKind, Key, KeySchema, Name, Select, StoreSpec, Tags, Timestamp, tags,
};
use respcache_fs::{FsBackend, FsConfig};

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

fn marker_dir(root: &Path, tag: &str) -> PathBuf {
    root.join("c")
        .join("r")
        .join("_tags")
        .join(tags::digest_hex(tag))
}

fn markers(root: &Path, tag: &str) -> usize {
    fs::read_dir(marker_dir(root, tag)).map_or(0, |d| d.count())
}

fn age(path: &Path) {
    let old = SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

#[tokio::test]
async fn stale_markers_are_harmless_and_removed_once_settled() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FsBackend::connect(FsConfig::new(dir.path())).await.unwrap();
    let store = backend.open_store(&spec()).await.unwrap();
    let t = Tags::new(["t"]).unwrap();
    store
        .put(Entry::new(key("replaced"), Timestamp::now(), "a").with_tags(t.clone()))
        .await
        .unwrap();
    store
        .put(Entry::new(key("replaced"), Timestamp::now(), "b"))
        .await
        .unwrap();
    store
        .put(Entry::new(key("deleted"), Timestamp::now(), "c").with_tags(t.clone()))
        .await
        .unwrap();
    store.delete(&key("deleted")).await.unwrap();
    // A crash between the marker and the rename: a marker, no entry.
    let crashed = key("crashed").digest().to_hex();
    fs::write(marker_dir(dir.path(), "t").join(&crashed), b"").unwrap();
    assert_eq!(markers(dir.path(), "t"), 3);

    assert_eq!(store.purge_tag("t").await.unwrap(), 0, "no entry carries t");
    assert!(
        store.get(&key("replaced")).await.unwrap().is_some(),
        "the untagged rewrite stays"
    );
    assert_eq!(
        markers(dir.path(), "t"),
        3,
        "young markers stay (a put may be between its steps)"
    );
    for m in fs::read_dir(marker_dir(dir.path(), "t")).unwrap() {
        age(&m.unwrap().path());
    }
    assert_eq!(store.purge_tag("t").await.unwrap(), 0);
    assert_eq!(
        markers(dir.path(), "t"),
        0,
        "settled stale markers are removed"
    );
    assert!(
        !marker_dir(dir.path(), "t").exists(),
        "and their empty folder"
    );
    assert_eq!(
        store.count(Select::All, Timestamp::now()).await.unwrap(),
        1,
        "the index is not an entry"
    );
}

#[tokio::test]
async fn the_index_survives_a_new_handle() {
    let dir = tempfile::tempdir().unwrap();
    {
        let backend = FsBackend::connect(FsConfig::new(dir.path())).await.unwrap();
        let store = backend.open_store(&spec()).await.unwrap();
        let t = Tags::new(["t"]).unwrap();
        store
            .put(Entry::new(key("a"), Timestamp::now(), "a").with_tags(t))
            .await
            .unwrap();
        backend.close().await.unwrap();
    }
    let backend = FsBackend::connect(FsConfig::new(dir.path())).await.unwrap();
    let store = backend.open_store(&spec()).await.unwrap();
    assert_eq!(store.purge_tag("t").await.unwrap(), 1);
    assert!(store.get(&key("a")).await.unwrap().is_none());
}

/// Purges 1,000 tagged entries among 10,000 and prints the time (the
/// report's number); bounded generously.
#[tokio::test]
async fn purge_of_a_thousand_tagged_entries() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FsBackend::connect(FsConfig::new(dir.path())).await.unwrap();
    let store = backend.open_store(&spec()).await.unwrap();
    let t = Tags::new(["hot"]).unwrap();
    let entries: Vec<Entry> = (0..10_000)
        .map(|i| {
            let e = Entry::new(key(&format!("k{i}")), Timestamp::now(), vec![0u8; 100]);
            if i % 10 == 0 {
                e.with_tags(t.clone())
            } else {
                e
            }
        })
        .collect();
    store.put_many(entries).await.unwrap();
    let started = Instant::now();
    assert_eq!(store.purge_tag("hot").await.unwrap(), 1_000);
    let took = started.elapsed();
    eprintln!("fs: purge_tag of 1,000 of 10,000 entries took {took:?}");
    assert!(took.as_secs() < 30, "{took:?}");
    assert_eq!(
        store.count(Select::All, Timestamp::now()).await.unwrap(),
        9_000
    );
}
