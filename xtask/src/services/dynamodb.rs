//! Amazon DynamoDB Local 1.25.1, whose jar ships in the npm package
//! amplify-dynamodb-simulator, run in memory with Java 17 (Debian `openjdk-17-jre-headless`).
//! It has no bind option: it listens on every interface. Licence: Amazon's "DynamoDB Local
//! License Agreement" (LICENSE.txt in the unpacked folder).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{Ctx, Spec, install, probe};
use crate::Result;
use crate::cmd::which;

/// The npm package version that ships DynamoDB Local 1.25.1.
const NPM_VERSION: &str = "2.9.30";

/// DynamoDB Local on port 8000.
pub(super) const SPEC: Spec = Spec {
    name: "dynamodb",
    port: 8000,
    url: "http://127.0.0.1:8000",
    env: (
        "RESPCACHE_DYNAMODB_URL",
        "dynamodb://respcache-test?endpoint=http://127.0.0.1:8000&region=us-east-1",
    ),
    marker: "DynamoDBLocal.jar",
    start_timeout: Duration::from_secs(60),
    prepare,
    probe: probe::dynamodb,
};

fn find_java() -> Option<PathBuf> {
    std::env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin").join("java"))
        .filter(|java| java.is_file())
        .or_else(|| which("java"))
}

fn prepare(ctx: &mut Ctx) -> Result<Command> {
    let java = match find_java() {
        Some(java) => java,
        None => {
            ctx.apt.install(SPEC.name, &["openjdk-17-jre-headless"])?;
            find_java().ok_or("openjdk-17-jre-headless was installed but java is not on PATH")?
        }
    };
    let dir = ctx
        .cache_dir
        .join(format!("dynamodb-local-npm-{NPM_VERSION}"));
    if !dir.join("DynamoDBLocal.jar").is_file() {
        let package = format!("amplify-dynamodb-simulator@{NPM_VERSION}");
        install::npm_unpack(SPEC.name, &package, "emulator", &dir)?;
    }
    let mut cmd = Command::new(java);
    cmd.args([
        "-Xmx512m",
        "-Djava.library.path=./DynamoDBLocal_lib",
        "-jar",
        "DynamoDBLocal.jar",
    ])
    .args([
        "-port",
        &SPEC.port.to_string(),
        "-inMemory",
        "-sharedDb",
        "-disableTelemetry",
    ])
    .current_dir(dir);
    Ok(cmd)
}
