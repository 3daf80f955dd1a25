//! `SCAN` returns a key more than once when the keyspace is resized during
//! the iteration; `scan` and `count` must still see every entry once. Runs
//! on a private `redis-server` (the shrink needs a keyspace of our own).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use futures::TryStreamExt;
use respcache_core::{Entry, Select, Store, Timestamp};
use respcache_redis::RedisBackend;

use common::{Server, key, raw, spec, unique_cache};

const ENTRIES: usize = 5000;
const FILLERS: usize = 300_000;
const CHUNK: usize = 10_000;

/// Writes `FILLERS` keys under another prefix, growing the keyspace's table.
async fn fill(con: &mut redis::aio::MultiplexedConnection) {
    for start in (0..FILLERS).step_by(CHUNK) {
        let mut cmd = redis::cmd("MSET");
        for i in start..start + CHUNK {
            cmd.arg(format!("filler:{i}")).arg("x");
        }
        let () = cmd.query_async(con).await.unwrap();
    }
}

/// Unlinks the fillers chunk by chunk, so Redis shrinks its table while
/// whatever runs concurrently is scanning.
fn unlink_fillers(url: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut con = raw(&url).await;
        for start in (0..FILLERS).step_by(CHUNK) {
            let mut cmd = redis::cmd("UNLINK");
            for i in start..start + CHUNK {
                cmd.arg(format!("filler:{i}"));
            }
            let _: u64 = cmd.query_async(&mut con).await.unwrap();
            tokio::task::yield_now().await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_and_count_see_each_entry_once_while_the_keyspace_shrinks() {
    let server = Server::start(&[]);
    let b = RedisBackend::connect(&server.url()).await.unwrap();
    let store = b
        .store(&spec(&unique_cache("scan-once"), "r"))
        .await
        .unwrap();
    let now = Timestamp::now();
    let entries: Vec<Entry> = (0..ENTRIES)
        .map(|i| Entry::new(key(&format!("e{i}")), now, "v"))
        .collect();
    store.put_many(entries).await.unwrap();
    let mut con = raw(&server.url()).await;
    for round in 0..3 {
        fill(&mut con).await;
        let unlinker = unlink_fillers(server.url());
        let scanned: Vec<Entry> = store.scan(Select::All, now).try_collect().await.unwrap();
        unlinker.await.unwrap();
        let distinct: HashSet<_> = scanned.iter().map(|e| e.key.clone()).collect();
        assert_eq!(
            (scanned.len(), distinct.len()),
            (ENTRIES, ENTRIES),
            "round {round}: scan yielded {} entries, {} distinct",
            scanned.len(),
            distinct.len()
        );

        fill(&mut con).await;
        let unlinker = unlink_fillers(server.url());
        let all = store.count(Select::All, now).await.unwrap();
        let fresh = store.count(Select::Fresh, now).await.unwrap();
        unlinker.await.unwrap();
        assert_eq!(
            (all, fresh),
            (ENTRIES as u64, ENTRIES as u64),
            "round {round}: count"
        );
    }
}
