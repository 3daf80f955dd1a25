//! `KeyValueCache::get_or_set_with` with the cross-process option over one
//! Redis server and over the Redis Cluster: several OS processes (this test
//! binary, re-run as children) ask for the same keys at once, and each value
//! is computed once; a holder killed mid-computation is replaced when its
//! lease ends. Unreachable: skipped, or failed under `CI=true`.

use std::time::Duration;

use respcache_conformance::Factory;
use respcache_conformance::processes::{computed_once_across_processes, dead_holder_is_replaced};
use respcache_conformance::services::{REDIS, REDIS_CLUSTER};
use respcache_redis::RedisBackend;

fn server() -> Factory {
    REDIS.factory(|url| async move { RedisBackend::connect(&url).await })
}

fn cluster() -> Factory {
    REDIS_CLUSTER.factory(|url| async move { RedisBackend::connect(&url).await })
}

#[test]
fn kv_values_are_computed_once_across_six_processes() {
    let report = computed_once_across_processes(
        "kv_values_are_computed_once_across_six_processes",
        server(),
        6,
        100,
    );
    eprintln!("{:?}", report.unwrap());
}

#[test]
fn kv_values_are_computed_once_across_six_processes_on_the_cluster() {
    let report = computed_once_across_processes(
        "kv_values_are_computed_once_across_six_processes_on_the_cluster",
        cluster(),
        6,
        100,
    );
    eprintln!("{:?}", report.unwrap());
}

#[test]
fn kv_holder_killed_mid_computation_is_replaced_after_its_lease() {
    let report = dead_holder_is_replaced(
        "kv_holder_killed_mid_computation_is_replaced_after_its_lease",
        server(),
        Duration::from_secs(2),
    );
    eprintln!("{:?}", report.unwrap());
}

#[test]
fn kv_holder_killed_mid_computation_is_replaced_after_its_lease_on_the_cluster() {
    let report = dead_holder_is_replaced(
        "kv_holder_killed_mid_computation_is_replaced_after_its_lease_on_the_cluster",
        cluster(),
        Duration::from_secs(2),
    );
    eprintln!("{:?}", report.unwrap());
}
