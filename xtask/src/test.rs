//! `cargo xtask test`: services up, then the whole workspace's tests, then one closing line
//! `N passed, N failed` that CI reads.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};

use clap::Args;

use crate::failures::Failures;
use crate::services::{self, Service};
use crate::summary::Totals;
use crate::{ALL_SERVICES, Result, cmd, disk, project_root, under_ci};

/// Arguments of `cargo xtask test` (and `ci`).
#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// Do not start services (use ones already running, e.g. `docker compose up -d --wait`).
    #[arg(long)]
    pub(crate) no_services: bool,
    /// Extra arguments for `cargo test`, after `--` (e.g. `-- -p respcache-redis -- --nocapture`).
    #[arg(last = true)]
    pub(crate) cargo_args: Vec<String>,
}

/// Runs `cargo xtask test`.
pub(crate) fn run(args: &TestArgs) -> Result<ExitCode> {
    let mut env = dotenv();
    // Services whose variable is set (environment or `.env`) are the user's business.
    let unset: Vec<Service> = ALL_SERVICES
        .into_iter()
        .filter(|s| {
            let (var, _) = s.spec().env;
            let set = std::env::var_os(var).is_some() || env.iter().any(|(k, _)| k == var);
            if set {
                eprintln!("xtask: {var} is set; not starting {}", s.spec().name);
            }
            !set
        })
        .collect();
    env.extend(unset.iter().map(|s| {
        let (var, value) = s.spec().env;
        (var.to_owned(), value.to_owned())
    }));
    let mut problems = if args.no_services || unset.is_empty() {
        Vec::new()
    } else {
        start_services(&unset)?
    };

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| project_root().join("target"), std::path::PathBuf::from);
    disk::report(&target);
    let mut cmd = Command::new(cmd::cargo());
    cmd.args(["test", "--workspace", "--all-features", "--no-fail-fast"])
        .args(&args.cargo_args)
        .envs(env)
        .current_dir(project_root());
    eprintln!("xtask: {}", cmd::display(&cmd));
    let (status, totals, failures) = run_streaming(&mut cmd)?;

    println!(
        "xtask: {} test runs: {} passed, {} failed, {} ignored, {} filtered out",
        totals.runs, totals.passed, totals.failed, totals.ignored, totals.filtered_out
    );
    if !status.success() && totals.failed == 0 {
        problems.push(format!("cargo test failed ({status}) without a failing test: a build error or a crashed test binary?"));
    }
    print!("{}", failures.recap());
    for p in &problems {
        println!("xtask: {p}");
    }
    println!("{}", totals.closing_line());
    let _ = std::io::stdout().flush();
    let failed =
        !status.success() || totals.failed > 0 || totals.failed_runs > 0 || !problems.is_empty();
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Starts `services`. Returns the problems that fail the run: a service that cannot
/// start, under CI only (elsewhere the suite reports its cases as ignored).
fn start_services(services: &[Service]) -> Result<Vec<String>> {
    let report = services::up(services)?;
    let mut problems = Vec::new();
    for (s, e) in report.failed {
        if under_ci() {
            problems.push(format!(
                "{} could not be started (CI=true): {e}",
                s.spec().name
            ));
        } else {
            eprintln!(
                "xtask: warning: {} could not be started; its tests will be ignored",
                s.spec().name
            );
        }
    }
    Ok(problems)
}

/// Runs `cmd` with its stdout echoed line by line while adding up libtest summaries and
/// keeping the failure sections.
fn run_streaming(cmd: &mut Command) -> Result<(std::process::ExitStatus, Totals, Failures)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{}`: {e}", cmd::display(cmd)))?;
    let mut totals = Totals::default();
    let mut failures = Failures::default();
    if let Some(stdout) = child.stdout.take() {
        let mut reader = BufReader::new(stdout);
        let mut out = std::io::stdout().lock();
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line)? > 0 {
            out.write_all(&line)?;
            out.flush()?;
            let text = String::from_utf8_lossy(&line);
            totals.add_line(&text);
            failures.add_line(&text);
            line.clear();
        }
    }
    Ok((child.wait()?, totals, failures))
}

/// The `KEY=VALUE` lines of the project's `.env` (if any) whose variable is not already set:
/// the environment wins over `.env`.
fn dotenv() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(project_root().join(".env")).unwrap_or_default();
    parse_dotenv(&text)
        .into_iter()
        .filter(|(key, _)| std::env::var_os(key).is_none())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `KEY=VALUE` pairs of a dotenv file: `#` comments, blank lines, `export ` prefixes and
/// surrounding quotes are allowed.
fn parse_dotenv(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| v.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)));
            (k.trim(), unquoted.unwrap_or(v))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_lines() {
        let text = "# comment\n\nRESPCACHE_REDIS_URL=redis://h:1/\nexport A = \"x y\"\nB='q'\nnot a pair\n=v\n";
        assert_eq!(
            parse_dotenv(text),
            vec![
                ("RESPCACHE_REDIS_URL", "redis://h:1/"),
                ("A", "x y"),
                ("B", "q")
            ]
        );
    }
}
