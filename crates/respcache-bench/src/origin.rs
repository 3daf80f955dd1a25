//! A local origin on 127.0.0.1 for the HTTP benchmarks: a hyper server on a
//! thread (and a one-thread runtime) of its own, so it never competes with
//! the measured client's runtime for its workers.
//!
//! | path | answer |
//! |---|---|
//! | `/etag/...` | `200` with the 1 KiB body, `ETag: "v1"`, `Cache-Control: no-cache` (stale at once); `304` when `If-None-Match: "v1"` |
//! | anything else | `200` with the 1 KiB body, `Cache-Control: max-age=86400` |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::Result;
use crate::data::{self, SMALL};

/// The entity tag of every `/etag/...` answer.
pub const ETAG: &str = "\"v1\"";

/// A running origin; dropping it stops the server.
#[derive(Debug)]
pub struct Origin {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Origin {
    /// Starts the origin on a free port.
    pub fn start() -> Result<Origin> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&requests);
        let connections = Arc::new(AtomicU64::new(0));
        let accepted = Arc::clone(&connections);
        let body = data::payload(SMALL, 42);
        let (stop, stopped) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("bench-origin".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(std_listener) else {
                        return;
                    };
                    tokio::select! {
                        () = serve(listener, counter, accepted, body) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(Origin {
            addr,
            requests,
            connections,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests the origin has answered.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// How many connections the origin has accepted (a pooled client
    /// opens few).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: TcpListener,
    requests: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    body: Bytes,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, most likely: let connections close.
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            continue;
        };
        connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let requests = Arc::clone(&requests);
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<Incoming>| {
                requests.fetch_add(1, Ordering::Relaxed);
                let answer = answer(&req, &body);
                async move { Ok::<_, Infallible>(answer) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(req: &hyper::Request<Incoming>, body: &Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.clone()));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if req.uri().path().starts_with("/etag/") {
        headers.insert(http::header::ETAG, HeaderValue::from_static(ETAG));
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        let matches = req
            .headers()
            .get(http::header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == ETAG.as_bytes());
        if matches {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            *response.body_mut() = Full::new(Bytes::new());
        }
    } else {
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=86400"),
        );
    }
    response
}
