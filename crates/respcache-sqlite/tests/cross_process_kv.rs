//! `KeyValueCache::get_or_set_with` with the cross-process option over one
//! SQLite file: several OS processes (this test binary, re-run as
//! children) ask for the same keys at once, and each value is computed
//! once; a holder killed mid-computation is replaced when its lease ends.

use std::time::Duration;

use respcache_conformance::Factory;
use respcache_conformance::processes::{
    computed_once_across_processes, dead_holder_is_replaced, remove_shared, shared_temp_path,
};
use respcache_sqlite::SqliteBackend;

/// One database file per test, shared with its children.
fn factory(test: &str) -> Factory {
    let path = shared_temp_path(&format!("sqlite-{test}.sqlite"));
    Factory::new("sqlite-file", move || {
        let path = path.clone();
        async move { SqliteBackend::open(path).await }
    })
}

fn remove_db(test: &str) {
    remove_shared(&shared_temp_path(&format!("sqlite-{test}.sqlite")));
}

#[test]
fn kv_values_are_computed_once_across_six_processes() {
    const TEST: &str = "kv_values_are_computed_once_across_six_processes";
    let outcome = computed_once_across_processes(TEST, factory(TEST), 6, 100);
    remove_db(TEST);
    let report = outcome.unwrap().expect("SQLite is always reachable");
    eprintln!("{report}");
}

#[test]
fn kv_holder_killed_mid_computation_is_replaced_after_its_lease() {
    const TEST: &str = "kv_holder_killed_mid_computation_is_replaced_after_its_lease";
    let outcome = dead_holder_is_replaced(TEST, factory(TEST), Duration::from_secs(2));
    remove_db(TEST);
    let report = outcome.unwrap().expect("SQLite is always reachable");
    eprintln!("{report}");
}
