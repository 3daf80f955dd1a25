//! The byte budget on a real folder: the issue's number (50 MB budget,
//! 200 MB written, the folder stays under 60 MB) and use times written in
//! batches rather than per hit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use respcache_core::Bytes;
use respcache_core::budget::Budget;
use respcache_core::{
    Backend, BytesCodec, DynStore, Entry, FieldKind, Key, KeyPart, KeySchema, Name, Repository,
    RepositoryOptions, Request, StoreSpec, TemplateSettings, Timestamp,
};
use respcache_fs::{FsBackend, FsConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

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

/// (apparent bytes, allocated bytes) of every file under `dir`.
fn folder_size(dir: &Path) -> (u64, u64) {
    let mut total = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            let (a, b) = folder_size(&entry.path());
            total = (total.0 + a, total.1 + b + meta.blocks() * 512);
        } else {
            total = (total.0 + meta.len(), total.1 + meta.blocks() * 512);
        }
    }
    total
}

#[tokio::test]
async fn a_fifty_megabyte_budget_keeps_the_folder_under_sixty_with_two_hundred_written()
-> TestResult {
    const BUDGET: u64 = 50_000_000;
    const LIMIT: u64 = 60_000_000;
    const BODY: usize = 100 * 1024;
    let dir = tempfile::tempdir()?;
    let backend = FsBackend::connect(
        FsConfig::new(dir.path().join("cache")).with_budget(Budget::bytes(BUDGET)),
    )
    .await?;
    let settings = TemplateSettings::<Bytes>::new("pages", "/pages/{id:int}", BytesCodec)?;
    let pages =
        Repository::create(&backend, "site", settings, RepositoryOptions::default()).await?;
    let mut written = 0u64;
    let mut largest = (0, 0);
    let mut i = 0u64;
    while written < 200 * 1024 * 1024 {
        let req = Request::get(&format!("https://example.com/pages/{i}"))?;
        pages.save_response(&req, &noise(i, BODY)).await?;
        written += BODY as u64;
        if i.is_multiple_of(16) {
            let first = Request::get("https://example.com/pages/0")?;
            assert!(
                pages.get_response(&first).await?.is_some(),
                "page 0 evicted at {i}"
            );
        }
        if i.is_multiple_of(32) {
            let size = folder_size(backend.root());
            if size.1 > largest.1 {
                largest = size;
            }
        }
        i += 1;
    }
    let end = folder_size(backend.root());
    let usage = backend.eviction().unwrap().usage().await?;
    eprintln!(
        "budget {BUDGET} B, written {written} B in {i} bodies: usage {} B in {} entries; \
         largest folder: {} B apparent, {} B allocated; at the end: {} B apparent, {} B allocated",
        usage.bytes, usage.entries, largest.0, largest.1, end.0, end.1
    );
    assert!(usage.bytes <= BUDGET, "{usage:?}");
    assert!(usage.bytes >= BUDGET * 8 / 10, "{usage:?}");
    assert!(largest.1.max(end.1) < LIMIT, "{largest:?} {end:?}");
    backend.close().await?;
    Ok(())
}

#[tokio::test]
async fn hits_are_recorded_in_memory_and_reorder_the_trim() -> TestResult {
    let (backend, store) = temp_store().await?;
    let key = |i: u32| Key::new("GET", [KeyPart::Text(format!("k{i}"))]);
    for i in 0..5 {
        store
            .put(Entry::new(key(i), Timestamp::from_millis(1), "v"))
            .await?;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let first = backend.root().join("c/r");
    let path_of = |i: u32| {
        let hex = key(i).digest().to_hex();
        first.join(&hex[..2]).join(&hex[2..4]).join(hex.as_str())
    };
    let written = std::fs::metadata(path_of(0))?.modified()?;
    for _ in 0..100 {
        assert!(store.get(&key(0)).await?.is_some());
    }
    assert_eq!(
        std::fs::metadata(path_of(0))?.modified()?,
        written,
        "a hit wrote the file"
    );
    let done = backend
        .eviction()
        .unwrap()
        .trim_to(Budget::entries(2), &|_| {})
        .await?;
    assert_eq!(done.removed, 3);
    assert!(
        store.get(&key(0)).await?.is_some(),
        "the entry read last went"
    );
    assert!(store.get(&key(4)).await?.is_some(), "the newest entry went");
    assert!(std::fs::metadata(path_of(0))?.modified()? > written);
    Ok(())
}

#[tokio::test]
async fn close_writes_the_recorded_hits_without_walking() -> TestResult {
    let (backend, store) = temp_store().await?;
    let key = Key::new("GET", [KeyPart::Text("k".into())]);
    store
        .put(Entry::new(key.clone(), Timestamp::from_millis(1), "v"))
        .await?;
    let path = store_path(backend.root(), &key);
    let written = std::fs::metadata(&path)?.modified()?;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(store.get(&key).await?.is_some());
    assert_eq!(std::fs::metadata(&path)?.modified()?, written);
    backend.close().await?;
    assert!(std::fs::metadata(&path)?.modified()? > written);
    Ok(())
}

/// A temporary backend and its store `c/r` (keys: one text field), whose
/// files [`store_path`] finds.
async fn temp_store() -> Result<(FsBackend, std::sync::Arc<DynStore>), Box<dyn std::error::Error>> {
    let backend = FsBackend::temp().await?;
    let store = backend
        .open_store(&StoreSpec::new(
            Name::new("c")?,
            Name::new("r")?,
            KeySchema::new([("id", FieldKind::Text)])?,
        ))
        .await?;
    Ok((backend, store))
}

fn store_path(root: &Path, key: &Key) -> std::path::PathBuf {
    let hex = key.digest().to_hex();
    root.join("c/r")
        .join(&hex[..2])
        .join(&hex[2..4])
        .join(hex.as_str())
}

/// File systems keep modification times at their own granularity (a clock
/// tick on ext4 under load, 2 s on FAT): entries written close together
/// share a use time, and a trim must still remove just what it was asked.
#[tokio::test]
async fn a_trim_removes_exactly_enough_when_use_times_tie() -> TestResult {
    let (backend, store) = temp_store().await?;
    let key = |i: u32| Key::new("GET", [KeyPart::Text(format!("k{i}"))]);
    let same = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    for i in 0..10 {
        store
            .put(Entry::new(key(i), Timestamp::from_millis(1), "v"))
            .await?;
        std::fs::File::open(store_path(backend.root(), &key(i)))?.set_modified(same)?;
    }
    let done = backend
        .eviction()
        .unwrap()
        .trim_to(Budget::entries(3), &|_| {})
        .await?;
    assert_eq!(done.removed, 7, "entries removed");
    let left = (0..10)
        .filter(|i| store_path(backend.root(), &key(*i)).exists())
        .count();
    assert_eq!(left, 3, "entries left");
    Ok(())
}
