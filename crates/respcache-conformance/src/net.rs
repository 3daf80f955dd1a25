//! Loopback network faults for backend tests: a [`BlackHole`] that accepts
//! connections and never answers, and a [`FreezableProxy`] that forwards to
//! a real server until it is frozen.
//!
//! Both listen on a spare port of 127.0.0.1 and stop (closing every
//! connection they hold) when dropped.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

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
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
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
/// [frozen](FreezableProxy::freeze): from then on nothing more is
/// forwarded either way and new connections are accepted but never served
/// — the server looks alive at the TCP level and never answers.
#[derive(Debug)]
pub struct FreezableProxy {
    addr: SocketAddr,
    frozen: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl FreezableProxy {
    /// Starts forwarding to `target`.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(target: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let frozen = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&frozen);
        let task = tokio::spawn(async move {
            let mut held = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let flag = Arc::clone(&flag);
                held.spawn(async move {
                    if flag.load(Ordering::Acquire) {
                        return swallow(client).await;
                    }
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(
                        pipe(cr, sw, Arc::clone(&flag)),
                        pipe(sr, cw, Arc::clone(&flag))
                    );
                });
            }
        });
        Ok(FreezableProxy { addr, frozen, task })
    }

    /// The address to point a client at.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops forwarding: bytes sent from now on are held, never delivered.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::Release);
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` until either side closes; once `frozen` is set,
/// whatever arrives is held forever instead.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
        let Some(chunk) = buf.get(..n) else { return };
        if to.write_all(chunk).await.is_err() {
            return;
        }
    }
}
