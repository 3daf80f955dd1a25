//! A local HTTP origin for tests (feature `origin`): a hyper server on a
//! spare port of 127.0.0.1 whose answers a closure decides, counting what
//! it receives. Dropping it stops it and closes every connection.
//!
//! Two ways to answer:
//!
//! - [`Origin::start`]: the closure sees each request as a [`Seen`] (body
//!   read whole) and returns a [`Reply`] (status, headers, body, an
//!   optional delay); the origin keeps every `Seen` and counts requests per
//!   path;
//! - [`Origin::streaming`]: the closure gets the hyper request itself and
//!   builds the response, bodies streamed both ways.
//!
//! [`OriginBuilder`] sets what differs between tests: whether hyper adds a
//! `Date` header (tests on a manual clock turn it off, since real time
//! would look like a skewed origin clock, RFC 9111 §4.2.3).
//!
//! ```
//! use respcache_conformance::origin::{Origin, Reply};
//!
//! # async fn demo() {
//! let origin = Origin::start(|seen| {
//!     Reply::ok(format!("hello {}", seen.path)).header("cache-control", "max-age=60")
//! })
//! .await;
//! let url = origin.url("/a"); // http://127.0.0.1:PORT/a
//! # let _ = url;
//! assert_eq!(origin.count("/a"), 0);
//! # }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo());
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::task::JoinHandle;

/// A response body the streaming handler builds.
pub type Body = BoxBody<Bytes, Infallible>;

/// What the origin saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The method.
    pub method: Method,
    /// Path and query.
    pub target: String,
    /// The path alone.
    pub path: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The whole request body.
    pub body: Bytes,
    /// How many requests this path had, this one included (path and
    /// query with [`OriginBuilder::count_by_target`]).
    pub n: usize,
}

/// What the origin answers.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Header lines, in order (a name may repeat).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// How long to wait before answering.
    pub delay: Option<Duration>,
}

impl Reply {
    /// `200` with `body`.
    pub fn ok(body: impl Into<Bytes>) -> Self {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            delay: None,
        }
    }

    /// `status` with an empty body.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            ..Reply::ok("")
        }
    }

    /// The same reply with `status`.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a header line.
    #[must_use]
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Answers after `d`.
    #[must_use]
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }
}

type ReplyFn = dyn Fn(&Seen) -> Reply + Send + Sync;
type StreamFn = dyn Fn(http::Request<Incoming>) -> Pin<Box<dyn Future<Output = http::Response<Body>> + Send>>
    + Send
    + Sync;

/// How an [`Origin`] is set up before it starts.
#[derive(Debug, Clone)]
pub struct OriginBuilder {
    date: bool,
    by_target: bool,
}

impl Default for OriginBuilder {
    fn default() -> Self {
        OriginBuilder {
            date: true,
            by_target: false,
        }
    }
}

impl OriginBuilder {
    /// Whether hyper adds a `Date` header to each answer (the default);
    /// a handler's own `Date` is kept either way.
    #[must_use]
    pub fn date(mut self, date: bool) -> Self {
        self.date = date;
        self
    }

    /// Counts requests per path *and query* (what [`Seen::n`] and
    /// [`Origin::count`] say), for tests that script answers in the query;
    /// by default per path alone.
    #[must_use]
    pub fn count_by_target(mut self) -> Self {
        self.by_target = true;
        self
    }

    /// Starts an origin answering with `handler`'s [`Reply`].
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound (it is test support: that fails
    /// the test that asked for the origin).
    pub async fn start(self, handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Origin {
        let handler: Arc<ReplyFn> = Arc::new(handler);
        let counts = Arc::new(Counts {
            by_target: self.by_target,
            ..Counts::default()
        });
        let c = Arc::clone(&counts);
        let stream: Arc<StreamFn> = Arc::new(move |req| {
            let (handler, c) = (Arc::clone(&handler), Arc::clone(&c));
            Box::pin(async move { answer(req, handler.as_ref(), &c).await })
        });
        self.serve(stream, counts).await
    }

    /// Starts an origin whose `handler` builds each response from the
    /// request itself, streaming bodies both ways. It counts requests
    /// ([`total`](Origin::total), [`targets`](Origin::targets)) and
    /// connections, and keeps no [`Seen`].
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn streaming<F, Fut>(self, handler: F) -> Origin
    where
        F: Fn(http::Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = http::Response<Body>> + Send + 'static,
    {
        let counts = Arc::new(Counts::default());
        let stream: Arc<StreamFn> = Arc::new(move |req| Box::pin(handler(req)));
        self.serve(stream, counts).await
    }

    #[allow(clippy::expect_used)] // test support: documented panics above
    async fn serve(self, handler: Arc<StreamFn>, counts: Arc<Counts>) -> Origin {
        let (listener, addr) = crate::net::loopback_listener()
            .await
            .expect("the origin binds a loopback port");
        let c = Arc::clone(&counts);
        let date = self.date;
        // Dropping the origin aborts this task, whose JoinSet aborts every
        // connection: the port then refuses connections.
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                c.connections.fetch_add(1, Ordering::SeqCst);
                let (handler, c) = (Arc::clone(&handler), Arc::clone(&c));
                connections.spawn(async move {
                    let service = service_fn(move |req: http::Request<Incoming>| {
                        c.total.fetch_add(1, Ordering::SeqCst);
                        lock(&c.arrived).push(req.uri().to_string());
                        let answer = handler(req);
                        async move { Ok::<_, Infallible>(answer.await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .auto_date_header(date)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Origin { addr, counts, task }
    }
}

/// What an origin counted and kept.
#[derive(Default)]
struct Counts {
    /// Whether `per_path` is keyed by path and query.
    by_target: bool,
    per_path: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
    connections: AtomicUsize,
    /// Request targets as they arrived, before their bodies.
    arrived: Mutex<Vec<String>>,
    seen: Mutex<Vec<Seen>>,
}

/// A running origin; dropping it stops it.
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    counts: Arc<Counts>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin").field("addr", &self.addr).finish()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Origin {
    /// How to set one up (a `Date` header or not).
    pub fn builder() -> OriginBuilder {
        OriginBuilder::default()
    }

    /// [`OriginBuilder::start`] with the defaults.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Origin {
        Origin::builder().start(handler).await
    }

    /// [`OriginBuilder::start`] without an automatic `Date` header: for
    /// clients on a manual clock, against which the real time would look
    /// like a skewed origin clock (RFC 9111 §4.2.3 counts it in the age).
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn without_date(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Origin {
        Origin::builder().date(false).start(handler).await
    }

    /// [`OriginBuilder::streaming`] with the defaults.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn streaming<F, Fut>(handler: F) -> Origin
    where
        F: Fn(http::Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = http::Response<Body>> + Send + 'static,
    {
        Origin::builder().streaming(handler).await
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Requests received for `path` (without query; with it when built
    /// with [`count_by_target`](OriginBuilder::count_by_target)).
    pub fn count(&self, path: &str) -> usize {
        lock(&self.counts.per_path).get(path).copied().unwrap_or(0)
    }

    /// Requests received per path (without query).
    pub fn counts(&self) -> HashMap<String, usize> {
        lock(&self.counts.per_path).clone()
    }

    /// Requests received in all, counted as each arrives (before its
    /// body).
    pub fn total(&self) -> usize {
        self.counts.total.load(Ordering::SeqCst)
    }

    /// Connections accepted in all.
    pub fn connections(&self) -> usize {
        self.counts.connections.load(Ordering::SeqCst)
    }

    /// Every request received, in order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.counts.seen).clone()
    }

    /// The requests received for `path`, in order.
    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        lock(&self.counts.seen)
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    /// The target (path and query) of every request, in order, recorded
    /// as it arrived — before its body, so a request whose body never
    /// came is here and not in [`seen`](Self::seen).
    pub fn targets(&self) -> Vec<String> {
        lock(&self.counts.arrived).clone()
    }

    /// The last request received.
    pub fn last(&self) -> Option<Seen> {
        lock(&self.counts.seen).last().cloned()
    }
}

async fn answer(
    req: http::Request<Incoming>,
    handler: &ReplyFn,
    counts: &Counts,
) -> http::Response<Body> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let n = {
        let key = if counts.by_target { &target } else { &path };
        let mut per_path = lock(&counts.per_path);
        let n = per_path.entry(key.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let seen = Seen {
        method: parts.method,
        target,
        path,
        headers: parts.headers,
        body,
        n,
    };
    lock(&counts.seen).push(seen.clone());
    let reply = handler(&seen);
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    response(reply)
}

/// The hyper response for `reply`; a status or header hyper refuses is a
/// `500` naming it, so the test sees what went wrong.
fn response(reply: Reply) -> http::Response<Body> {
    let mut resp = http::Response::new(Full::new(reply.body).boxed());
    match StatusCode::from_u16(reply.status) {
        Ok(status) => *resp.status_mut() = status,
        Err(_) => return broken(format!("invalid status {}", reply.status)),
    }
    for (name, value) in reply.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            (Ok(n), Ok(v)) => {
                resp.headers_mut().append(n, v);
            }
            _ => return broken(format!("invalid header {name}: {value}")),
        }
    }
    resp
}

fn broken(why: String) -> http::Response<Body> {
    let mut resp = http::Response::new(Full::new(Bytes::from(format!("origin: {why}"))).boxed());
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    resp
}

/// A whole body for a streaming handler's response.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A server on a spare loopback port that accepts connections, reads a
/// little of the request and resets the connection without answering;
/// stops when the task is aborted.
///
/// # Panics
///
/// When no loopback port can be bound.
#[allow(clippy::expect_used)] // test support: documented panics above
pub async fn resetting_origin() -> (SocketAddr, JoinHandle<()>) {
    let (listener, addr) = crate::net::loopback_listener()
        .await
        .expect("the origin binds a loopback port");
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = stream.readable().await;
            let _ = stream.try_read(&mut buf);
            let _ = stream.set_zero_linger();
            drop(stream);
        }
    });
    (addr, task)
}

/// An HTTP date (RFC 9110 §5.6.7) `offset` seconds from now (negative: in
/// the past).
pub fn http_date(offset: i64) -> String {
    let now = std::time::SystemTime::now();
    let step = std::time::Duration::from_secs(offset.unsigned_abs());
    let at = if offset >= 0 {
        now.checked_add(step)
    } else {
        now.checked_sub(step)
    };
    httpdate::fmt_http_date(at.unwrap_or(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_offset_from_now() {
        let parse = |d: &str| httpdate::parse_http_date(d).unwrap();
        let (past, now, later) = (http_date(-60), http_date(0), http_date(60));
        assert!(parse(&past) < parse(&now) && parse(&now) < parse(&later));
        assert!(now.ends_with(" GMT"), "{now}");
    }
}
