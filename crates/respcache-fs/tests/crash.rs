//! Kills a writer mid-write, again and again, and checks that every entry
//! reads back whole.
//!
//! The test binary re-executes itself as a *writer* (selected by an
//! environment variable) that overwrites a few keys in a tight loop with
//! 1–4 MiB payloads derived from a version number, through `put`,
//! `put_many` and `set_expiry` (with `fsync` every other round), and reports on stdout each version it
//! starts and each write that returned. The checker kills it with SIGKILL
//! at a random moment (every other round: the first moment after that when
//! a write is under way), then asserts with a fresh backend that
//!
//! - every key reads back as a complete entry of one version, payload,
//!   name, timestamps and metadata all consistent with that version;
//! - no acknowledged write was lost, and no version newer than the last one
//!   started appears;
//! - `count` and `scan` agree with the keys that read back;
//! - the temporary files a killed write leaves behind are invisible, and
//!   `clear` removes them once they are older than a minute.
//!
//! It keeps going until at least `MIN_MID_WRITE_KILLS` kills landed in the
//! middle of a write (a temporary file was left behind), so the test cannot
//! pass without exercising that case.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use respcache_core::{
    Backend, DynStore, Entry, Key, KeyPart, KeySchema, Name, Select, StoreSpec, Timestamp,
};
use respcache_fs::{FsBackend, FsConfig};

const WRITER_ENV: &str = "RESPCACHE_FS_CRASH_WRITER_ROOT";
const ROUND_ENV: &str = "RESPCACHE_FS_CRASH_WRITER_ROUND";
const KEYS: u64 = 3;
const MIN_ROUNDS: u32 = 8;
const MAX_ROUNDS: u32 = 60;
const MIN_MID_WRITE_KILLS: u32 = 3;
const MIB: u64 = 1024 * 1024;
const PAGE: usize = 4096;

fn main() -> ExitCode {
    if let Ok(root) = std::env::var(WRITER_ENV) {
        let round: u64 = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
        runtime().block_on(writer(PathBuf::from(root), round));
        return ExitCode::SUCCESS;
    }
    let args = libtest_mimic::Arguments::from_args();
    let trial = libtest_mimic::Trial::test("killed_writer_never_leaves_a_torn_entry", || {
        runtime().block_on(checker());
        Ok(())
    });
    libtest_mimic::run(&args, vec![trial]).exit_code()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn spec() -> StoreSpec {
    StoreSpec::new(
        Name::new("crash").unwrap(),
        Name::new("big").unwrap(),
        KeySchema::new([("n", respcache_core::FieldKind::Integer)]).unwrap(),
    )
}

fn key(k: u64) -> Key {
    Key::new("GET", [KeyPart::Int(k as i64)])
}

/// A number mixing `k` and `version`, for sizes and contents.
fn mix(k: u64, version: u64) -> u64 {
    let mut x = version.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x.wrapping_mul(0x94D0_49BB_1331_11EB)
}

/// The payload of key `k` at `version`: 1–4 MiB of one fill byte, with
/// `(k, version, page)` stamped at the start of every 4 KiB page, so a file
/// mixing two versions, or a zeroed page, never passes for either. (Cheap to
/// build, so the writer spends its time writing, not computing.)
fn payload(k: u64, version: u64) -> Vec<u8> {
    let seed = mix(k, version);
    let len = (MIB + seed % (3 * MIB)) as usize;
    let mut out = vec![(seed >> 56) as u8 | 1; len];
    for (page, chunk) in out.chunks_mut(PAGE).enumerate() {
        let stamp = [k, version, page as u64].map(u64::to_le_bytes).concat();
        let n = stamp.len().min(chunk.len());
        chunk[..n].copy_from_slice(&stamp[..n]);
    }
    out
}

fn entry(k: u64, version: u64) -> Entry {
    Entry::new(
        key(k),
        Timestamp::from_millis(version as i64),
        payload(k, version),
    )
    .with_name(format!("k{k}-v{version}"))
    .with_expires_at(Some(Timestamp::from_millis(version as i64 * 10)))
    .with_meta(version.to_be_bytes().to_vec())
}

/// The writer process: overwrites the keys forever, reporting on stdout.
async fn writer(root: PathBuf, round: u64) {
    use std::io::Write;
    // Every other round flushes each write (and so spends longer mid-write).
    let config = FsConfig::new(root).with_fsync(round % 2 == 1);
    let backend = FsBackend::connect(config).await.unwrap();
    let store = backend.open_store(&spec()).await.unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    let mut version = round * 1_000_000;
    loop {
        version += 1;
        writeln!(out, "begin {version}").unwrap();
        out.flush().unwrap();
        if version.is_multiple_of(2) {
            for k in 0..KEYS {
                store.put(entry(k, version)).await.unwrap();
                writeln!(out, "put {k} {version}").unwrap();
                out.flush().unwrap();
            }
        } else {
            store
                .put_many((0..KEYS).map(|k| entry(k, version)).collect())
                .await
                .unwrap();
            for k in 0..KEYS {
                writeln!(out, "put {k} {version}").unwrap();
            }
            out.flush().unwrap();
        }
        if version.is_multiple_of(3) {
            let k = version % KEYS;
            let at = Timestamp::from_millis(version as i64 * 10 + 5);
            assert!(store.set_expiry(&key(k), Some(at)).await.unwrap());
        }
    }
}

/// What the writer reported before it was killed.
#[derive(Default)]
struct Reports {
    ready: bool,
    last_begun: u64,
    acknowledged: HashMap<u64, u64>,
}

async fn checker() {
    let root = tempfile::tempdir().unwrap();
    let store_dir = root.path().join("crash").join("big");
    let mut acknowledged: HashMap<u64, u64> = HashMap::new();
    let mut last_begun = 0;
    let mut mid_write_kills = 0;
    let mut rounds = 0;
    while rounds < MIN_ROUNDS || mid_write_kills < MIN_MID_WRITE_KILLS {
        rounds += 1;
        assert!(
            rounds <= MAX_ROUNDS,
            "only {mid_write_kills} of {MAX_ROUNDS} kills landed mid-write"
        );
        let reports = run_and_kill_writer(root.path(), u64::from(rounds));
        assert!(reports.ready, "round {rounds}: the writer never started");
        last_begun = last_begun.max(reports.last_begun);
        for (k, v) in reports.acknowledged {
            acknowledged.insert(k, v);
        }

        let temps = temp_files(&store_dir);
        if !temps.is_empty() {
            mid_write_kills += 1;
        }
        check_store(root.path(), &acknowledged, last_begun, &temps, rounds).await;
    }
    eprintln!("{rounds} rounds, {mid_write_kills} kills mid-write");
}

/// Starts a writer, kills it at a random moment, and returns its reports.
fn run_and_kill_writer(root: &Path, round: u64) -> Reports {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(WRITER_ENV, root)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait until the writer has opened the store, then let it write for a while.
    let first = lines_rx.recv_timeout(Duration::from_secs(60));
    let ready = first.as_deref() == Ok("ready");
    if ready {
        std::thread::sleep(Duration::from_millis(rand::random_range(20..500)));
        if round.is_multiple_of(2) {
            // Aim: wait until a write is under way (its temporary file exists).
            let store_dir = root.join("crash").join("big");
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while temp_files(&store_dir).is_empty() && std::time::Instant::now() < deadline {}
        }
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the writer exited on its own: {status}");
    reader.join().unwrap();

    let mut reports = Reports {
        ready,
        ..Reports::default()
    };
    for line in lines_rx.try_iter() {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["begin", v] => reports.last_begun = v.parse().unwrap(),
            ["put", k, v] => {
                reports
                    .acknowledged
                    .insert(k.parse().unwrap(), v.parse().unwrap());
            }
            other => panic!("unexpected writer output {other:?}"),
        }
    }
    reports
}

/// Temporary files under the store's folder.
fn temp_files(store_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![store_dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else if e.file_name().to_string_lossy().starts_with(".tmp-") {
                found.push(e.path());
            }
        }
    }
    found
}

/// Checks the store as a new process would find it.
async fn check_store(
    root: &Path,
    acknowledged: &HashMap<u64, u64>,
    last_begun: u64,
    temps: &[PathBuf],
    round: u32,
) {
    let backend = FsBackend::connect(FsConfig::new(root)).await.unwrap();
    let store = backend.open_store(&spec()).await.unwrap();
    let mut present = BTreeSet::new();
    for k in 0..KEYS {
        match store.get(&key(k)).await.unwrap() {
            Some(e) => {
                let v = check_entry(&e, k, round);
                let acked = acknowledged.get(&k).copied().unwrap_or(0);
                assert!(
                    v >= acked,
                    "round {round}: key {k} went back from v{acked} to v{v}"
                );
                assert!(
                    v <= last_begun,
                    "round {round}: key {k} has v{v}, never begun"
                );
                present.insert(k);
            }
            None => assert!(
                !acknowledged.contains_key(&k),
                "round {round}: acknowledged key {k} is missing"
            ),
        }
    }
    let far_past = Timestamp::from_millis(0);
    assert_eq!(
        store.count(Select::All, far_past).await.unwrap(),
        present.len() as u64
    );
    assert_eq!(
        store.count(Select::Fresh, far_past).await.unwrap(),
        present.len() as u64
    );
    let scanned: Vec<Entry> = store
        .scan(Select::All, far_past)
        .try_collect()
        .await
        .unwrap();
    let scanned_keys: BTreeSet<u64> = scanned
        .iter()
        .map(|e| {
            let k = e.key.fields()[0].as_int().unwrap() as u64;
            check_entry(e, k, round);
            k
        })
        .collect();
    assert_eq!(
        scanned_keys, present,
        "round {round}: scan disagrees with get"
    );

    clear_stale_temps(&*store, temps, present.len() as u64).await;
    backend.close().await.unwrap();
}

/// Ages the leftover temporary files past a minute and checks that
/// `clear` removes them (and nothing else: no entry is expired at time 0).
async fn clear_stale_temps(store: &DynStore, temps: &[PathBuf], entries: u64) {
    let two_minutes_ago = SystemTime::now() - Duration::from_secs(120);
    for t in temps {
        let f = std::fs::File::options().write(true).open(t).unwrap();
        f.set_modified(two_minutes_ago).unwrap();
    }
    let far_past = Timestamp::from_millis(0);
    assert_eq!(store.clear(Select::Expired, far_past).await.unwrap(), 0);
    for t in temps {
        assert!(
            !t.exists(),
            "clear left the stale temporary file {}",
            t.display()
        );
    }
    assert_eq!(store.count(Select::All, far_past).await.unwrap(), entries);
}

/// Asserts `e` is a complete entry of key `k` at one version; returns it.
fn check_entry(e: &Entry, k: u64, round: u32) -> u64 {
    let v = e.cached_at.as_millis() as u64;
    let expected = entry(k, v);
    assert_eq!(e.key, expected.key, "round {round}");
    assert_eq!(e.name, expected.name, "round {round}: key {k}");
    assert_eq!(e.meta, expected.meta, "round {round}: key {k} v{v}");
    assert_eq!(
        e.payload.len(),
        expected.payload.len(),
        "round {round}: key {k} v{v}"
    );
    assert!(
        e.payload == expected.payload,
        "round {round}: key {k} v{v}: payload differs"
    );
    let base = v as i64 * 10;
    let expires = e.expires_at.map(Timestamp::as_millis);
    assert!(
        expires == Some(base) || expires == Some(base + 5),
        "round {round}: key {k} v{v}: expires_at {expires:?}"
    );
    v
}
