//! `cargo xtask`: project automation for respcache.
//!
//! Tasks (`cargo xtask --help` lists them):
//! - `services up|down|status [SERVICE...]`: install and run Redis, a MongoDB-wire
//!   emulator and DynamoDB Local on loopback, without Docker;
//! - `test [--no-services] [-- CARGO TEST ARGS]`: start the services, run the whole
//!   workspace's tests and print `N passed, N failed` as the last line;
//! - `ci`: fmt, clippy, rustdoc, then `test`; stops at the first failing step;
//! - `bench [--quick]`: start the services, then print the benchmark table.

mod bench;
mod ci;
mod cmd;
mod disk;
mod failures;
mod progress;
mod services;
mod summary;
mod test;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::services::{Action, Service};

/// Errors in xtask are messages for a human.
pub(crate) type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// Project automation for respcache (run as `cargo xtask <TASK>`).
#[derive(Debug, Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install, start, stop or inspect the test services (Redis, MongoDB-wire emulator, DynamoDB Local).
    Services {
        #[command(subcommand)]
        action: Action,
    },
    /// Start the services, then run `cargo test --workspace --all-features --no-fail-fast`.
    Test(test::TestArgs),
    /// What CI checks: fmt, clippy (-D warnings), rustdoc (-D warnings), then `test`.
    Ci(test::TestArgs),
    /// Start the services, then run the benchmarks and print one table with ratios to raw baselines.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.task {
        Task::Services { action } => services::run(&action),
        Task::Test(args) => test::run(&args),
        Task::Ci(args) => ci::run(&args),
        Task::Bench(args) => bench::run(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's directory).
pub(crate) fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Whether we run under CI (`CI=true` or `CI=1`), as the conformance suite reads it.
pub(crate) fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Every service, in start order.
pub(crate) const ALL_SERVICES: [Service; 4] = [
    Service::Redis,
    Service::Mongodb,
    Service::Dynamodb,
    Service::RedisCluster,
];
