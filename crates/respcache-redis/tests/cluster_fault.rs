//! A Redis Cluster of our own (three masters from `redis-server` on free
//! ports, never the shared one), with one master killed: the stores on its
//! slot fail within the command timeout, never hang; the stores on the other
//! masters keep working (the cluster runs with
//! `cluster-require-full-coverage no`); and when the master comes back, its
//! store works again through the same backend.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use respcache_core::{Entry, ErrorKind, Store, Timestamp};
use respcache_redis::RedisBackend;

use common::{Server, free_port, key, spec, unique_cache};

/// No call may take longer than this, whatever state the cluster is in.
const NO_HANG: Duration = Duration::from_secs(5);
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// Starts three cluster-mode servers and joins them.
fn start_cluster() -> Vec<Server> {
    let servers: Vec<Server> = (0..3)
        .map(|_| {
            let bus = free_port().to_string();
            Server::start(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
                "--cluster-require-full-coverage",
                "no",
                "--cluster-port",
                &bus,
                "--appendonly",
                "no",
            ])
        })
        .collect();
    let nodes: Vec<String> = servers
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    let out = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&nodes)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli is installed with redis-server");
    assert!(
        out.status.success(),
        "cluster create: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for s in &servers {
        wait_for(Duration::from_secs(30), "cluster_state:ok", || {
            cli(s.port, &["cluster", "info"]).contains("cluster_state:ok")
        });
    }
    servers
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "no {what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The port of the master that owns `slot`, from `CLUSTER NODES`.
fn owner_of(port: u16, slot: u16) -> u16 {
    for line in cli(port, &["cluster", "nodes"]).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(addr) = fields.get(1) else { continue };
        let node_port: u16 = addr
            .split(['@', ':'])
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        for range in fields.iter().skip(8) {
            let (lo, hi) = range.split_once('-').unwrap_or((range, range));
            if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>())
                && (lo..=hi).contains(&slot)
            {
                return node_port;
            }
        }
    }
    panic!("no master owns slot {slot}");
}

fn slot_of(port: u16, key: &str) -> u16 {
    cli(port, &["cluster", "keyslot", key])
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_fails_its_slots_only_and_recovers() {
    let mut servers = start_cluster();
    let first = servers[0].port;
    let url = format!(
        "redis+cluster://{}/?command_timeout_ms={}&connect_timeout_ms=2000",
        servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect::<Vec<_>>()
            .join(","),
        COMMAND_TIMEOUT.as_millis()
    );
    let backend = RedisBackend::connect(&url).await.unwrap();
    let cache = unique_cache("fault");

    // One repository per master: their hash tags land on its slots.
    let mut stores: Vec<Option<(String, u16)>> = vec![None; 3];
    for i in 0..1000 {
        let repo = format!("r{i}");
        let owner = owner_of(first, slot_of(first, &format!("{cache}:{repo}")));
        let index = servers.iter().position(|s| s.port == owner).unwrap();
        stores[index].get_or_insert((repo, owner));
        if stores.iter().all(Option::is_some) {
            break;
        }
    }
    let mut handles = Vec::new();
    for (repo, _) in stores.iter().flatten() {
        let store = backend.store(&spec(&cache, repo)).await.unwrap();
        store
            .put(Entry::new(key("k"), Timestamp::now(), "v"))
            .await
            .unwrap();
        handles.push(store);
    }
    assert_eq!(handles.len(), 3, "a repository on every master");

    // Kill the master of store 0.
    let victim = 0;
    let killed = Instant::now();
    servers[victim].kill();

    // For 3 s (past the 1 s node timeout, when the others mark it failed):
    // its store errors within the timeout, the others answer.
    let mut worst_error = Duration::ZERO;
    let mut worst_ok = Duration::ZERO;
    let mut errors = 0;
    while killed.elapsed() < Duration::from_secs(3) {
        for (i, store) in handles.iter().enumerate() {
            let start = Instant::now();
            let got = tokio::time::timeout(NO_HANG, store.get(&key("k")))
                .await
                .unwrap_or_else(|_| panic!("store {i} hung"));
            let took = start.elapsed();
            if i == victim {
                let err = got.expect_err("the store's master is dead");
                assert!(
                    matches!(err.kind(), ErrorKind::Timeout | ErrorKind::Connection),
                    "{err}"
                );
                assert!(err.is_temporary());
                errors += 1;
                worst_error = worst_error.max(took);
            } else {
                let entry = got.unwrap_or_else(|e| panic!("store {i} on a live master: {e}"));
                assert!(entry.is_some(), "store {i} lost its entry");
                worst_ok = worst_ok.max(took);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        worst_error < COMMAND_TIMEOUT * 3,
        "the dead master's store answered its error after {worst_error:?}"
    );
    assert!(
        worst_ok < Duration::from_secs(1),
        "live masters took {worst_ok:?}"
    );

    // It comes back (same directory: same node id, same slots; no data).
    let restarted = Instant::now();
    servers[victim].restart();
    let mut recovered = None;
    while restarted.elapsed() < Duration::from_secs(30) {
        let attempt = tokio::time::timeout(NO_HANG, handles[victim].get(&key("k")))
            .await
            .expect("hung after the restart");
        if attempt.is_ok() {
            recovered = Some(restarted.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = recovered.expect("the store did not recover within 30 s of the restart");
    handles[victim]
        .put(Entry::new(key("k"), Timestamp::now(), "again"))
        .await
        .unwrap();
    assert!(handles[victim].get(&key("k")).await.unwrap().is_some());
    // The restarted master lost its script cache: the scripts load again.
    assert!(
        handles[victim]
            .set_expiry(&key("k"), Some(Timestamp::now()))
            .await
            .unwrap()
    );
    let token = handles[victim]
        .acquire_lease(&key("k"), Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a free lease");
    assert!(
        handles[victim]
            .release_lease(&key("k"), &token)
            .await
            .unwrap()
    );
    for store in &handles[1..] {
        assert!(store.get(&key("k")).await.unwrap().is_some());
    }
    eprintln!(
        "killed master: {errors} calls to its store failed, slowest after {worst_error:?}; \
         other masters' slowest answer {worst_ok:?}; its store answered again {recovered:?} after \
         the restart"
    );
    for (repo, _) in stores.iter().flatten() {
        let _ = respcache_core::Backend::drop_store(
            &backend,
            &cache,
            &respcache_core::Name::new(repo.as_str()).unwrap(),
        )
        .await;
    }
}
