//! The conformance suite on a database file (persistent: every connect is a
//! new `SqliteBackend` on the same file, kept in a temporary folder for the
//! whole run and deleted at the end).

use std::process::ExitCode;

use respcache_conformance::Factory;
use respcache_sqlite::{SqliteBackend, SqliteConfig};

fn main() -> ExitCode {
    let dir = match tempfile::Builder::new()
        .prefix("respcache-sqlite-conformance-")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("cannot create a temporary folder: {e}");
            return ExitCode::FAILURE;
        }
    };
    let path = dir.path().join("cache.sqlite");
    let factory = Factory::new("sqlite-file", move || {
        let path = path.clone();
        async move { SqliteBackend::open(path).await }
    })
    .persistent()
    // Budget cases: a new temporary file each, so trims stay in the case.
    .with_budget(|budget| SqliteConfig::temp().with_budget(budget).connect())
    .with_leases();
    let code = respcache_conformance::run(factory);
    drop(dir);
    code
}
