//! `KeyValueCache::get_or_set_with` with the cross-process option over one
//! SQLite file: several OS processes (this test binary, re-run as
//! children) ask for the same keys at once, and each value is computed
//! once; a holder killed mid-computation is replaced when its lease ends.

use std::path::PathBuf;
use std::time::Duration;

use respcache_conformance::Factory;
use respcache_conformance::processes::{computed_once_across_processes, dead_holder_is_replaced};
use respcache_sqlite::SqliteBackend;

/// The database file of `test`, shared by the test process and its
/// children (which find it through their parent's pid).
fn db_path(test: &str) -> PathBuf {
    let owner = if std::env::var_os("RESPCACHE_XP_ROLE").is_some() {
        std::os::unix::process::parent_id()
    } else {
        std::process::id()
    };
    std::env::temp_dir().join(format!("respcache-xp-{owner}-{test}.sqlite"))
}

fn factory(test: &str) -> Factory {
    let path = db_path(test);
    Factory::new("sqlite-file", move || {
        let path = path.clone();
        async move { SqliteBackend::open(path).await }
    })
}

fn remove_db(test: &str) {
    let path = db_path(test);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
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
