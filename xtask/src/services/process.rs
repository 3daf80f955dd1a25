//! Background server processes: spawn with a pid file and a log, check, stop.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;

/// Spawns `cmd` in its own process group (so Ctrl-C in the terminal does not reach it),
/// with stdin closed and stdout+stderr appended to `log`, and writes its pid to `pid_file`.
pub(super) fn spawn(cmd: &mut Command, log: &Path, pid_file: &Path) -> Result<Child> {
    let out = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out.try_clone()?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run `{}`: {e}", crate::cmd::display(cmd)))?;
    std::fs::write(pid_file, format!("{}\n", child.id()))
        .map_err(|e| format!("cannot write {}: {e}", pid_file.display()))?;
    Ok(child)
}

/// The pid in `pid_file` if that process is alive and its command line contains `marker`;
/// a stale pid file is removed.
pub(super) fn live_pid(pid_file: &Path, marker: &str) -> Option<u32> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    match text.trim().parse::<u32>() {
        Ok(pid) if is_alive(pid, marker) => Some(pid),
        _ => {
            let _ = std::fs::remove_file(pid_file);
            None
        }
    }
}

/// Whether `pid` is a live (not zombie) process whose command line contains `marker`.
/// Without `/proc`, only whether the pid exists.
fn is_alive(pid: u32, marker: &str) -> bool {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    if !Path::new("/proc/self").exists() {
        return signal(pid, "0");
    }
    let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) else {
        return false;
    };
    let zombie = std::fs::read_to_string(proc_dir.join("stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false);
    !zombie && String::from_utf8_lossy(&cmdline).contains(marker)
}

/// Sends `signal` (a name such as `TERM`, or `0`) to `pid` with the shell's `kill`.
fn signal(pid: u32, signal: &str) -> bool {
    Command::new("sh")
        .args([
            "-c",
            "kill -s \"$1\" \"$2\" 2>/dev/null",
            "sh",
            signal,
            &pid.to_string(),
        ])
        .status()
        .is_ok_and(|s| s.success())
}

/// Stops `pid` with SIGTERM, then SIGKILL if it is still alive after 10 s.
pub(super) fn stop(pid: u32, marker: &str) -> Result<()> {
    for (sig, grace) in [
        ("TERM", Duration::from_secs(10)),
        ("KILL", Duration::from_secs(3)),
    ] {
        signal(pid, sig);
        let start = Instant::now();
        while start.elapsed() < grace {
            if !is_alive(pid, marker) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Err(format!("pid {pid} is still alive after SIGKILL").into())
}
