//! What a user of the SQLite backend notices beyond the shared contract:
//! table layout and quoting, schema checks, WAL and locks, the inline read
//! path, URLs, temporary and in-memory databases.

// The helpers below are test code too: a failed setup should stop the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use respcache_core::{
    Backend, DynStore, Entry, ErrorKind, FieldKind, Key, KeyPart, KeySchema, Name, Select,
    StoreSpec, Timestamp,
};
use respcache_sqlite::{SqliteBackend, SqliteConfig, rusqlite};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn text_schema() -> KeySchema {
    KeySchema::new([("id", FieldKind::Text)]).unwrap()
}

fn key(id: &str) -> Key {
    Key::new("GET", [KeyPart::Text(id.to_owned())])
}

fn entry(id: &str, payload: &str, expires_at: Option<Timestamp>) -> Entry {
    Entry::new(key(id), Timestamp::now(), payload.to_owned()).with_expires_at(expires_at)
}

async fn open(backend: &SqliteBackend, cache: &str, repo: &str) -> Arc<DynStore> {
    backend
        .open_store(&StoreSpec::new(name(cache), name(repo), text_schema()))
        .await
        .unwrap()
}

fn raw(backend: &SqliteBackend) -> rusqlite::Connection {
    rusqlite::Connection::open(backend.path().unwrap()).unwrap()
}

fn tables(conn: &rusqlite::Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn injection_through_a_name_is_impossible_and_names_with_dashes_are_quoted() -> TestResult {
    let refused = Name::new("x\"; DROP TABLE y; --").err().map(|e| e.kind());
    assert_eq!(refused, Some(ErrorKind::InvalidName));

    let backend = SqliteBackend::temp().await?;
    let schema = KeySchema::new([("track-id", FieldKind::Text), ("v", FieldKind::Integer)])?;
    let store = backend
        .open_store(&StoreSpec::new(
            name("my-cache"),
            name("artists-v2"),
            schema,
        ))
        .await?;
    store
        .put(Entry::new(
            Key::new("GET", ["a-1".into(), 2i64.into()]),
            Timestamp::now(),
            "x",
        ))
        .await?;

    let conn = raw(&backend);
    assert_eq!(
        tables(&conn),
        vec![
            "my-cache:artists-v2".to_owned(),
            "my-cache:artists-v2:tags".to_owned()
        ]
    );
    let (id, v): (String, i64) = conn.query_row(
        r#"SELECT "f_track-id", "f_v" FROM "my-cache:artists-v2" WHERE method = 'GET'"#,
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    assert_eq!((id.as_str(), v), ("a-1", 2), "typed key columns");
    Ok(())
}

#[tokio::test]
async fn repositories_differing_only_in_case_get_their_own_tables() -> TestResult {
    let backend = SqliteBackend::temp().await?;
    let lower = open(&backend, "c", "tracks").await;
    let upper = open(&backend, "c", "Tracks").await;
    lower.put(entry("k", "lower", None)).await?;
    upper.put(entry("k", "upper", None)).await?;
    assert_eq!(
        lower.get(&key("k")).await?.map(|e| e.payload),
        Some(Bytes::from("lower"))
    );
    assert_eq!(
        upper.get(&key("k")).await?.map(|e| e.payload),
        Some(Bytes::from("upper"))
    );
    assert_eq!(
        backend.list_stores(&name("c")).await?,
        vec![name("Tracks"), name("tracks")]
    );
    assert!(backend.list_stores(&name("C")).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn list_stores_treats_underscores_literally() -> TestResult {
    let backend = SqliteBackend::temp().await?;
    open(&backend, "a_b", "one").await;
    open(&backend, "axb", "two").await;
    assert_eq!(backend.list_stores(&name("a_b")).await?, vec![name("one")]);
    assert_eq!(backend.list_stores(&name("a")).await?, Vec::<Name>::new());
    Ok(())
}

#[tokio::test]
async fn another_key_schema_on_an_existing_table_is_a_configuration_error_naming_both() -> TestResult
{
    let backend = SqliteBackend::temp().await?;
    open(&backend, "c", "r")
        .await
        .put(entry("k", "v", None))
        .await?;
    let ints = KeySchema::new([("id", FieldKind::Integer)])?;
    let err = backend
        .open_store(&StoreSpec::new(name("c"), name("r"), ints))
        .await
        .err()
        .ok_or("a different schema was accepted")?;
    assert_eq!(err.kind(), ErrorKind::Configuration);
    let text = err.to_string();
    assert!(text.contains("(method TEXT, f_id TEXT)"), "{text}");
    assert!(text.contains("(method TEXT, f_id INTEGER)"), "{text}");
    assert_eq!(err.backend(), Some("sqlite"));
    // The existing data is untouched.
    let again = open(&backend, "c", "r").await;
    assert_eq!(again.count(Select::All, Timestamp::now()).await?, 1);
    Ok(())
}

#[tokio::test]
async fn clear_expired_deletes_only_rows_that_expired() -> TestResult {
    // The seed's Python backend deleted the *unexpired* rows here.
    let backend = SqliteBackend::temp().await?;
    let s = open(&backend, "c", "r").await;
    let now = Timestamp::now();
    let past = Some(now.saturating_sub(Duration::from_secs(1)));
    let future = Some(now.saturating_add(Duration::from_secs(3600)));
    s.put_many(vec![
        entry("past", "p", past),
        entry("exactly-now", "n", Some(now)),
        entry("future", "f", future),
        entry("never", "v", None),
    ])
    .await?;
    assert_eq!(s.clear(Select::Expired, now).await?, 2);
    let conn = raw(&backend);
    let mut stmt = conn.prepare(r#"SELECT "f_id", expires_at FROM "c:r" ORDER BY "f_id""#)?;
    let left: Vec<(String, Option<i64>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    assert_eq!(
        left,
        vec![
            ("future".to_owned(), future.map(Timestamp::as_millis)),
            ("never".to_owned(), None)
        ]
    );
    Ok(())
}

#[tokio::test]
async fn the_file_is_in_wal_mode_with_typed_columns_and_expiry_and_use_indexes() -> TestResult {
    let backend = SqliteBackend::temp().await?;
    open(&backend, "c", "r").await;
    let conn = raw(&backend);
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    assert_eq!(mode, "wal");
    let mut stmt = conn.prepare(
        r#"SELECT name, type, "notnull", pk FROM pragma_table_info('c:r') ORDER BY cid"#,
    )?;
    let columns: Vec<(String, String, bool, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    let expected = [
        ("method", "TEXT", true, 1),
        ("f_id", "TEXT", true, 2),
        ("name", "TEXT", false, 0),
        ("cached_at", "INTEGER", true, 0),
        ("expires_at", "INTEGER", false, 0),
        ("payload", "BLOB", true, 0),
        ("meta", "BLOB", false, 0),
        ("used_at", "INTEGER", true, 0),
        ("tags", "TEXT", false, 0),
    ]
    .map(|(n, t, nn, pk)| (n.to_owned(), t.to_owned(), nn, pk));
    assert_eq!(columns, expected);
    for column in ["expires_at", "used_at"] {
        let indexed: String = conn.query_row(
            &format!("SELECT name FROM pragma_index_info('c:r:{column}')"),
            [],
            |r| r.get(0),
        )?;
        assert_eq!(indexed, column);
    }
    Ok(())
}

#[tokio::test]
async fn a_write_waits_for_another_connection_then_fails_as_temporary_contention() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("locked.sqlite");
    let backend = SqliteConfig::file(&path)
        .with_busy_timeout(Duration::from_millis(300))
        .connect()
        .await?;
    let s = open(&backend, "c", "r").await;
    s.put(entry("before", "v", None)).await?;

    // Another connection holds the write lock for 150 ms: the put waits.
    let other = rusqlite::Connection::open(&path)?;
    other.execute_batch("BEGIN IMMEDIATE")?;
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        other.execute_batch("COMMIT").map(|_| other)
    });
    let started = Instant::now();
    s.put(entry("waited", "v", None)).await?;
    assert!(started.elapsed() >= Duration::from_millis(100));
    let other = release.join().map_err(|_| "thread")??;

    // Held longer than the busy timeout: a temporary Contention error that
    // names the backend, the repository and the operation.
    other.execute_batch("BEGIN IMMEDIATE")?;
    let err = s
        .put(entry("late", "v", None))
        .await
        .err()
        .ok_or("a write went through a held lock")?;
    assert_eq!(err.kind(), ErrorKind::Contention, "{err}");
    assert!(err.is_temporary());
    assert_eq!(err.backend(), Some("sqlite"));
    assert_eq!(err.repository(), Some("r"));
    assert_eq!(err.operation(), Some(respcache_core::Operation::Put));
    assert!(
        err.to_string()
            .starts_with("sqlite: put in repository \"r\": contention: "),
        "{err}"
    );
    // Reads still work: WAL readers are not blocked by a writer.
    assert!(s.get(&key("before")).await?.is_some());
    other.execute_batch("COMMIT")?;
    s.put(entry("late", "v", None)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_reads_run_inline_on_files_and_in_memory() -> TestResult {
    for backend in [SqliteBackend::temp().await?, SqliteBackend::memory().await?] {
        let s = open(&backend, "c", "r").await;
        s.put(entry("k", "v", None)).await?;
        let before = backend.read_counts();
        for _ in 0..100 {
            assert_eq!(
                s.get(&key("k")).await?.map(|e| e.payload),
                Some(Bytes::from("v"))
            );
            assert!(s.contains(&key("k"), Timestamp::now()).await?);
        }
        let after = backend.read_counts();
        assert_eq!(after.inline - before.inline, 200, "{backend:?}");
        assert_eq!(after.writer, before.writer, "{backend:?}");
    }
    Ok(())
}

#[tokio::test]
async fn without_readers_every_read_goes_to_the_writer() -> TestResult {
    let backend = SqliteBackend::connect("sqlite::memory:?readers=0").await?;
    let s = open(&backend, "c", "r").await;
    s.put(entry("k", "v", None)).await?;
    assert!(s.get(&key("k")).await?.is_some());
    assert_eq!(s.get_many(&[key("k"), key("x")]).await?.len(), 2);
    let counts = backend.read_counts();
    assert_eq!((counts.inline, counts.writer), (0, 2));
    Ok(())
}

/// Reads keep giving the right answer while big write transactions run;
/// returns how many reads ran and where.
async fn read_while_writing(
    backend: &SqliteBackend,
) -> Result<(u64, (u64, u64)), Box<dyn std::error::Error>> {
    let s = open(backend, "c", "r").await;
    s.put(entry("stable", "here", None)).await?;
    let writer = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            for round in 0..10 {
                let batch = (0..2_000)
                    .map(|i| entry(&format!("r{round}-{i}"), "x", None))
                    .collect();
                s.put_many(batch).await?;
            }
            Ok::<_, respcache_core::Error>(())
        })
    };
    let before = backend.read_counts();
    let mut reads = 0;
    while !writer.is_finished() {
        let got = s.get(&key("stable")).await?;
        assert_eq!(got.map(|e| e.payload), Some(Bytes::from("here")));
        reads += 1;
        tokio::task::yield_now().await;
    }
    writer.await??;
    assert_eq!(s.count(Select::All, Timestamp::now()).await?, 20_001);
    let after = backend.read_counts();
    let counts = (after.inline - before.inline, after.writer - before.writer);
    eprintln!("{backend:?}: {reads} reads during writes, (inline, writer) = {counts:?}");
    Ok((reads, counts))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_reads_hand_over_to_the_writer_while_a_write_holds_the_lock() -> TestResult {
    let backend = SqliteBackend::memory().await?;
    let (reads, counts) = read_while_writing(&backend).await?;
    assert!(reads > 0);
    // No WAL in memory: a reader meeting the write lock hands its read over.
    assert!(counts.1 > 0, "(inline, writer) = {counts:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_reads_stay_inline_while_a_write_holds_the_lock() -> TestResult {
    let backend = SqliteBackend::temp().await?;
    let (reads, counts) = read_while_writing(&backend).await?;
    assert!(reads > 0);
    // WAL: readers read the last commit while the writer writes.
    assert!(counts.0 * 10 >= reads * 9, "(inline, writer) = {counts:?}");
    Ok(())
}

#[tokio::test]
async fn clones_and_stores_of_one_memory_backend_share_one_database() -> TestResult {
    let backend = SqliteBackend::memory().await?;
    let clone = backend.clone();
    let a = open(&backend, "c", "r").await;
    a.put(entry("k", "v", None)).await?;
    let b = open(&clone, "c", "r").await;
    assert!(b.get(&key("k")).await?.is_some());
    // Another memory backend is another database.
    let other = SqliteBackend::memory().await?;
    assert!(other.list_stores(&name("c")).await?.is_empty());
    assert_eq!(backend.path(), None);
    Ok(())
}

#[tokio::test]
async fn a_temporary_database_is_deleted_when_the_backend_and_its_stores_drop() -> TestResult {
    let backend = SqliteBackend::temp().await?;
    let path = backend.path().ok_or("no path")?.to_owned();
    let s = open(&backend, "c", "r").await;
    s.put(entry("k", "v", None)).await?;
    assert!(path.exists());
    drop(backend);
    assert!(path.exists(), "a store still uses it");
    assert!(s.get(&key("k")).await?.is_some());
    drop(s);
    assert!(!path.exists());
    assert!(!path.parent().ok_or("no parent")?.exists());
    Ok(())
}

#[tokio::test]
async fn urls_and_paths_open_files_creating_parent_folders() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("deep/er/cache.sqlite");
    let url = format!("sqlite://{}?busy_timeout=250ms&readers=1", path.display());
    let backend = SqliteBackend::connect(&url).await?;
    assert_eq!(backend.path(), Some(path.as_path()));
    assert_eq!(backend.config().busy_timeout, Duration::from_millis(250));
    open(&backend, "c", "r")
        .await
        .put(entry("k", "v", None))
        .await?;
    backend.close().await?;
    // The same file through a plain path sees the entry.
    let again = SqliteBackend::open(&path).await?;
    assert!(open(&again, "c", "r").await.get(&key("k")).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn files_that_cannot_be_opened_are_connection_errors() -> TestResult {
    let dir = tempfile::tempdir()?;
    let garbage = dir.path().join("garbage.sqlite");
    std::fs::write(&garbage, vec![0x42u8; 8192])?;
    let err = SqliteBackend::open(&garbage)
        .await
        .err()
        .ok_or("opened garbage")?;
    // Damaged, not unreachable: retrying cannot help (tests/corrupt.rs).
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    assert_eq!(err.backend(), Some("sqlite"));

    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x")?;
    let err = SqliteBackend::open(file.join("under-a-file.sqlite"))
        .await
        .err()
        .ok_or("opened under a file")?;
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");

    let err = SqliteBackend::connect("sqlite://x.db?nope=1").await.err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::Configuration));
    Ok(())
}

#[tokio::test]
async fn a_dropped_store_reads_as_empty_and_its_next_put_recreates_it() -> TestResult {
    let backend = SqliteBackend::temp().await?;
    let s = open(&backend, "c", "r").await;
    s.put(entry("k", "v", None)).await?;
    backend.drop_store(&name("c"), &name("r")).await?;
    assert_eq!(s.get(&key("k")).await?, None);
    assert!(!s.contains(&key("k"), Timestamp::now()).await?);
    assert_eq!(s.count(Select::All, Timestamp::now()).await?, 0);
    assert_eq!(
        s.scan(Select::All, Timestamp::now())
            .try_collect::<Vec<_>>()
            .await?,
        vec![]
    );
    assert!(!s.delete(&key("k")).await?);
    assert!(!s.set_expiry(&key("k"), None).await?);
    assert!(!s.set_meta(&key("k"), None, None).await?);
    assert_eq!(s.clear(Select::All, Timestamp::now()).await?, 0);
    assert!(backend.list_stores(&name("c")).await?.is_empty());
    s.put(entry("k2", "v2", None)).await?;
    assert_eq!(backend.list_stores(&name("c")).await?, vec![name("r")]);
    assert!(s.get(&key("k2")).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn a_row_with_wrong_types_is_a_counted_miss_not_an_error() -> TestResult {
    let backend = SqliteBackend::temp().await?;
    let s = open(&backend, "c", "r").await;
    s.put(entry("good", "v", None)).await?;
    let conn = raw(&backend);
    conn.execute(
        r#"INSERT INTO "c:r" (method, "f_id", name, cached_at, payload) VALUES ('GET', 'bad', x'ff', 'not a time', x'00')"#,
        [],
    )?;
    let before = respcache_core::stats::undecodable_entries();
    assert_eq!(s.get(&key("bad")).await?, None);
    let scanned: Vec<Entry> = s.scan(Select::All, Timestamp::now()).try_collect().await?;
    assert_eq!(scanned.len(), 1, "the bad row is skipped by scan");
    assert!(respcache_core::stats::undecodable_entries() >= before + 2);
    Ok(())
}

#[tokio::test]
async fn a_key_that_does_not_fit_the_schema() -> TestResult {
    let backend = SqliteBackend::memory().await?;
    let s = open(&backend, "c", "r").await;
    let wrong = Key::new("GET", [KeyPart::Int(1)]);
    let err = s
        .put(Entry::new(wrong.clone(), Timestamp::now(), "v"))
        .await
        .err()
        .ok_or("stored a key of the wrong type")?;
    assert_eq!(err.kind(), ErrorKind::InvalidKey);
    assert_eq!(s.get(&wrong).await?, None);
    assert_eq!(s.get_many(std::slice::from_ref(&wrong)).await?, vec![None]);
    assert!(!s.delete(&wrong).await?);
    Ok(())
}

#[tokio::test]
async fn every_call_after_close_is_closed() -> TestResult {
    let backend = SqliteBackend::temp().await?;
    let s = open(&backend, "c", "r").await;
    s.put(entry("k", "v", None)).await?;
    backend.close().await?;
    backend.close().await?;
    let now = Timestamp::now();
    let kinds = vec![
        s.get(&key("k")).await.err().map(|e| e.kind()),
        s.get_many(&[key("k")]).await.err().map(|e| e.kind()),
        s.put(entry("k", "v", None)).await.err().map(|e| e.kind()),
        s.put_many(vec![entry("k", "v", None)])
            .await
            .err()
            .map(|e| e.kind()),
        s.delete(&key("k")).await.err().map(|e| e.kind()),
        s.delete_many(&[key("k")]).await.err().map(|e| e.kind()),
        s.contains(&key("k"), now).await.err().map(|e| e.kind()),
        s.count(Select::All, now).await.err().map(|e| e.kind()),
        s.clear(Select::All, now).await.err().map(|e| e.kind()),
        s.set_expiry(&key("k"), None).await.err().map(|e| e.kind()),
        s.set_meta(&key("k"), None, None)
            .await
            .err()
            .map(|e| e.kind()),
        s.scan(Select::All, now)
            .try_collect::<Vec<_>>()
            .await
            .err()
            .map(|e| e.kind()),
        backend
            .list_stores(&name("c"))
            .await
            .err()
            .map(|e| e.kind()),
        backend
            .drop_store(&name("c"), &name("r"))
            .await
            .err()
            .map(|e| e.kind()),
        backend
            .open_store(&StoreSpec::new(name("c"), name("r2"), text_schema()))
            .await
            .err()
            .map(|e| e.kind()),
    ];
    assert!(
        kinds.iter().all(|k| *k == Some(ErrorKind::Closed)),
        "{kinds:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_row_writes_run_inline_on_files_and_in_memory() -> TestResult {
    for backend in [SqliteBackend::temp().await?, SqliteBackend::memory().await?] {
        let s = open(&backend, "c", "r").await;
        let before = backend.write_counts();
        for i in 0..50 {
            let id = format!("k{i}");
            s.put(entry(&id, "v", None)).await?;
            let later = Some(Timestamp::from_millis(i64::MAX / 2));
            assert!(s.set_expiry(&key(&id), later).await?);
            assert!(s.set_meta(&key(&id), Some(Bytes::from("m")), None).await?);
            assert!(s.delete(&key(&id)).await?);
            assert!(!s.delete(&key(&id)).await?);
        }
        let after = backend.write_counts();
        assert_eq!(after.inline - before.inline, 250, "{backend:?}");
        assert_eq!(after.writer, before.writer, "{backend:?}");
        assert_eq!(s.count(Select::All, Timestamp::now()).await?, 0);

        // A big entry (or big metadata) goes to the writer thread.
        let big = Bytes::from(vec![7u8; 64 * 1024 + 1]);
        s.put(Entry::new(key("big"), Timestamp::now(), big.clone()))
            .await?;
        assert!(s.set_meta(&key("big"), Some(big.clone()), None).await?);
        let got = s.get(&key("big")).await?.ok_or("big entry missing")?;
        assert_eq!((got.payload, got.meta), (big.clone(), Some(big)));
        let last = backend.write_counts();
        assert_eq!(last.inline, after.inline, "{backend:?}");
    }
    Ok(())
}

#[tokio::test]
async fn an_inline_write_that_meets_another_connections_lock_goes_to_the_writer() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("locked.sqlite");
    let backend = SqliteBackend::open(&path).await?;
    let s = open(&backend, "c", "r").await;
    s.put(entry("k", "before", None)).await?;

    let other = rusqlite::Connection::open(&path)?;
    other.execute_batch("BEGIN IMMEDIATE")?;
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        other.execute_batch("COMMIT")
    });
    let before = backend.write_counts();
    let started = Instant::now();
    // Each write gets SQLITE_BUSY inline, is handed to the writer thread
    // (not applied twice, not failed) and waits there for the lock.
    s.put(entry("k", "after", None)).await?;
    assert!(started.elapsed() >= Duration::from_millis(100));
    release.join().map_err(|_| "thread")??;
    assert!(s.delete(&key("k")).await?);
    let after = backend.write_counts();
    assert_eq!(after.writer - before.writer, 1);
    assert_eq!(after.inline - before.inline, 1);
    assert_eq!(s.get(&key("k")).await?, None);
    Ok(())
}

/// A write whose caller stopped waiting after it was sent to the writer
/// thread still lands before the caller's next write: the next one must
/// not overtake it inline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_write_on_the_writer_thread_is_not_overtaken_by_the_next_one() -> TestResult {
    use futures::FutureExt;
    for backend in [SqliteBackend::temp().await?, SqliteBackend::memory().await?] {
        let s = open(&backend, "c", "r").await;
        // Too big to write inline: always sent to the writer thread.
        let old = Bytes::from(vec![b'o'; 64 * 1024 + 1]);
        for i in 0..100 {
            let id = format!("k{i}");
            let first = Entry::new(key(&id), Timestamp::now(), old.clone());
            // One poll sends it; then the future is dropped.
            let _ = s.put(first).now_or_never();
            s.put(entry(&id, "new", None)).await?;
        }
        for i in 0..100 {
            let got = s.get(&key(&format!("k{i}"))).await?.ok_or("missing")?;
            assert_eq!(got.payload, Bytes::from("new"), "{backend:?} k{i}");
        }
    }
    Ok(())
}

/// Many tasks write at once, inline and through the writer thread, while
/// others run batches and reads: every write is there afterwards.
async fn write_concurrently(backend: &SqliteBackend) -> TestResult {
    const TASKS: usize = 32;
    const PER_TASK: usize = 100;
    let s = open(backend, "c", "r").await;
    let before = backend.write_counts();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let s = Arc::clone(&s);
        tasks.spawn(async move {
            for i in 0..PER_TASK {
                let id = format!("t{t}-{i}");
                s.put(entry(&id, &format!("{id} v1"), None)).await?;
                s.put(entry(&id, &format!("{id} v2"), None)).await?;
                s.set_meta(&key(&id), Some(Bytes::from(id.clone())), None)
                    .await?;
                // A row to delete again.
                s.put(entry(&format!("{id} gone"), "x", None)).await?;
                if !s.delete(&key(&format!("{id} gone"))).await? {
                    return Err(respcache_core::Error::new(
                        ErrorKind::Backend,
                        format!("{id} gone: delete found nothing"),
                    ));
                }
                if i % 10 == 0 {
                    let batch = (0..20)
                        .map(|j| entry(&format!("{id} batch {j}"), "b", None))
                        .collect();
                    s.put_many(batch).await?;
                }
                s.get(&key(&id)).await?;
            }
            Ok::<_, respcache_core::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let all = s.count(Select::All, Timestamp::now()).await?;
    assert_eq!(all as usize, TASKS * PER_TASK * (1 + 20 / 10));
    for t in 0..TASKS {
        let keys: Vec<Key> = (0..PER_TASK).map(|i| key(&format!("t{t}-{i}"))).collect();
        for (i, got) in s.get_many(&keys).await?.into_iter().enumerate() {
            let id = format!("t{t}-{i}");
            let got = got.ok_or_else(|| format!("{id} missing"))?;
            assert_eq!(got.payload, Bytes::from(format!("{id} v2")));
            assert_eq!(got.meta, Some(Bytes::from(id)));
        }
    }
    let after = backend.write_counts();
    let counts = (after.inline - before.inline, after.writer - before.writer);
    eprintln!("{backend:?}: single-row writes (inline, writer) = {counts:?}");
    assert_eq!(counts.0 + counts.1, (TASKS * PER_TASK * 5) as u64);
    assert!(counts.0 > 0, "(inline, writer) = {counts:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_writing_at_once_lose_no_write_in_a_file() -> TestResult {
    write_concurrently(&SqliteBackend::temp().await?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_writing_at_once_lose_no_write_in_memory() -> TestResult {
    write_concurrently(&SqliteBackend::memory().await?).await
}

/// Inline writes do not checkpoint (not on a runtime thread), so the
/// writer thread must: the WAL stays near SQLite's 1000-page threshold
/// however many writes run inline.
#[tokio::test]
async fn the_wal_is_checkpointed_while_writes_run_inline() -> TestResult {
    let backend = SqliteBackend::temp().await?;
    let path = backend.path().ok_or("no path")?.to_owned();
    let s = open(&backend, "c", "r").await;
    let payload = "p".repeat(1024);
    for i in 0..5_000 {
        s.put(entry(&format!("k{}", i % 2_000), &payload, None))
            .await?;
    }
    let counts = backend.write_counts();
    assert!(counts.inline > 4_000, "{counts:?}");
    assert!(
        counts.writer > 0,
        "no write went to the writer to checkpoint"
    );
    let mut wal = path.into_os_string();
    wal.push("-wal");
    let wal_bytes = std::fs::metadata(&wal)?.len();
    // 1000 pages of 4 KiB and a commit's worth past them; without
    // checkpoints, 5000 commits of 2-3 pages would be over 40 MB.
    assert!(wal_bytes < 8 << 20, "the WAL grew to {wal_bytes} bytes");
    assert_eq!(s.count(Select::All, Timestamp::now()).await?, 2_000);
    Ok(())
}

/// SQLite refuses `PRAGMA journal_mode = WAL` at once, without waiting for
/// the busy timeout, while another connection holds the write lock of a file
/// still in rollback mode (as when processes open a new file together):
/// opening must wait for the lock like a write does, not fail.
#[tokio::test]
async fn opening_waits_for_a_write_lock_on_a_file_not_yet_in_wal_mode() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("rollback.sqlite");
    let other = rusqlite::Connection::open(&path)?;
    other.execute_batch("CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")?;
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        other.execute_batch("COMMIT")
    });
    let started = Instant::now();
    let opened = SqliteBackend::open(&path).await;
    release.join().map_err(|_| "thread")??;
    let backend = opened?;
    assert!(started.elapsed() >= Duration::from_millis(100));
    let mode: String = raw(&backend).query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    assert_eq!(mode, "wal");
    let s = open(&backend, "c", "r").await;
    s.put(entry("k", "v", None)).await?;
    assert!(s.get(&key("k")).await?.is_some());
    Ok(())
}

/// The checkpoint an inline commit asks for is handed to the next write —
/// but a write that changes nothing (a `delete` of a missing key, a
/// `set_expiry`/`set_meta` of a missing row) commits no WAL frame, so the
/// writer thread's auto-checkpoint never runs, and the request is gone.
/// With such a write after every inline one, the WAL grows without bound.
#[tokio::test]
async fn the_wal_is_checkpointed_when_the_handed_over_write_changes_nothing() -> TestResult {
    let backend = SqliteBackend::temp().await?;
    let path = backend.path().ok_or("no path")?.to_owned();
    let s = open(&backend, "c", "r").await;
    let payload = "p".repeat(1024);
    for i in 0..5_000 {
        s.put(entry(&format!("k{}", i % 2_000), &payload, None))
            .await?;
        // e.g. invalidating a redirect pointer that was never stored.
        assert!(!s.delete(&key("never stored")).await?);
    }
    let counts = backend.write_counts();
    let mut wal = path.into_os_string();
    wal.push("-wal");
    let wal_bytes = std::fs::metadata(&wal)?.len();
    assert!(
        wal_bytes < 8 << 20,
        "the WAL grew to {wal_bytes} bytes; write counts {counts:?}"
    );
    Ok(())
}

/// Makes a file unwritable for this process, and writable again on drop:
/// `chattr +i` as root (whom permission bits do not stop), read-only
/// permission bits otherwise.
struct Unwritable(std::path::PathBuf);

impl Unwritable {
    fn new(path: &std::path::Path) -> Result<Self, Box<dyn std::error::Error>> {
        let as_root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        if as_root {
            let status = std::process::Command::new("chattr")
                .arg("+i")
                .arg(path)
                .status()?;
            if !status.success() {
                return Err("chattr +i failed".into());
            }
        } else {
            let mut perms = std::fs::metadata(path)?.permissions();
            perms.set_readonly(true);
            std::fs::set_permissions(path, perms)?;
        }
        Ok(Unwritable(path.to_owned()))
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
        if let Ok(meta) = std::fs::metadata(&self.0) {
            let mut perms = meta.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            let _ = std::fs::set_permissions(&self.0, perms);
        }
    }
}

#[tokio::test]
async fn a_write_to_a_read_only_file_is_a_permission_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ro.sqlite");
    let backend = SqliteConfig::file(&path).connect().await?;
    open(&backend, "c", "r")
        .await
        .put(entry("a", "v", None))
        .await?;
    backend.close().await?;
    for side in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("ro.sqlite{side}")));
    }

    let _unwritable = Unwritable::new(&path)?;
    let backend = SqliteConfig::file(&path).connect().await?;
    let s = open(&backend, "c", "r").await;
    let err = s
        .put(entry("b", "v", None))
        .await
        .err()
        .ok_or("a write went into a read-only file")?;
    assert_eq!(err.kind(), ErrorKind::Permission, "{err}");
    assert!(!err.is_temporary());
    assert!(
        err.to_string()
            .starts_with("sqlite: put in repository \"r\": permission denied: "),
        "{err}"
    );
    backend.close().await?;
    Ok(())
}
