//! What the `respcache serve` tests share: the proxy as a child process
//! (a temporary SQLite cache unless told otherwise), its start line, its
//! stderr, its memory, and a clean stop.

// Each test file uses part of this; helpers assert like tests do.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the proxy may take to start or to stop.
const WAIT: Duration = Duration::from_secs(10);

/// The `respcache serve` process; killed when dropped.
pub struct Proxy {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// What it printed first (`respcache serve: listening on …`).
    pub start_line: String,
    stderr: tempfile::NamedTempFile,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts `respcache serve` in front of `upstream` with a temporary
    /// SQLite cache and the `extra` arguments.
    pub fn start(upstream: &str, extra: &[&str]) -> Proxy {
        Proxy::launch(upstream, extra, None, None)
    }

    /// Starts it with the `extra` arguments and the cache URL `cache` (else
    /// a temporary SQLite file); `nofile` lowers its open-file limit
    /// (through `sh -c 'ulimit -n N; exec …'`).
    pub fn launch(
        upstream: &str,
        extra: &[&str],
        cache: Option<&str>,
        nofile: Option<u32>,
    ) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache.map_or_else(
            || {
                format!(
                    "sqlite://{}?cache=proxy",
                    dir.path().join("cache.sqlite").display()
                )
            },
            str::to_owned,
        );
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let bin = env!("CARGO_BIN_EXE_respcache");
        let mut command = match nofile {
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), bin]);
                c
            }
            None => Command::new(bin),
        };
        let mut child = command
            .args(["serve", "--cache", &cache, "--upstream", upstream])
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr.reopen().unwrap()))
            .spawn()
            .expect("the respcache binary runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let Ok(start_line) = rx.recv_timeout(WAIT) else {
            let _ = child.kill();
            panic!(
                "no start line within {WAIT:?}; stderr: {}",
                std::fs::read_to_string(stderr.path()).unwrap_or_default()
            );
        };
        let addr = start_line
            .split("listening on http://")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap_or_else(|| panic!("no address in the start line {start_line:?}"))
            .to_owned();
        // Poll the port until it accepts.
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "{addr} does not accept");
            std::thread::sleep(Duration::from_millis(20));
        }
        Proxy {
            child,
            url: format!("http://{addr}"),
            addr,
            start_line,
            stderr,
            _dir: dir,
        }
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap()
    }

    /// Its resident memory now, in bytes (Linux).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .expect("VmRSS in /proc/PID/status");
        let kb: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap();
        kb * 1024
    }

    /// Sends SIGINT and waits (bounded) for the exit code.
    pub fn interrupt(mut self) -> Option<i32> {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {WAIT:?} of SIGINT"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
