//! The conformance suite against the filesystem backend.
//!
//! Every case connects a new `FsBackend` onto one temporary root kept for
//! the whole run, so the backend is persistent: a new handle sees what an
//! earlier one wrote. The root is removed when the run ends.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use respcache_conformance::Factory;
use respcache_fs::{FsBackend, FsConfig};

fn main() -> ExitCode {
    let root = match tempfile::Builder::new()
        .prefix("respcache-fs-conformance-")
        .tempdir()
    {
        Ok(root) => root,
        Err(e) => {
            eprintln!("conformance::fs: cannot create a temporary root: {e}");
            return ExitCode::FAILURE;
        }
    };
    let path = root.path().to_path_buf();
    // Budget cases: a new folder each, so trims stay in the case.
    let budgeted = root.path().join("budgeted");
    let next = Arc::new(AtomicU64::new(0));
    let code = respcache_conformance::run(
        Factory::new("fs", move || {
            FsBackend::connect(FsConfig::new(path.clone()))
        })
        .persistent()
        .with_budget(move |budget| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            FsBackend::connect(FsConfig::new(budgeted.join(n.to_string())).with_budget(budget))
        })
        .with_leases(),
    );
    drop(root);
    code
}
