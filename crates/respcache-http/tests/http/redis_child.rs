//! A `redis-server` of the test's own on a spare loopback port, which the
//! test may freeze (SIGSTOP), thaw (SIGCONT), kill and start again. The
//! guard thaws and kills it when dropped, whatever the test did.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Debian's Redis server.
pub(crate) const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// Whether the tests that start their own Redis can run here. Under
/// `CI=true` a missing server fails the test instead.
pub(crate) fn available() -> bool {
    let probe = if std::path::Path::new(REDIS_SERVER).exists() {
        Ok(())
    } else {
        Err("the program is missing")
    };
    respcache_conformance::services::available(REDIS_SERVER, probe)
}

/// A port nothing listens on (the kit's: bound once, then released).
pub(crate) fn spare_port() -> u16 {
    respcache_conformance::net::spare_port().unwrap()
}

/// A running (or frozen, or killed) `redis-server`.
pub(crate) struct RedisChild {
    pub port: u16,
    child: Option<Child>,
    frozen: bool,
}

impl RedisChild {
    /// Starts a server on `port` and waits (up to 10 s) until it answers
    /// `PING`.
    pub(crate) async fn start(port: u16) -> RedisChild {
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let r = RedisChild {
            port,
            child: Some(child),
            frozen: false,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping(port).await {
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} never answered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        r
    }

    /// The URL of its database 0 with the given command timeout.
    pub(crate) fn url(&self, command_timeout: Duration) -> String {
        url(self.port, command_timeout)
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "kill {sig} failed");
        }
    }

    /// SIGSTOP: it keeps its connections but answers nothing.
    pub(crate) fn freeze(&mut self) {
        self.signal("-STOP");
        self.frozen = true;
    }

    /// SIGCONT.
    pub(crate) fn thaw(&mut self) {
        self.signal("-CONT");
        self.frozen = false;
    }

    /// SIGKILL, and waits for it to end.
    pub(crate) fn kill(&mut self) {
        if self.frozen {
            self.thaw();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis URL on `port` with short timeouts.
pub(crate) fn url(port: u16, command_timeout: Duration) -> String {
    format!(
        "redis://127.0.0.1:{port}/0?command_timeout_ms={}&connect_timeout_ms=500",
        command_timeout.as_millis()
    )
}

async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).await.ok()?;
        Some(&buf == b"+PONG\r\n")
    };
    tokio::time::timeout(Duration::from_millis(500), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
