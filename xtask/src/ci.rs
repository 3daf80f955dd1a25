//! `cargo xtask ci`: the checks CI makes, in order, stopping at the first failure.

use std::process::{Command, ExitCode};
use std::time::Instant;

use crate::progress::secs;
use crate::test::TestArgs;
use crate::{Result, cmd, project_root};

/// One cargo invocation before the tests.
struct Step {
    what: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

const STEPS: [Step; 3] = [
    Step {
        what: "formatting",
        args: &["fmt", "--all", "--", "--check"],
        env: &[],
    },
    Step {
        what: "clippy",
        args: &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
        env: &[],
    },
    Step {
        what: "rustdoc",
        args: &["doc", "--workspace", "--no-deps", "--all-features"],
        env: &[("RUSTDOCFLAGS", "-Dwarnings")],
    },
];

/// Runs `cargo xtask ci`.
pub(crate) fn run(args: &TestArgs) -> Result<ExitCode> {
    for Step {
        what,
        args: cargo_args,
        env,
    } in STEPS
    {
        let mut cmd = Command::new(cmd::cargo());
        cmd.args(cargo_args)
            .envs(env.iter().copied())
            .current_dir(project_root());
        eprintln!("xtask ci: {what}: {}", cmd::display(&cmd));
        let start = Instant::now();
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run `{}`: {e}", cmd::display(&cmd)))?;
        if !status.success() {
            eprintln!(
                "xtask ci: {what} FAILED ({status}) after {}; fix it and run `cargo xtask ci` again",
                secs(start.elapsed())
            );
            return Ok(ExitCode::FAILURE);
        }
        eprintln!("xtask ci: {what} ok ({})", secs(start.elapsed()));
    }
    crate::test::run(args)
}
