//! [`Proxy`]: a caching reverse proxy in front of one upstream, as a
//! [`tower::Service`] a program embeds in its own server (`respcache serve`
//! is this service behind a listener).
//!
//! The proxy is a [`CachedClient`] turned around: each request a server
//! receives is sent to the upstream through the cache, and the cache's or
//! the upstream's answer goes back with a `Cache-Status` (RFC 9211).
//!
//! - **Forwarding.** Every method (extension methods too) is forwarded with
//!   its body and its end-to-end headers unchanged; hop-by-hop headers
//!   (`Connection` and the headers it names, `Keep-Alive`, `Proxy-*`, `TE`,
//!   `Trailer`, `Transfer-Encoding`, `Upgrade`) and `Host` are not, in
//!   either direction. Redirects are passed back, never followed.
//! - **Caching.** Answers are cached by the HTTP rules alone (no default
//!   lifetime), as a private cache or, with [`ProxyBuilder::shared`], a
//!   shared one; `CDN-Cache-Control` (RFC 9213) wins over `Cache-Control`,
//!   and a stale answer stands in while the upstream is unreachable. An
//!   upstream that fails gives `502` (`504` after the time limit), with an
//!   [`UpstreamError`] in the answer's extensions.
//! - **Screening** (`screen.rs`, `path.rs`): the path is normalised (dot
//!   segments, `%2e` forms) and may never leave the upstream's base path
//!   (`400`); an HTTP/1.1 request needs exactly one `Host` (`400`);
//!   `CONNECT` is not relayed (`501`); `OPTIONS *` is answered here.
//!   Upgrades are not relayed: an upstream `101` is a `502`.
//! - **Bodies** (`request_body.rs`): response bodies stream unless the cache
//!   keeps them (storable, servable again, within the body size limit).
//!   Request bodies of the methods the cache answers (GET, HEAD) are part of
//!   the cache key, so they are read whole: over the size limit `413`, not
//!   in within the body time limit `408`, over the shared buffer budget
//!   `503` with `Retry-After`. Every other method's body streams to the
//!   upstream, whatever its size.
//!
//! Connections are the server's business: the listener, limits on
//! connections, header and idle time limits, graceful shutdown.
//!
//! # Embedding it
//!
//! The proxy in a program's own hyper server (here with hyper-util's
//! `auto` connection builder, which speaks HTTP/1 and HTTP/2):
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use hyper::service::service_fn;
//! use hyper_util::rt::{TokioExecutor, TokioIo};
//! use hyper_util::server::conn::auto;
//! use respcache_http::Proxy;
//! use respcache_http::respcache_core::MemoryBackend;
//! use tokio::net::TcpListener;
//! use tower::ServiceExt;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let proxy = Proxy::builder("http://127.0.0.1:9000/api")?
//!     .shared(true)
//!     .build(Arc::new(MemoryBackend::new()))
//!     .await?;
//! let listener = TcpListener::bind("127.0.0.1:8080").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     let proxy = proxy.clone();
//!     // `oneshot` drives the tower service for one request.
//!     let service = service_fn(move |request| proxy.clone().oneshot(request));
//!     tokio::spawn(async move {
//!         let server = auto::Builder::new(TokioExecutor::new());
//!         if let Err(e) = server.serve_connection(TokioIo::new(stream), service).await {
//!             eprintln!("connection: {e}");
//!         }
//!     });
//! }
//! # }
//! ```

pub(crate) mod answer;
mod path;
mod request_body;
mod screen;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, header};
use hyper::body::Body;
use respcache_core::Backend;

use self::answer::{Answer, own_answer, relay, upstream_failed};
use self::path::Upstream;
use crate::body::{BoxError, ResponseBody};
use crate::budget::BufferBudget;
use crate::builder::CachedClientBuilder;
use crate::client::CachedClient;
use crate::error::Result;
use crate::hop::drop_hop_by_hop;
use crate::rules::storable::HEURISTICALLY_CACHEABLE;

pub use self::answer::UpstreamError;

/// The default largest body held in memory: 16 MiB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 16 * 1024 * 1024;
/// The default time a whole GET/HEAD request body may take to arrive: 30 s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The default budget of all bodies held in memory at once: 256 MiB.
pub const DEFAULT_BUFFER_BUDGET: usize = 256 * 1024 * 1024;
/// The default time limit of an upstream request: 60 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A caching reverse proxy in front of one upstream, as a
/// [`tower::Service`] over any [`http::Request`] whose body is an
/// [`http_body::Body`](hyper::body::Body) of [`Bytes`] (hyper's
/// `Incoming`, for one). It never fails: every problem is an answer
/// (see the [module documentation](self)). Clones share the cache, the
/// client's connections and the buffer budget.
///
/// ```no_run
/// use std::sync::Arc;
///
/// use http_body_util::{BodyExt, Empty};
/// use respcache_http::Proxy;
/// use respcache_http::respcache_core::MemoryBackend;
/// use tower::ServiceExt;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let proxy = Proxy::builder("http://127.0.0.1:9000")?
///     .build(Arc::new(MemoryBackend::new()))
///     .await?;
/// let request = http::Request::get("/tracks/7?market=SE")
///     .header("host", "proxy.example")
///     .body(Empty::<bytes::Bytes>::new())?;
/// let answer = proxy.clone().oneshot(request).await?;
/// println!("{} {:?}", answer.status(), answer.headers().get("cache-status"));
/// let body = answer.into_body().collect().await?.to_bytes();
/// # drop(body);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

/// What every request shares.
struct Inner {
    client: CachedClient,
    upstream: Upstream,
    max_body_size: usize,
    body_timeout: Duration,
    budget: BufferBudget,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("upstream", &self.inner.upstream.to_string())
            .field("max_body_size", &self.inner.max_body_size)
            .field("body_timeout", &self.inner.body_timeout)
            .field("budget", &self.inner.budget)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A builder for a proxy in front of `upstream`, an `http://` or
    /// `https://` base URL whose path, if any, every request path is
    /// appended to (`http://127.0.0.1:9000/api` sends `/v1/x` to
    /// `http://127.0.0.1:9000/api/v1/x`).
    ///
    /// # Errors
    ///
    /// [`InvalidUrl`](crate::ErrorKind::InvalidUrl) when `upstream` is not
    /// such a URL with a host, or carries credentials, a query or a
    /// fragment; the message names it with any password redacted.
    pub fn builder(upstream: &str) -> Result<ProxyBuilder> {
        Ok(ProxyBuilder::new(Upstream::parse(upstream)?))
    }

    /// The client the proxy sends requests through: its
    /// [`stats`](CachedClient::stats),
    /// [`store_error`](CachedClient::store_error) and
    /// [`wait_background`](CachedClient::wait_background) (for a shutdown
    /// that lets background revalidations finish).
    pub fn client(&self) -> &CachedClient {
        &self.inner.client
    }

    /// The upstream base URL, without its trailing `/`.
    pub fn upstream(&self) -> String {
        self.inner.upstream.to_string()
    }
}

/// The future a [`Proxy`] returns.
pub type ProxyFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send + 'static>>;

impl<B> tower::Service<Request<B>> for Proxy
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ProxyFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Connections and the budget are shared and taken per request.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ProxyFuture {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { Ok(inner.forward(request).await.unwrap_or_else(|answer| answer)) })
    }
}

impl Inner {
    /// Sends one request through the cache; `Err` is an answer of our own.
    async fn forward<B>(&self, request: Request<B>) -> Result<Answer, Answer>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        if let Some(answer) = screen::screen(&parts) {
            return Err(answer);
        }
        let url = self
            .upstream
            .target(&parts.uri)
            .map_err(|e| own_answer(http::StatusCode::BAD_REQUEST, &e.to_string()))?;
        let mut headers = parts.headers;
        drop_hop_by_hop(&mut headers);
        // The upstream's own host goes in its place.
        headers.remove(header::HOST);
        let head = parts.method == Method::HEAD;
        let cached_method = self.client.caches_method(&parts.method);
        let request = self.client.request(parts.method, &url).headers(headers);
        let request = if cached_method {
            // Part of the cache key: read whole, within the limits.
            let body =
                request_body::read_whole(body, self.max_body_size, &self.budget, self.body_timeout)
                    .await
                    .map_err(|e| e.answer())?;
            request.body(body)
        } else if body.is_end_stream() {
            request
        } else {
            request.body_stream(body)
        };
        match request.send_streaming().await {
            Ok(response) => Ok(relay(response, head)),
            Err(e) => {
                tracing::warn!(error = %e, "respcache proxy: the upstream request failed");
                Err(upstream_failed(e))
            }
        }
    }
}

/// Builds a [`Proxy`]; from [`Proxy::builder`].
///
/// The client behind it starts as a gateway cache wants it: cached by the
/// HTTP rules alone (every status they let a cache store, no default
/// lifetime), stale answers while the upstream is unreachable,
/// `CDN-Cache-Control` first, private unless [`shared`](Self::shared).
/// [`client`](Self::client) changes any other client option; redirects are
/// never followed, and the body size limit and buffer budget are the
/// proxy's own, whatever it sets.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use respcache_http::{BufferBudget, Proxy};
/// use respcache_http::respcache_core::MemoryBackend;
///
/// # async fn demo() -> respcache_http::Result<()> {
/// let proxy = Proxy::builder("https://api.example.com/v1")?
///     .shared(true)
///     .max_body_size(4 * 1024 * 1024)
///     .body_timeout(Duration::from_secs(10))
///     .buffer_budget(BufferBudget::new(64 * 1024 * 1024))
///     .timeout(Duration::from_secs(20))
///     .client(|c| c.cache_name("api_proxy").stale_if_error(Duration::from_secs(300)))
///     .build(Arc::new(MemoryBackend::new()))
///     .await?;
/// # drop(proxy); Ok(()) }
/// ```
#[must_use = "a builder does nothing until built"]
pub struct ProxyBuilder {
    upstream: Upstream,
    client: CachedClientBuilder,
    max_body_size: usize,
    body_timeout: Duration,
    budget: BufferBudget,
}

impl fmt::Debug for ProxyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyBuilder")
            .field("upstream", &self.upstream.to_string())
            .field("client", &self.client)
            .field("max_body_size", &self.max_body_size)
            .field("body_timeout", &self.body_timeout)
            .field("budget", &self.budget)
            .finish()
    }
}

impl ProxyBuilder {
    fn new(upstream: Upstream) -> Self {
        let client = CachedClientBuilder::new()
            // Cached by the HTTP rules alone: what they let a cache store,
            // and stale answers while the upstream is unreachable
            // (RFC 9111 §4.2.4).
            .allowed_codes(HEURISTICALLY_CACHEABLE)
            .public_heuristic(true)
            .stale_when_unreachable(true)
            // A gateway cache: the origin's CDN-Cache-Control (RFC 9213) wins.
            .targeted_cache_control(http::HeaderName::from_static("cdn-cache-control"))
            .timeout(DEFAULT_TIMEOUT);
        ProxyBuilder {
            upstream,
            client,
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            budget: BufferBudget::new(DEFAULT_BUFFER_BUDGET),
        }
    }

    /// A shared cache (RFC 9111 §3.5: `private` answers and answers to
    /// requests with credentials — `Authorization`, and the ignored
    /// headers and query parameters such as `X-API-Key` and `api_key` —
    /// are not stored unless the upstream allows it; requests with other
    /// credentials are never coalesced) rather than a private one (the
    /// default).
    pub fn shared(mut self, shared: bool) -> Self {
        self.client = self.client.shared(shared);
        self
    }

    /// The largest body held in memory, in bytes
    /// ([`DEFAULT_MAX_BODY_SIZE`]): a larger GET/HEAD request body gets
    /// `413`, a larger response streams through unstored.
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.max_body_size = bytes;
        self
    }

    /// How long a GET/HEAD request body may take to arrive whole
    /// ([`DEFAULT_BODY_TIMEOUT`]); later is `408`.
    pub fn body_timeout(mut self, limit: Duration) -> Self {
        self.body_timeout = limit;
        self
    }

    /// The budget every body held in memory shares, request bodies read
    /// whole and response bodies read to be stored (a budget of
    /// [`DEFAULT_BUFFER_BUDGET`] by default). Over it, a request body gets
    /// `503` with `Retry-After` and a response streams through unstored.
    /// Pass a clone to share one budget with other clients.
    pub fn buffer_budget(mut self, budget: impl Into<BufferBudget>) -> Self {
        self.budget = budget.into();
        self
    }

    /// The time limit of an upstream request ([`DEFAULT_TIMEOUT`]); past
    /// it the answer is `504`, or a stale one where the rules allow.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.client = self.client.timeout(limit);
        self
    }

    /// Changes any other option of the client behind the proxy: the cache
    /// name, retention, stale-if-error, the circuit breaker, TLS, ….
    pub fn client(
        mut self,
        configure: impl FnOnce(CachedClientBuilder) -> CachedClientBuilder,
    ) -> Self {
        self.client = configure(self.client);
        self
    }

    /// Builds the proxy over `backend` (see
    /// [`CachedClientBuilder::build`]).
    ///
    /// # Errors
    ///
    /// As [`CachedClientBuilder::build`]: a bad option or cache name, or a
    /// cache that cannot be opened when the degraded start is refused.
    pub async fn build(self, backend: Arc<dyn Backend>) -> Result<Proxy> {
        let (parts, client) = self.split();
        Ok(parts.finish(client.build(backend).await?))
    }

    /// Builds the proxy over the backend `connect` returns, connecting in
    /// the background while it cannot (see
    /// [`CachedClientBuilder::build_connecting`]): the proxy then passes
    /// requests to the upstream uncached until the cache opens.
    ///
    /// # Errors
    ///
    /// As [`CachedClientBuilder::build_connecting`].
    pub async fn build_connecting<F, Fut>(self, connect: F) -> Result<Proxy>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = respcache_core::Result<Arc<dyn Backend>>> + Send + 'static,
    {
        let (parts, client) = self.split();
        Ok(parts.finish(client.build_connecting(connect).await?))
    }

    /// The proxy's own parts, and the client builder with the options the
    /// proxy imposes.
    fn split(self) -> (Parts, CachedClientBuilder) {
        let client = self
            .client
            // Redirects are the client's to follow, not the proxy's.
            .follow_redirects(false)
            .max_body_size(self.max_body_size)
            .buffer_budget(self.budget.clone());
        let parts = Parts {
            upstream: self.upstream,
            max_body_size: self.max_body_size,
            body_timeout: self.body_timeout,
            budget: self.budget,
        };
        (parts, client)
    }
}

/// A [`ProxyBuilder`] without its client builder.
struct Parts {
    upstream: Upstream,
    max_body_size: usize,
    body_timeout: Duration,
    budget: BufferBudget,
}

impl Parts {
    fn finish(self, client: CachedClient) -> Proxy {
        Proxy {
            inner: Arc::new(Inner {
                client,
                upstream: self.upstream,
                max_body_size: self.max_body_size,
                body_timeout: self.body_timeout,
                budget: self.budget,
            }),
        }
    }
}
