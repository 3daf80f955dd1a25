//! `cargo xtask bench [--quick] [-- TABLE ARGS]`: start the services, build
//! `respcache` (`respcache-cli --features full`, for the proxy rows; not with
//! `-- --no-proxy`), then run the benchmark table of `respcache-bench` in
//! release mode.

use std::process::{Command, ExitCode};

use crate::services::{self, Service};
use crate::{ALL_SERVICES, Result, cmd, project_root};

/// Arguments of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Fewer samples and a 20,000-entry large store: finishes in minutes.
    #[arg(long)]
    quick: bool,
    /// Arguments passed on to the table runner (e.g. `--backends sqlite,fs`).
    #[arg(last = true)]
    table_args: Vec<String>,
}

/// Runs `cargo xtask bench`.
pub(crate) fn run(args: &BenchArgs) -> Result<ExitCode> {
    let services: Vec<Service> = ALL_SERVICES
        .into_iter()
        .filter(|s| std::env::var_os(s.spec().env.0).is_none())
        .collect();
    if !services.is_empty() {
        let report = services::up(&services)?;
        for (s, e) in report.failed {
            // The table shows its rows as unreachable; the others still run.
            eprintln!(
                "xtask: warning: {} could not be started: {e}",
                s.spec().name
            );
        }
    }
    if !args.table_args.iter().any(|a| a == "--no-proxy") {
        // The proxy rows run `respcache serve` from target/release.
        let mut build = Command::new(cmd::cargo());
        build
            .args([
                "build",
                "--release",
                "-p",
                "respcache-cli",
                "--features",
                "full",
            ])
            .current_dir(project_root());
        eprintln!("xtask: {}", cmd::display(&build));
        match build.status() {
            Ok(s) if s.success() => {}
            // The table says the serve rows are not available; the rest runs.
            Ok(s) => eprintln!("xtask: warning: building respcache-cli failed ({s})"),
            Err(e) => eprintln!("xtask: warning: cannot run cargo build: {e}"),
        }
    }
    let mut command = Command::new(cmd::cargo());
    command
        .args([
            "run",
            "--release",
            "-p",
            "respcache-bench",
            "--bin",
            "bench-table",
            "--",
        ])
        .args(args.quick.then_some("--quick"))
        .args(&args.table_args)
        .envs(
            services
                .iter()
                .map(|s| (s.spec().env.0.to_owned(), s.spec().env.1.to_owned())),
        )
        .current_dir(project_root());
    eprintln!("xtask: {}", cmd::display(&command));
    let status = command
        .status()
        .map_err(|e| format!("cannot run `{}`: {e}", cmd::display(&command)))?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
