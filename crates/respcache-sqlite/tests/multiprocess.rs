//! Four OS processes share one database file: they all open it at once
//! (racing to switch it to WAL and to create the table), write 500 entries
//! each in small transactions while reading each other's, and nobody sees
//! `database is locked` or any other error.
//!
//! The test re-runs its own binary as the workers: with
//! `RESPCACHE_SQLITE_WORKER` set, the test function is a worker instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use respcache_core::{
    Backend, Entry, FieldKind, Key, KeyPart, KeySchema, Name, Select, StoreSpec, Timestamp,
};
use respcache_sqlite::SqliteBackend;

const TEST_NAME: &str = "four_processes_share_one_database_file";
const WORKER: &str = "RESPCACHE_SQLITE_WORKER";
const DATABASE: &str = "RESPCACHE_SQLITE_WORKER_DB";
const GO: &str = "RESPCACHE_SQLITE_WORKER_GO";
const PROCESSES: i64 = 4;
const PER_PROCESS: i64 = 500;

fn spec() -> StoreSpec {
    let schema = KeySchema::new([("worker", FieldKind::Integer), ("n", FieldKind::Integer)])
        .unwrap_or_default();
    match (Name::new("shared"), Name::new("entries")) {
        (Ok(cache), Ok(repo)) => StoreSpec::new(cache, repo, schema),
        _ => unreachable!("valid names"),
    }
}

fn key(worker: i64, n: i64) -> Key {
    Key::new("GET", [KeyPart::Int(worker), KeyPart::Int(n)])
}

fn payload(worker: i64, n: i64) -> Vec<u8> {
    format!("worker {worker} entry {n};")
        .repeat(40)
        .into_bytes()
}

#[test]
fn four_processes_share_one_database_file() {
    if let Ok(worker) = std::env::var(WORKER) {
        let db = PathBuf::from(std::env::var(DATABASE).unwrap());
        let go = PathBuf::from(std::env::var(GO).unwrap());
        let worker: i64 = worker.parse().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        match runtime.block_on(work(worker, &db, &go)) {
            Ok(report) => println!("WORKER-OK {report}"),
            Err(e) => {
                println!("WORKER-ERROR {e}");
                std::process::exit(1);
            }
        }
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested/shared.sqlite");
    let go = dir.path().join("go");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|w| {
            Command::new(&exe)
                .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
                .env(WORKER, w.to_string())
                .env(DATABASE, &db)
                .env(GO, &go)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Let every process start, then release them together.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&go, b"go").unwrap();

    let mut reports = Vec::new();
    for (w, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let all = format!("{stdout}\n{stderr}");
        assert!(
            !all.contains("database is locked"),
            "worker {w} saw a lock error:\n{all}"
        );
        assert!(out.status.success(), "worker {w} failed:\n{all}");
        let report = stdout
            .lines()
            .find_map(|l| l.split_once("WORKER-OK ").map(|(_, report)| report))
            .unwrap_or_else(|| panic!("worker {w} did not report:\n{all}"))
            .to_owned();
        reports.push(report);
    }
    eprintln!("{}", reports.join("\n"));

    // Every write of every process is there, whole.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let backend = SqliteBackend::open(&db).await.unwrap();
        let store = backend.open_store(&spec()).await.unwrap();
        assert_eq!(
            store.count(Select::All, Timestamp::now()).await.unwrap(),
            (PROCESSES * PER_PROCESS) as u64
        );
        for w in 0..PROCESSES {
            let keys: Vec<Key> = (0..PER_PROCESS).map(|n| key(w, n)).collect();
            let got = store.get_many(&keys).await.unwrap();
            for (n, e) in got.into_iter().enumerate() {
                let e = e.unwrap_or_else(|| panic!("entry {w}/{n} missing"));
                assert_eq!(e.payload.as_ref(), payload(w, n as i64).as_slice());
            }
        }
        backend.close().await.unwrap();
    });
}

/// One worker: 500 entries in about 170 small write transactions
/// (alternately one put and a batch of 5), each followed by a read of
/// another worker's entry;
/// then it waits until every worker is done and reads everything.
async fn work(worker: i64, db: &Path, go: &Path) -> respcache_core::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !go.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let backend = SqliteBackend::open(db).await?;
    let store = backend.open_store(&spec()).await?;
    let entry =
        |n: i64| Entry::new(key(worker, n), Timestamp::now(), payload(worker, n)).with_name("x");
    let mut n = 0;
    let mut seen_others = 0u64;
    let mut round = 0i64;
    while n < PER_PROCESS {
        if round % 2 == 0 {
            store.put(entry(n)).await?;
            n += 1;
        } else {
            let end = (n + 5).min(PER_PROCESS);
            store.put_many((n..end).map(entry).collect()).await?;
            n = end;
        }
        let other = (worker + 1 + round % (PROCESSES - 1)) % PROCESSES;
        let probe = round % PER_PROCESS;
        if let Some(e) = store.get(&key(other, probe)).await? {
            if e.payload.as_ref() != payload(other, probe).as_slice() {
                return Err(respcache_core::Error::new(
                    respcache_core::ErrorKind::Backend,
                    format!("entry {other}/{probe} came back different"),
                ));
            }
            seen_others += 1;
        }
        store.contains(&key(other, probe), Timestamp::now()).await?;
        round += 1;
    }
    // Wait for the others, then read every entry of theirs.
    let total = (PROCESSES * PER_PROCESS) as u64;
    while store.count(Select::All, Timestamp::now()).await? < total {
        if Instant::now() > deadline {
            return Err(respcache_core::Error::new(
                respcache_core::ErrorKind::Timeout,
                "the other workers did not finish in 30 s",
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut read_all = 0;
    for other in (0..PROCESSES).filter(|o| *o != worker) {
        for n in 0..PER_PROCESS {
            match store.get(&key(other, n)).await? {
                Some(e) if e.payload.as_ref() == payload(other, n).as_slice() => read_all += 1,
                _ => {
                    return Err(respcache_core::Error::new(
                        respcache_core::ErrorKind::Backend,
                        format!("entry {other}/{n} missing or different"),
                    ));
                }
            }
        }
    }
    let counts = backend.read_counts();
    let writes = backend.write_counts();
    backend.close().await?;
    Ok(format!(
        "worker {worker}: wrote {n} in {round} transactions, saw {seen_others} of the others' \
         entries while writing, then read all {read_all}; reads inline {} / writer {}; \
         single-row writes inline {} / writer {}",
        counts.inline, counts.writer, writes.inline, writes.writer
    ))
}
