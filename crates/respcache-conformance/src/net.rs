//! Loopback network faults for backend tests: a [`BlackHole`] that accepts
//! connections and never answers, and a [`FreezableProxy`] that forwards to
//! a real server until it is frozen (and again once thawed).
//!
//! Both listen on a spare port of 127.0.0.1 and stop (closing every
//! connection they hold) when dropped.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A loopback port nothing listens on: bound once on `127.0.0.1:0`, then
/// released — for "the server is down" (another process may take it in
/// between; on a test machine that does not happen in practice).
///
/// # Errors
///
/// When no loopback port can be bound.
pub fn spare_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A listener on a spare loopback port, and its address: what every test
/// server of this kit starts from.
///
/// # Errors
///
/// When no loopback port can be bound.
pub async fn loopback_listener() -> io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// A TCP listener on `127.0.0.1:0` that accepts every connection, reads
/// and discards what it is sent, and never answers: a server that is up at
/// the TCP level but frozen.
///
/// ```
/// # async fn demo() -> std::io::Result<()> {
/// let hole = respcache_conformance::net::BlackHole::start().await?;
/// let _client = tokio::net::TcpStream::connect(hole.addr()).await?; // accepted
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Debug)]
pub struct BlackHole {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl BlackHole {
    /// Starts listening on a spare loopback port.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start() -> io::Result<Self> {
        let (listener, addr) = loopback_listener().await?;
        let task = tokio::spawn(async move {
            let mut held = tokio::task::JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.spawn(swallow(socket));
            }
        });
        Ok(BlackHole { addr, task })
    }

    /// The address to point a client at.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads and drops everything until the peer closes.
async fn swallow(mut socket: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// A TCP proxy on `127.0.0.1:0` to a real server, which can be
/// [frozen](FreezableProxy::freeze): from then on the bytes it receives,
/// either way and on new connections too, are held instead of forwarded —
/// the server looks alive at the TCP level and never answers — until it is
/// [thawed](FreezableProxy::thaw), when they go on in order.
#[derive(Debug)]
pub struct FreezableProxy {
    addr: SocketAddr,
    frozen: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl FreezableProxy {
    /// Starts forwarding to `target`.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(target: SocketAddr) -> io::Result<Self> {
        let (listener, addr) = loopback_listener().await?;
        let (frozen, watch) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut held = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                held.spawn(pipe(cr, sw, watch.clone()));
                held.spawn(pipe(sr, cw, watch.clone()));
            }
        });
        Ok(FreezableProxy { addr, frozen, task })
    }

    /// The address to point a client at.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops forwarding: bytes received from now on are held.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Forwards again, the held bytes first.
    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` until either side closes; while `frozen` is set,
/// what arrives is held until it is cleared (or the proxy ends).
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        let Some(chunk) = buf.get(..n) else { return };
        if to.write_all(chunk).await.is_err() {
            return;
        }
    }
}
