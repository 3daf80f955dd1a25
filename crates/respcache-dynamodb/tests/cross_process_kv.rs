//! `KeyValueCache::get_or_set_with` with the cross-process option over
//! DynamoDB (Local) at `RESPCACHE_DYNAMODB_URL`: several OS processes (this
//! test binary, re-run as children) ask for the same keys at once, and each
//! value is computed once; a holder killed mid-computation is replaced when
//! its lease ends. Unreachable: skipped, or failed under `CI=true`.

use std::time::Duration;

use respcache_conformance::Factory;
use respcache_conformance::processes::{computed_once_across_processes, dead_holder_is_replaced};
use respcache_conformance::services::DYNAMODB;
use respcache_dynamodb::DynamoDbBackend;

fn factory() -> Factory {
    DYNAMODB.factory(|url| async move { DynamoDbBackend::connect(&url).await })
}

#[test]
fn kv_values_are_computed_once_across_six_processes() {
    let report = computed_once_across_processes(
        "kv_values_are_computed_once_across_six_processes",
        factory(),
        6,
        100,
    );
    eprintln!("{:?}", report.unwrap());
}

#[test]
fn kv_holder_killed_mid_computation_is_replaced_after_its_lease() {
    let report = dead_holder_is_replaced(
        "kv_holder_killed_mid_computation_is_replaced_after_its_lease",
        factory(),
        Duration::from_secs(2),
    );
    eprintln!("{:?}", report.unwrap());
}
