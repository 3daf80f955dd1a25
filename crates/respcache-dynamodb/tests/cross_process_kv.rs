//! `KeyValueCache::get_or_set_with` with the cross-process option over
//! DynamoDB (Local) at `RESPCACHE_DYNAMODB_URL`: several OS processes (this
//! test binary, re-run as children) ask for the same keys at once, and each
//! value is computed once; a holder killed mid-computation is replaced when
//! its lease ends. Unreachable: skipped, or failed under `CI=true`.

use std::time::Duration;

use respcache_conformance::Factory;
use respcache_conformance::processes::{computed_once_across_processes, dead_holder_is_replaced};
use respcache_dynamodb::DynamoDbBackend;

const DEFAULT_URL: &str =
    "dynamodb://respcache-test?endpoint=http://127.0.0.1:8000&region=us-east-1";

fn factory() -> Factory {
    let url = std::env::var("RESPCACHE_DYNAMODB_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    Factory::new("dynamodb", move || {
        let url = url.clone();
        async move { DynamoDbBackend::connect(&url).await }
    })
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
