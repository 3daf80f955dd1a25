//! The conformance suite against the filesystem backend.
//!
//! Every case connects a new `FsBackend` onto one temporary root kept for
//! the whole run, so the backend is persistent: a new handle sees what an
//! earlier one wrote. The root is removed when the run ends.

use std::process::ExitCode;

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
    let code = respcache_conformance::run(
        Factory::new("fs", move || {
            FsBackend::connect(FsConfig::new(path.clone()))
        })
        .persistent()
        .with_leases(),
    );
    drop(root);
    code
}
