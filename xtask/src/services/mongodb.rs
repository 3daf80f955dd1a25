//! A MongoDB-wire emulator: nx-27017 from PyPI (not mongod; no genuine mongod is installable
//! from the registries these machines reach). Known differences from mongod with the Rust
//! driver: replacing an existing document with one holding Binary fails (code 8), `$set` of a
//! DateTime on an existing document stores a string, small Int64 values come back as Int32,
//! TTL indexes delete at once, no auth. `docker-compose.yml` runs the genuine server.

use std::process::Command;
use std::time::Duration;

use super::{Ctx, Spec, install, probe};
use crate::Result;

const VERSION: &str = "0.8.1";

/// nx-27017 on 127.0.0.1:27017 with an in-memory SQLite database.
pub(super) const SPEC: Spec = Spec {
    name: "mongodb",
    port: 27017,
    url: "mongodb://127.0.0.1:27017/?directConnection=true",
    env: (
        "RESPCACHE_MONGODB_URL",
        "mongodb://127.0.0.1:27017/?directConnection=true",
    ),
    marker: "nx-27017",
    start_timeout: Duration::from_secs(30),
    prepare,
    probe: probe::mongodb,
};

fn prepare(ctx: &mut Ctx) -> Result<Command> {
    let venv = ctx.cache_dir.join(format!("nx-27017-{VERSION}-venv"));
    let exe = install::pip_venv(
        SPEC.name,
        &venv,
        &format!("nx-27017=={VERSION}"),
        "nx-27017",
    )?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "--host",
        "127.0.0.1",
        "-p",
        &SPEC.port.to_string(),
        "--db",
        "memory",
    ])
    .arg("--log-file")
    .arg(ctx.run_dir.join("mongodb.server.log"))
    .arg("--pid-file")
    .arg(ctx.run_dir.join("mongodb.nx.pid"))
    .current_dir(&ctx.run_dir);
    Ok(cmd)
}
