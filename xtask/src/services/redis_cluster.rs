//! A Redis Cluster of three masters on 127.0.0.1:7000-7002 from Debian's `redis-server`,
//! run by `xtask/scripts/redis-cluster.sh` (the same script docker-compose.yml uses): it
//! starts the three servers in cluster mode, joins them with `redis-cli --cluster create`,
//! and stops them all on SIGTERM. Ready when every master reports `cluster_state:ok`.

use std::process::Command;
use std::time::Duration;

use super::{Ctx, Spec, probe};
use crate::{Result, project_root};

/// The first master's port; the others follow (cluster bus ports are 10000 higher).
const FIRST_PORT: u16 = 7000;

/// The cluster, seeded from its three masters.
pub(super) const SPEC: Spec = Spec {
    name: "redis-cluster",
    port: FIRST_PORT,
    url: "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002/",
    env: (
        "RESPCACHE_REDIS_CLUSTER_URL",
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002/",
    ),
    marker: "redis-cluster.sh",
    start_timeout: Duration::from_secs(30),
    prepare,
    probe: probe::redis_cluster,
};

fn prepare(ctx: &mut Ctx) -> Result<Command> {
    // The same packages as the single server (redis-server brings redis-cli).
    (super::redis::SPEC.prepare)(ctx)?;
    for port in FIRST_PORT..FIRST_PORT + 3 {
        for p in [port, port + 10_000] {
            if probe::port_open(p) {
                return Err(format!(
                    "port {p} is in use: the cluster needs 7000-7002 and 17000-17002"
                )
                .into());
            }
        }
    }
    let script = project_root()
        .join("xtask")
        .join("scripts")
        .join("redis-cluster.sh");
    let data = ctx.run_dir.join("redis-cluster");
    // The script's name (the marker) is in the command line of the pid file's process.
    let mut cmd = Command::new("sh");
    cmd.arg(script)
        .arg(data)
        .arg(FIRST_PORT.to_string())
        .current_dir(&ctx.run_dir);
    Ok(cmd)
}
