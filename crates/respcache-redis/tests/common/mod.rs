//! Test helpers: the shared Redis at `RESPCACHE_REDIS_URL`, and private
//! `redis-server` processes on free ports for tests that restart, pause or
//! lock down a server.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use respcache_core::{FieldKind, Key, KeyPart, KeySchema, Name, StoreSpec};

/// The shared server the suite uses.
pub fn shared_url() -> String {
    respcache_conformance::services::REDIS.url()
}

/// A raw `redis` connection to `url`, for looking behind the backend's back.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} is not reachable (start one, see README): {e}"))
}

/// A cache name no other test run uses.
pub fn unique_cache(test: &str) -> Name {
    let suffix: u32 = rand_u32();
    Name::new(format!("it-{test}-{suffix:08x}")).expect("name")
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

pub fn spec(cache: &Name, repo: &str) -> StoreSpec {
    StoreSpec::new(
        cache.clone(),
        Name::new(repo).expect("name"),
        KeySchema::new([("id", FieldKind::Text)]).expect("schema"),
    )
}

pub fn key(id: &str) -> Key {
    Key::new("GET", [KeyPart::Text(id.to_owned())])
}

/// A `redis-server` of our own, killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
    tls: bool,
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Starts `redis-server` on a free port with `extra` arguments, in a
    /// fresh directory, and waits until it answers.
    pub fn start(extra: &[&str]) -> Server {
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Server {
            child: None,
            port,
            args: extra.iter().map(|s| (*s).to_owned()).collect(),
            tls: false,
            dir,
        };
        server.spawn();
        server
    }

    /// Starts `redis-server` serving TLS only, with a certificate for
    /// `localhost` / `127.0.0.1` signed by a fresh test CA; returns the
    /// server and the CA certificate (PEM).
    pub fn start_tls() -> (Server, Vec<u8>) {
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .expect("openssl is installed");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=respcache test CA",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("ext");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ]);
        let ca = std::fs::read(d.join("ca.crt")).expect("ca");
        let path = |f: &str| d.join(f).display().to_string();
        let args = vec![
            "--port".to_owned(),
            "0".to_owned(),
            "--tls-port".to_owned(),
            port.to_string(),
            "--tls-cert-file".to_owned(),
            path("server.crt"),
            "--tls-key-file".to_owned(),
            path("server.key"),
            "--tls-ca-cert-file".to_owned(),
            path("ca.crt"),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        let mut server = Server {
            child: None,
            port,
            args,
            tls: true,
            dir,
        };
        server.spawn();
        (server, ca)
    }

    fn spawn(&mut self) {
        let binary = which_redis_server();
        let child = Command::new(binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        if self.tls {
            wait_until_listening(self.port);
        } else {
            wait_until_up(self.port, self.args.iter().any(|a| a == "--requirepass"));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills the server abruptly (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Sends a signal to the server process (`STOP`, `CONT`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped process cannot die of SIGKILL until continued.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
        }
        self.kill();
    }
}

fn which_redis_server() -> &'static str {
    for path in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"] {
        if Path::new(path).exists() {
            return path;
        }
    }
    panic!("redis-server is not installed: apt-get install -y redis-server");
}

pub fn free_port() -> u16 {
    respcache_conformance::net::spare_port().expect("a spare loopback port")
}

fn wait_until_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server (TLS) on port {port} did not come up");
}

fn wait_until_up(port: u16, auth: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            if s.write_all(b"PING\r\n").is_ok() {
                let mut buf = [0u8; 64];
                if let Ok(n) = s.read(&mut buf) {
                    let reply = &buf[..n];
                    if reply.starts_with(b"+PONG") || (auth && reply.starts_with(b"-NOAUTH")) {
                        return;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server on port {port} did not come up");
}
