//! Redis 7 from Debian's `redis-server`, in the foreground without persistence.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{Ctx, Spec, probe};
use crate::Result;
use crate::cmd::which;

/// Redis on 127.0.0.1:6379.
pub(super) const SPEC: Spec = Spec {
    name: "redis",
    port: 6379,
    url: "redis://127.0.0.1:6379/",
    env: ("RESPCACHE_REDIS_URL", "redis://127.0.0.1:6379/"),
    marker: "redis-server",
    start_timeout: Duration::from_secs(20),
    prepare,
    probe: probe::redis,
};

fn find() -> Option<PathBuf> {
    which("redis-server").or_else(|| {
        ["/usr/bin/redis-server", "/usr/sbin/redis-server"]
            .map(PathBuf::from)
            .into_iter()
            .find(|p| p.is_file())
    })
}

fn prepare(ctx: &mut Ctx) -> Result<Command> {
    let exe = match find() {
        Some(exe) => exe,
        None => {
            ctx.apt.install(SPEC.name, &["redis-server"])?;
            find().ok_or("redis-server was installed but is not on PATH")?
        }
    };
    let mut cmd = Command::new(exe);
    cmd.args(["--daemonize", "no", "--bind", "127.0.0.1", "--port"])
        .arg(SPEC.port.to_string())
        .args(["--save", "", "--appendonly", "no"])
        .current_dir(&ctx.run_dir);
    Ok(cmd)
}
