//! `respcache serve` against Varnish and nginx (`proxy_cache`) on loopback
//! (issue 20): the same origin behind each, the same load from 50
//! keep-alive connections, hits over 1,000 warm URLs and misses over new
//! URLs, in interleaved rounds.
//!
//! The servers are started here on spare loopback ports, with configs
//! written to a temporary folder (nginx's cache in `/dev/shm`: see
//! [`memory_folder`]), and stopped afterwards (only the
//! processes started here: by their ids). Varnish and nginx come from
//! Debian's packages (`apt-get install -y varnish nginx-light`, tried once
//! when missing and running as root); `respcache` is the release binary of
//! `respcache-cli` built with `--features full` (`cargo xtask bench` builds
//! it; `RESPCACHE_BIN` names another).
//!
//! The load generator is a small hyper client in this process, not wrk:
//! it sends exactly the URLs the issue asks for (each of the 20,000 miss
//! URLs once, the 1,000 warm URLs in turn), checks every answer's status
//! and body length, and counts the origin's requests per run, so a "hit"
//! that reached the origin is a failure rather than a fast number.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::Result;
use crate::data::SMALL;
use crate::measure::Stats;

/// Keep-alive connections of the load generator.
pub const CONNECTIONS: usize = 50;
/// Warm URLs the hit runs cycle through.
pub const WARM_URLS: u64 = 1_000;
/// New URLs each server gets for its misses, over all rounds.
pub const MISS_URLS: u64 = 20_000;

/// A caching proxy under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// `respcache serve` on the memory backend.
    ServeMemory,
    /// `respcache serve` on a SQLite file.
    ServeSqlite,
    /// Varnish (`varnishd -b`, the built-in VCL).
    Varnish,
    /// nginx with `proxy_cache`.
    Nginx,
}

impl ProxyKind {
    /// Every kind, in the order a round runs them.
    pub const ALL: [ProxyKind; 4] = [
        ProxyKind::ServeMemory,
        ProxyKind::ServeSqlite,
        ProxyKind::Varnish,
        ProxyKind::Nginx,
    ];

    /// The backend column of its rows.
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::ServeMemory => "memory",
            ProxyKind::ServeSqlite => "sqlite",
            ProxyKind::Varnish => "varnish",
            ProxyKind::Nginx => "nginx",
        }
    }

    /// Whether it is respcache's own.
    pub fn is_serve(self) -> bool {
        matches!(self, ProxyKind::ServeMemory | ProxyKind::ServeSqlite)
    }
}

/// A proxy this module started.
#[derive(Debug)]
pub struct Running {
    /// Which one.
    pub kind: ProxyKind,
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
    /// Files that live as long as the server (nginx's cache in memory).
    _scratch: Option<tempfile::TempDir>,
}

impl Running {
    /// Stops it: `SIGTERM` to the process started here (Varnish's and
    /// nginx's managers stop their own children), then `SIGKILL` after 5 s.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

/// Where the `respcache` binary is: `RESPCACHE_BIN`, else next to this
/// executable (`target/release/respcache`).
pub fn respcache_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RESPCACHE_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.join("respcache");
    p.is_file().then_some(p)
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The path of `program`, installing Debian package `package` once with
/// apt-get when it is missing (as root only). The error says why not.
pub async fn ensure_program(program: &str, package: &str) -> Result<PathBuf> {
    if let Some(p) = find_program(program) {
        return Ok(p);
    }
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        return Err(
            format!("{program} not installed (apt-get install {package} needs root)").into(),
        );
    }
    let out = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .await?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").trim().to_owned();
        return Err(format!("apt-get install {package} failed: {last}").into());
    }
    find_program(program)
        .ok_or_else(|| format!("{program} not found after installing {package}").into())
}

/// A file in `dir` a server's output goes to (a pipe nobody reads would
/// fill and stop it).
fn log_file(dir: &Path, name: &str) -> Result<Stdio> {
    Ok(Stdio::from(std::fs::File::create(dir.join(name))?))
}

fn spare_port() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// Waits (at most 15 s) until `addr` accepts connections, or the child
/// exits.
async fn wait_listening(child: &mut Child, addr: SocketAddr, what: &str) -> Result<()> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(15) {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            return Err(format!("{what} exited at start: {status}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{what} did not listen on {addr} within 15 s").into())
}

/// Starts `kind` in front of `origin`, its files in `dir`.
pub async fn start(kind: ProxyKind, origin: SocketAddr, dir: &Path) -> Result<Running> {
    let upstream = format!("http://{origin}");
    match kind {
        ProxyKind::ServeMemory | ProxyKind::ServeSqlite => {
            let bin = respcache_bin().ok_or(
                "no respcache binary: `cargo build --release -p respcache-cli --features full` (or set RESPCACHE_BIN)",
            )?;
            let cache = match kind {
                ProxyKind::ServeMemory => "memory://?cache=bench".to_owned(),
                _ => format!(
                    "sqlite://{}?cache=bench",
                    dir.join("serve.sqlite").display()
                ),
            };
            let mut child = Command::new(bin)
                .args(["serve", "--cache", &cache, "--upstream", &upstream])
                .args(["--listen", "127.0.0.1:0"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            let addr = serve_address(&mut child).await?;
            Ok(Running {
                kind,
                addr,
                child,
                _scratch: None,
            })
        }
        ProxyKind::Varnish => {
            let bin = ensure_program("varnishd", "varnish").await?;
            let addr = spare_port()?;
            let work = dir.join("varnish");
            std::fs::create_dir_all(&work)?;
            let mut child = Command::new(bin)
                .arg("-F")
                .args(["-j", "none"])
                .args(["-a", &addr.to_string()])
                .args(["-b", &origin.to_string()])
                .args(["-n", &work.display().to_string()])
                .args(["-s", "malloc,256m"])
                .args(["-T", "none"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file(dir, "varnishd.log")?)
                .kill_on_drop(true)
                .spawn()?;
            wait_listening(&mut child, addr, "varnishd").await?;
            Ok(Running {
                kind,
                addr,
                child,
                _scratch: None,
            })
        }
        ProxyKind::Nginx => {
            let bin = ensure_program("nginx", "nginx-light").await?;
            let addr = spare_port()?;
            let root = dir.join("nginx");
            std::fs::create_dir_all(&root)?;
            let scratch = memory_folder("respcache-bench-nginx-");
            let cache = match &scratch {
                Some(d) => d.path().to_owned(),
                None => root.join("cache"),
            };
            std::fs::create_dir_all(&cache)?;
            let conf = root.join("nginx.conf");
            std::fs::write(&conf, nginx_conf(&root, &cache, addr, origin))?;
            let mut child = Command::new(bin)
                .args(["-p", &root.display().to_string()])
                .args(["-c", &conf.display().to_string()])
                .args(["-e", &root.join("error.log").display().to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file(dir, "nginx.log")?)
                .kill_on_drop(true)
                .spawn()?;
            wait_listening(&mut child, addr, "nginx").await?;
            Ok(Running {
                kind,
                addr,
                child,
                _scratch: scratch,
            })
        }
    }
}

/// The address `respcache serve` names in its start line.
async fn serve_address(child: &mut Child) -> Result<SocketAddr> {
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stderr).lines();
    let mut out_lines = BufReader::new(stdout).lines();
    let find = |line: &str| -> Option<SocketAddr> {
        let rest = line.split("listening on http://").nth(1)?;
        rest.split([',', ' ']).next()?.parse().ok()
    };
    let deadline = Duration::from_secs(20);
    let r: std::result::Result<Result<SocketAddr>, tokio::time::error::Elapsed> =
        tokio::time::timeout(deadline, async {
            let mut said = Vec::new();
            loop {
                let line = tokio::select! {
                    l = lines.next_line() => l?,
                    l = out_lines.next_line() => l?,
                };
                let Some(line) = line else {
                    return Err(format!("respcache serve exited: {}", said.join(" / ")).into());
                };
                if let Some(addr) = find(&line) {
                    return Ok(addr);
                }
                said.push(line);
            }
        })
        .await;
    let r = r.map_err(|_| "respcache serve did not start within 20 s")??;
    // Keep draining both pipes so the server never blocks on a full one.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    tokio::spawn(async move { while let Ok(Some(_)) = out_lines.next_line().await {} });
    Ok(r)
}

/// A new folder in `/dev/shm` (tmpfs), if the machine has one.
///
/// nginx's `proxy_cache` goes there: it writes a file per answer, and on
/// this machine's ext4 creating files is 10× slower for minutes after many
/// were deleted (perf: the kernel's `recently_deleted` scan in inode
/// allocation) — nginx's misses measured 11.3k req/s on a quiet disk and
/// 0.6–1.3k after a previous run's cache folder was removed. In memory its
/// misses do not depend on what ran before, and are its fastest (13–19k
/// req/s with wrk alone, 18.9–25.7k in this bench): the stricter baseline.
fn memory_folder(prefix: &str) -> Option<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/dev/shm")
        .ok()
}

fn nginx_conf(root: &Path, cache: &Path, listen: SocketAddr, origin: SocketAddr) -> String {
    let r = root.display();
    let c = cache.display();
    format!(
        "user root;
daemon off;
master_process on;
worker_processes auto;
pid {r}/nginx.pid;
error_log {r}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {r}/body;
    proxy_temp_path {r}/proxy;
    fastcgi_temp_path {r}/fastcgi;
    uwsgi_temp_path {r}/uwsgi;
    scgi_temp_path {r}/scgi;
    proxy_cache_path {c} levels=1:2 keys_zone=bench:64m max_size=2g inactive=1d use_temp_path=off;
    upstream origin {{ server {origin}; keepalive 64; }}
    server {{
        listen {listen};
        keepalive_requests 1000000;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_cache bench;
        }}
    }}
}}
"
    )
}

/// Sends `total` GETs to `addr` over [`CONNECTIONS`] keep-alive
/// connections, request `n` for `path(n)`; every answer must be a `200`
/// with the 1 KiB body. Bounded: fails after `limit`.
pub async fn drive(
    addr: SocketAddr,
    total: u64,
    path: Arc<dyn Fn(u64) -> String + Send + Sync>,
    limit: Duration,
) -> Result<Stats> {
    let next = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let (next, path) = (Arc::clone(&next), Arc::clone(&path));
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut send, conn) =
                hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                    .await?;
            let driver = tokio::spawn(conn);
            let mut times = Vec::new();
            let host = addr.to_string();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let request = http::Request::get(path(n))
                    .header(http::header::HOST, &host)
                    .body(Empty::new())?;
                let start = Instant::now();
                send.ready().await?;
                let response = send.send_request(request).await?;
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                times.push(start.elapsed());
                if status != http::StatusCode::OK || body.len() != SMALL {
                    return Err(format!(
                        "request {n}: {status} with {} B, wanted 200 with {SMALL} B",
                        body.len()
                    )
                    .into());
                }
            }
            driver.abort();
            Ok::<_, crate::BoxError>(times)
        }));
    }
    let all = async {
        let mut times = Vec::with_capacity(total as usize);
        for t in tasks {
            times.extend(t.await??);
        }
        Ok::<_, crate::BoxError>(times)
    };
    let times = tokio::time::timeout(limit, all)
        .await
        .map_err(|_| format!("{total} requests did not finish within {limit:?}"))??;
    let wall = t0.elapsed();
    Stats::from_times(times, 1, wall).ok_or_else(|| "no samples".into())
}

/// The path of warm URL `n`.
pub fn warm_path(n: u64) -> String {
    format!("/proxy/warm/{}", n % WARM_URLS)
}
