//! The conformance suite on a database file (persistent: every connect is a
//! new `SqliteBackend` on the same file, kept in a temporary folder for the
//! whole run and deleted at the end), with puts written one by one and with
//! group commit.

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
    // Twice: puts one by one (the default), and in shared commits.
    let factories = [false, true].map(|group_commit| {
        let name = match group_commit {
            false => "sqlite-file",
            true => "sqlite-file-group-commit",
        };
        let path = dir.path().join(format!("{name}.sqlite"));
        Factory::new(name, move || {
            let config = SqliteConfig::file(&path).with_group_commit(group_commit);
            async move { SqliteBackend::with_config(config).await }
        })
        .persistent()
        // Budget cases: a new temporary file each, so trims stay in the case.
        .with_budget(move |budget| {
            SqliteConfig::temp()
                .with_budget(budget)
                .with_group_commit(group_commit)
                .connect()
        })
        .with_leases()
    });
    let code = respcache_conformance::run_each(factories);
    drop(dir);
    code
}
