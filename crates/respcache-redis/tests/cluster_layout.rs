//! The measurement behind the cluster layout (one hash tag per store, see
//! the crate README): run with
//! `cargo test -p respcache-redis --release --test cluster_layout -- --ignored --nocapture`
//! against the cluster at `RESPCACHE_REDIS_CLUSTER_URL`. It compares, on one
//! cluster, a store kept in one slot (`{tag}` keys) with the same keys
//! spread over every slot: a 1,000-entry write (one MULTI/EXEC against one
//! pipeline per slot, sent concurrently) and 20,000 reads from 64 tasks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use redis::cluster_routing::Slot;
use respcache_redis::RedisBackend;

const ENTRIES: usize = 1_000;
const READS: usize = 20_000;
const TASKS: usize = 64;
const ROUNDS: usize = 5;

fn url() -> String {
    respcache_conformance::services::REDIS_CLUSTER.url()
}

fn keys(tagged: bool) -> Vec<String> {
    (0..ENTRIES)
        .map(|i| {
            if tagged {
                format!("{{measure:layout}}:k{i}")
            } else {
                format!("measure:layout:k{i}")
            }
        })
        .collect()
}

async fn write(con: &redis::cluster_async::ClusterConnection, keys: &[String]) -> Duration {
    let value = vec![b'x'; 1024];
    let mut groups: HashMap<Slot, Vec<&String>> = HashMap::new();
    for k in keys {
        groups.entry(Slot::for_key(k)).or_default().push(k);
    }
    let start = Instant::now();
    let sends = groups.into_values().map(|group| {
        let mut con = con.clone();
        let value = value.clone();
        async move {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for k in group {
                pipe.set(k, &value).ignore();
            }
            pipe.query_async::<()>(&mut con).await.unwrap();
        }
    });
    join_all(sends).await;
    start.elapsed()
}

async fn read(con: &redis::cluster_async::ClusterConnection, keys: &[String]) -> Duration {
    let start = Instant::now();
    let tasks = (0..TASKS).map(|t| {
        let mut con = con.clone();
        let keys = keys.to_vec();
        tokio::spawn(async move {
            for i in (t..READS).step_by(TASKS) {
                let v: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&keys[i % keys.len()])
                    .query_async(&mut con)
                    .await
                    .unwrap();
                assert!(v.is_some());
            }
        })
    });
    for t in join_all(tasks).await {
        t.unwrap();
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand with --ignored"]
async fn one_slot_per_store_against_keys_spread_over_every_slot() {
    let backend = RedisBackend::connect(&url()).await.unwrap();
    let con = backend.cluster_connection().unwrap();
    for tagged in [true, false] {
        let keys = keys(tagged);
        let slots: std::collections::HashSet<Slot> = keys.iter().map(Slot::for_key).collect();
        let mut writes = Vec::new();
        let mut reads = Vec::new();
        for _ in 0..ROUNDS {
            writes.push(write(&con, &keys).await);
            reads.push(read(&con, &keys).await);
        }
        writes.sort();
        reads.sort();
        let best_read = reads[0].as_secs_f64();
        println!(
            "{}: {} slots; put 1,000 x 1 KiB: best {:?}, median {:?}; {READS} GETs from {TASKS} tasks: best {:?} ({:.0}/s), median {:?}",
            if tagged { "one hash tag" } else { "spread" },
            slots.len(),
            writes[0],
            writes[ROUNDS / 2],
            reads[0],
            READS as f64 / best_read,
            reads[ROUNDS / 2],
        );
        let mut con = con.clone();
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut con)
            .await
            .unwrap();
    }
}
