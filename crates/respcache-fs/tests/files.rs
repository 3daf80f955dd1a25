//! What the filesystem backend does on disk, beyond the shared contract:
//! layout, temporary files, undecodable files, in-place expiry updates,
//! large entries, connecting, and the temporary root.

#![cfg(unix)]
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use respcache_core::{
    Backend, DynStore, Entry, ErrorKind, Key, KeyPart, KeySchema, Name, Select, StoreSpec,
    Timestamp, envelope, stats,
};
use respcache_fs::{FsBackend, FsConfig, INLINE_READ_MAX};

fn spec(cache: &str, repository: &str) -> StoreSpec {
    StoreSpec::new(
        Name::new(cache).unwrap(),
        Name::new(repository).unwrap(),
        KeySchema::default(),
    )
}

fn key(text: &str) -> Key {
    Key::new("GET", [KeyPart::from(text)])
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

async fn open(dir: &Path) -> (FsBackend, Arc<DynStore>) {
    let backend = FsBackend::connect(FsConfig::new(dir)).await.unwrap();
    let store = backend.open_store(&spec("c", "r")).await.unwrap();
    (backend, store)
}

fn path_of(root: &Path, key: &Key) -> PathBuf {
    let hex = key.digest().to_hex();
    root.join("c")
        .join("r")
        .join(&hex[..2])
        .join(&hex[2..4])
        .join(&hex)
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn entries_live_at_their_digest_path_never_at_user_text() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, store) = open(dir.path()).await;
    let sneaky = key("../../../etc/passwd");
    store
        .put(Entry::new(sneaky.clone(), at(1), "x"))
        .await
        .unwrap();

    let file = path_of(dir.path(), &sneaky);
    assert!(file.is_file());
    let concrete = backend.open_fs_store(&spec("c", "r")).await.unwrap();
    assert_eq!(concrete.entry_path(&sneaky), file);
    assert_eq!(concrete.dir(), dir.path().join("c").join("r"));
    assert_eq!(
        files_under(dir.path()),
        vec![file.strip_prefix(dir.path()).unwrap().to_path_buf()]
    );
    // The file is the core's envelope, key included; readable by its owner only.
    let bytes = fs::read(&file).unwrap();
    assert_eq!(envelope::decode(&bytes).unwrap().key, sneaky);
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test]
async fn temporary_files_are_invisible_and_clear_removes_stale_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, store) = open(dir.path()).await;
    let k = key("a");
    store.put(Entry::new(k.clone(), at(1), "a")).await.unwrap();
    let folder = path_of(dir.path(), &k).parent().unwrap().to_path_buf();

    // A valid envelope under a temporary name: still never an entry.
    let fresh = folder.join(".tmp-fresh");
    let stale = folder.join(".tmp-stale");
    let bytes = envelope::encode(&Entry::new(key("b"), at(1), "b"));
    fs::write(&fresh, &bytes).unwrap();
    fs::write(&stale, &bytes).unwrap();
    fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(120))
        .unwrap();

    assert_eq!(store.count(Select::All, at(0)).await.unwrap(), 1);
    let scanned: Vec<Entry> = store.scan(Select::All, at(0)).try_collect().await.unwrap();
    assert_eq!(scanned.len(), 1);
    assert_eq!(store.clear(Select::Expired, at(0)).await.unwrap(), 0);
    assert!(
        !stale.exists(),
        "a temporary file older than a minute is a dead writer's"
    );
    assert!(
        fresh.exists(),
        "a young temporary file may belong to a write in progress"
    );
    assert_eq!(store.get(&k).await.unwrap().unwrap().payload, "a");
}

#[tokio::test]
async fn undecodable_files_are_misses_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, store) = open(dir.path()).await;
    let good = key("good");
    store
        .put(Entry::new(good.clone(), at(1), "ok"))
        .await
        .unwrap();

    let garbage = key("garbage");
    let truncated = key("truncated");
    let elsewhere = key("elsewhere");
    for k in [&garbage, &truncated, &elsewhere] {
        store
            .put(Entry::new(k.clone(), at(1), "soon broken"))
            .await
            .unwrap();
    }
    fs::write(path_of(dir.path(), &garbage), b"not an envelope at all").unwrap();
    let whole = envelope::encode(&Entry::new(truncated.clone(), at(1), vec![1u8; 500]));
    fs::write(path_of(dir.path(), &truncated), &whole[..whole.len() - 1]).unwrap();
    // A valid envelope, but of another key, at this key's path.
    let other = envelope::encode(&Entry::new(key("someone else"), at(1), "x"));
    fs::write(path_of(dir.path(), &elsewhere), other).unwrap();

    let before = stats::undecodable_entries();
    for k in [&garbage, &truncated, &elsewhere] {
        assert_eq!(store.get(k).await.unwrap(), None, "{k:?}");
    }
    assert!(stats::undecodable_entries() >= before + 3);
    let got = store
        .get_many(&[garbage.clone(), good.clone(), truncated.clone()])
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(Option::is_some).collect::<Vec<_>>(),
        [false, true, false]
    );
    assert!(!store.contains(&garbage, at(0)).await.unwrap());
    assert!(!store.set_expiry(&garbage, Some(at(5))).await.unwrap());

    let scanned: Vec<Entry> = store.scan(Select::All, at(0)).try_collect().await.unwrap();
    assert_eq!(scanned.iter().map(|e| &e.key).collect::<Vec<_>>(), [&good]);
    // `count` judges by the header: only the garbage file's header is bad.
    assert_eq!(store.count(Select::All, at(0)).await.unwrap(), 3);

    // clear(All) removes undecodable files too, counting only entries.
    assert_eq!(store.clear(Select::All, at(0)).await.unwrap(), 3);
    assert!(!path_of(dir.path(), &garbage).exists());
    assert!(files_under(dir.path()).is_empty());
}

#[tokio::test]
async fn set_expiry_rewrites_the_header_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, store) = open(dir.path()).await;
    let k = key("big");
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let entry = Entry::new(k.clone(), at(10), payload.clone())
        .with_name("big one")
        .with_meta(b"meta".to_vec());
    store.put(entry.clone()).await.unwrap();
    let file = path_of(dir.path(), &k);
    let inode = fs::metadata(&file).unwrap().ino();

    for expiry in [Some(at(20)), None, Some(at(-3)), Some(at(1 << 50)), None] {
        assert!(store.set_expiry(&k, expiry).await.unwrap());
        let meta = fs::metadata(&file).unwrap();
        assert_eq!(
            meta.ino(),
            inode,
            "the file was replaced, not updated in place"
        );
        assert_eq!(
            store.get(&k).await.unwrap(),
            Some(entry.clone().with_expires_at(expiry))
        );
    }
    // Revive a stale entry.
    assert!(store.set_expiry(&k, Some(at(5))).await.unwrap());
    assert!(!store.contains(&k, at(6)).await.unwrap());
    assert!(store.set_expiry(&k, Some(at(100))).await.unwrap());
    assert!(store.contains(&k, at(6)).await.unwrap());
    assert!(!store.set_expiry(&key("missing"), None).await.unwrap());
}

#[tokio::test]
async fn entries_above_the_inline_read_size_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, store) = open(dir.path()).await;
    let inline_max = usize::try_from(INLINE_READ_MAX).unwrap();
    let sizes = [
        0,
        1,
        inline_max - 100,
        inline_max,
        inline_max + 1,
        3 * 1024 * 1024,
    ];
    let entries: Vec<Entry> = sizes
        .iter()
        .map(|&n| Entry::new(key(&n.to_string()), at(1), vec![(n % 256) as u8; n]))
        .collect();
    store.put_many(entries.clone()).await.unwrap();
    for e in &entries {
        assert_eq!(store.get(&e.key).await.unwrap().as_ref(), Some(e));
    }
    let mut keys: Vec<Key> = entries.iter().map(|e| e.key.clone()).collect();
    keys.insert(2, key("missing"));
    let got = store.get_many(&keys).await.unwrap();
    assert_eq!(got[2], None);
    assert_eq!(got.into_iter().flatten().collect::<Vec<_>>(), entries);
    assert_eq!(store.delete_many(&keys).await.unwrap(), sizes.len() as u64);
}

#[tokio::test]
async fn clear_prunes_empty_folders_and_writes_recreate_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, store) = open(dir.path()).await;
    let keys: Vec<Key> = (0..50).map(|i| key(&i.to_string())).collect();
    for k in &keys {
        store.put(Entry::new(k.clone(), at(1), "x")).await.unwrap();
    }
    assert_eq!(store.clear(Select::All, at(0)).await.unwrap(), 50);
    let store_dir = dir.path().join("c").join("r");
    assert_eq!(fs::read_dir(&store_dir).unwrap().count(), 0);
    store
        .put(Entry::new(keys[0].clone(), at(1), "back"))
        .await
        .unwrap();
    assert_eq!(store.get(&keys[0]).await.unwrap().unwrap().payload, "back");
}

#[tokio::test]
async fn drop_store_removes_folders_and_list_stores_ignores_strays() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FsBackend::connect(FsConfig::new(dir.path())).await.unwrap();
    let one = backend.open_store(&spec("c", "one")).await.unwrap();
    backend.open_store(&spec("c", "two")).await.unwrap();
    one.put(Entry::new(key("k"), at(1), "v")).await.unwrap();
    for stray in [".hidden", "a.b", "_x"] {
        fs::create_dir(dir.path().join("c").join(stray)).unwrap();
    }
    fs::write(dir.path().join("c").join("file"), "x").unwrap();
    let cache = Name::new("c").unwrap();
    let names = |v: Vec<Name>| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(backend.list_stores(&cache).await.unwrap()),
        ["one", "two"]
    );

    backend
        .drop_store(&cache, &Name::new("one").unwrap())
        .await
        .unwrap();
    assert!(!dir.path().join("c").join("one").exists());
    assert_eq!(one.get(&key("k")).await.unwrap(), None);
    assert_eq!(names(backend.list_stores(&cache).await.unwrap()), ["two"]);
    backend
        .drop_store(&cache, &Name::new("one").unwrap())
        .await
        .unwrap();

    // The cache folder goes with its last store (here once the strays are gone).
    for stray in [".hidden", "a.b", "_x"] {
        fs::remove_dir(dir.path().join("c").join(stray)).unwrap();
    }
    fs::remove_file(dir.path().join("c").join("file")).unwrap();
    backend
        .drop_store(&cache, &Name::new("two").unwrap())
        .await
        .unwrap();
    assert!(!dir.path().join("c").exists());
    assert!(backend.list_stores(&cache).await.unwrap().is_empty());
}

#[tokio::test]
async fn connects_from_a_url_with_options() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("made by connect");
    let url = format!("fs://{}?fsync=true", root.display()).replace(' ', "%20");
    let backend = FsBackend::connect_url(&url).await.unwrap();
    assert!(backend.config().fsync);
    assert_eq!(backend.root(), root.canonicalize().unwrap());
    let store = backend.open_store(&spec("c", "r")).await.unwrap();
    store.put(Entry::new(key("k"), at(1), "v")).await.unwrap();
    assert!(store.set_expiry(&key("k"), Some(at(9))).await.unwrap());
    let e = store.get(&key("k")).await.unwrap().unwrap();
    assert_eq!((e.payload.as_ref(), e.expires_at), (&b"v"[..], Some(at(9))));

    let e = FsBackend::connect_url("fs:///x?fsync=maybe")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
}

#[tokio::test]
async fn an_unusable_root_is_a_connection_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a file");
    fs::write(&file, "x").unwrap();
    for root in [file.clone(), file.join("below")] {
        let e = FsBackend::connect(FsConfig::new(&root)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
        assert_eq!(e.backend(), Some("fs"));
        assert!(e.to_string().contains("a file"), "{e}");
    }
}

#[tokio::test]
async fn a_temporary_root_lives_as_long_as_any_handle() {
    let backend = FsBackend::temp().await.unwrap();
    let root = backend.root().to_path_buf();
    let store = backend.open_store(&spec("c", "r")).await.unwrap();
    store.put(Entry::new(key("k"), at(1), "v")).await.unwrap();
    backend.close().await.unwrap();
    drop(backend);
    assert!(root.exists(), "a store still uses it");
    assert_eq!(
        store.get(&key("k")).await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    drop(store);
    assert!(!root.exists());
}

#[test]
fn scan_can_be_called_outside_a_runtime() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_backend, store) = runtime.block_on(open(dir.path()));
    runtime
        .block_on(store.put(Entry::new(key("k"), at(1), "v")))
        .unwrap();
    // The stream is made here, outside the runtime, and polled inside it.
    let stream = store.scan(Select::All, at(0));
    let entries: Vec<Entry> = runtime.block_on(stream.try_collect()).unwrap();
    assert_eq!(entries.len(), 1);
}

/// `clear(Expired)` racing a `put` of a fresh entry over the stale one it is
/// clearing must keep the fresh entry (a `put` renamed over the file between
/// `clear` reading its header and removing it used to be removed). The race
/// is aimed at its window: one stale entry at a time, the `put` started
/// 0–99 µs after the `clear`, thousands of times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_expired_never_removes_a_put_landing_in_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, store) = open(dir.path()).await;
    let now = Timestamp::now();
    let stale = Some(at(now.as_millis() - 60_000));
    let fresh = Some(at(now.as_millis() + 3_600_000));
    let mut lost = Vec::new();
    for i in 0..4000u64 {
        let k = key(&format!("k{i}"));
        store
            .put(Entry::new(k.clone(), now, "stale").with_expires_at(stale))
            .await
            .unwrap();
        let writer = {
            let store = Arc::clone(&store);
            let k = k.clone();
            tokio::spawn(async move {
                let start = std::time::Instant::now();
                let delay = Duration::from_micros(i % 100);
                while start.elapsed() < delay {
                    std::hint::spin_loop();
                }
                let e = Entry::new(k, now, "fresh").with_expires_at(fresh);
                store.put(e).await.unwrap();
            })
        };
        store.clear(Select::Expired, now).await.unwrap();
        writer.await.unwrap();
        if store.get(&k).await.unwrap().map(|e| e.payload) != Some("fresh".into()) {
            lost.push(i);
        }
        store.delete(&k).await.unwrap();
    }
    assert!(
        lost.is_empty(),
        "{} fresh entries lost, e.g. iterations {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(
        files_under(dir.path()).is_empty(),
        "files left: {:?}",
        files_under(dir.path())
    );
}

/// A folder where an entry file belongs (another program's, or a stray
/// `mkdir`) is a foreign entry: skipped and counted as undecodable by the
/// calls that walk the store, a miss for `get` — never an error that stops
/// `scan` (and so `respcache stats`/`ls`).
#[tokio::test]
async fn a_folder_where_an_entry_belongs_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, store) = open(dir.path()).await;
    let now = Timestamp::now();
    for k in ["a", "b"] {
        store.put(Entry::new(key(k), now, "v")).await.unwrap();
    }
    let folder = path_of(dir.path(), &key("foreign"));
    fs::create_dir_all(folder.join("inside")).unwrap();

    let before = stats::undecodable_entries();
    let scanned: Vec<Entry> = store.scan(Select::All, now).try_collect().await.unwrap();
    assert_eq!(scanned.len(), 2);
    assert!(
        stats::undecodable_entries() > before,
        "the folder is counted"
    );
    assert_eq!(store.count(Select::All, now).await.unwrap(), 2);
    assert_eq!(store.count(Select::Fresh, now).await.unwrap(), 2);
    assert_eq!(store.get(&key("foreign")).await.unwrap(), None);
    assert!(!store.contains(&key("foreign"), now).await.unwrap());
    let got = store.get_many(&[key("a"), key("foreign")]).await.unwrap();
    assert_eq!(got.iter().filter(|e| e.is_some()).count(), 1);
    // `clear` removes the entries and leaves the foreign folder alone.
    assert_eq!(store.clear(Select::All, now).await.unwrap(), 2);
    assert!(folder.join("inside").is_dir());
}

/// Makes a folder unwritable for this process, and writable again on
/// drop: `chattr +i` as root (whom permission bits do not stop), mode
/// `0555` otherwise.
struct Unwritable(PathBuf);

impl Unwritable {
    fn new(path: &Path) -> Self {
        let as_root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        if as_root {
            let status = std::process::Command::new("chattr")
                .arg("+i")
                .arg(path)
                .status()
                .unwrap();
            assert!(status.success(), "chattr +i {}", path.display());
        } else {
            fs::set_permissions(path, fs::Permissions::from_mode(0o555)).unwrap();
        }
        Unwritable(path.to_owned())
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
        let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o755));
    }
}

#[tokio::test]
async fn a_write_into_an_unwritable_folder_is_a_permission_error() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, store) = open(dir.path()).await;
    let store_dir = dir.path().join("c").join("r");
    assert!(store_dir.is_dir());
    let unwritable = Unwritable::new(&store_dir);
    let e = store
        .put(Entry::new(key("k"), at(1), "v"))
        .await
        .unwrap_err();
    drop(unwritable);
    assert_eq!(e.kind(), ErrorKind::Permission, "{e}");
    assert!(!e.is_temporary());
    assert!(
        e.to_string()
            .starts_with("fs: put in repository \"r\": permission denied: "),
        "{e}"
    );
    store.put(Entry::new(key("k"), at(1), "v")).await.unwrap();
    backend.close().await.unwrap();
}
