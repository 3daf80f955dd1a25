//! [`CachedClient`]: the caching HTTP client programs call — the
//! [engine](crate::engine) over the built-in hyper client, with a request
//! builder, counters and maintenance calls.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use respcache_core::{Backend, Clock};
use tracing::Instrument as _;
use url::Url;

use crate::body::RequestStream;
use crate::builder::{CachedClientBuilder, Options};
use crate::engine::Engine;
use crate::error::Result;
use crate::line::{RedactedUrl, RequestLine};
use crate::precondition::Asks;
use crate::request::{Prepared, RequestBuilder};
use crate::response::CachedResponse;
use crate::stats::CacheStats;
use crate::status::{CacheOutcome, CacheStatus};
use crate::target::Target;
use crate::transport::Transport;

/// A caching HTTP client: the client programs call instead of a plain HTTP
/// client (the seed and DESIGN.md call it `CachedSession`; [`CachedSession`]
/// is an alias).
///
/// It asks the cache first; on a miss, a stale entry that needs
/// revalidation, or a refresh, it sends the request through a pooled hyper
/// client, decides by RFC 9111 and RFC 5861 whether and how long to keep
/// the answer, and stores it through the core [`Store`](respcache_core::Store)
/// contract, so it works on every backend.
///
/// Cheap to clone (an `Arc` inside); clones share the cache, the connection
/// pool and the counters.
///
/// # Concurrent identical requests
///
/// Requests that need the origin and are identical (same key, same headers)
/// while one of them is in flight wait for it and get the same answer: one
/// origin request and one write for all of them. A `stale-while-revalidate`
/// refresh runs once per key however many requests arrive.
///
/// # Errors and the cache
///
/// A failing cache never fails a request: cache errors are logged
/// (`tracing`, target `respcache_http`) and counted in
/// [`CacheStats::cache_errors`], and the request goes to the origin.
///
/// ```no_run
/// # async fn demo() -> respcache_http::Result<()> {
/// use std::{sync::Arc, time::Duration};
/// use respcache_core::MemoryBackend;
/// use respcache_http::CachedClient;
///
/// let client = CachedClient::builder()
///     .default_expiry(Duration::from_secs(300))
///     .build(Arc::new(MemoryBackend::new()))
///     .await?;
/// let first = client.get("https://httpbin.example/get").send().await?;
/// let again = client.get("https://httpbin.example/get").send().await?;
/// assert!(!first.from_cache() && again.from_cache());
/// assert_eq!(first.bytes(), again.bytes());
/// # Ok(()) }
/// ```
#[doc(alias = "CachedSession")]
#[derive(Clone)]
pub struct CachedClient {
    pub(crate) inner: Arc<Engine>,
}

/// The name the seed and DESIGN.md use.
pub type CachedSession = CachedClient;

impl fmt::Debug for CachedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedClient")
            .field("target", &self.inner.target)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// Records `cancelled` as a request's outcome if it ends before an answer.
struct Unfinished<'a>(Option<&'a tracing::Span>);

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if let Some(span) = self.0 {
            span.record("outcome", "cancelled");
        }
    }
}

impl CachedClient {
    /// A builder with every default.
    pub fn builder() -> CachedClientBuilder {
        CachedClientBuilder::new()
    }

    /// A client with every default over `backend`.
    ///
    /// # Errors
    ///
    /// As [`CachedClientBuilder::build`].
    pub async fn new(backend: Arc<dyn Backend>) -> Result<Self> {
        CachedClientBuilder::new().build(backend).await
    }

    pub(crate) fn from_parts(
        options: Options,
        target: Box<dyn Target>,
        transport: Transport,
        clock: Arc<dyn Clock>,
    ) -> Self {
        CachedClient {
            inner: Arc::new(Engine::new(options, target, transport, clock)),
        }
    }

    /// Whether requests of `method` go through the cache (their bodies are
    /// then part of the key); the others go straight to the origin.
    pub fn caches_method(&self, method: &Method) -> bool {
        self.inner.caches(method)
    }

    /// Starts a request of `method` to `url`.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        RequestBuilder::new(self.clone(), method, url)
    }

    /// Starts a GET request.
    pub fn get(&self, url: &str) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    /// Starts a HEAD request (answered from a stored GET when one is fresh).
    pub fn head(&self, url: &str) -> RequestBuilder {
        self.request(Method::HEAD, url)
    }

    /// Starts a POST request.
    pub fn post(&self, url: &str) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    /// Starts a PUT request.
    pub fn put(&self, url: &str) -> RequestBuilder {
        self.request(Method::PUT, url)
    }

    /// Starts a PATCH request.
    pub fn patch(&self, url: &str) -> RequestBuilder {
        self.request(Method::PATCH, url)
    }

    /// Starts a DELETE request.
    pub fn delete(&self, url: &str) -> RequestBuilder {
        self.request(Method::DELETE, url)
    }

    /// Sends an `http::Request` through the cache.
    ///
    /// # Errors
    ///
    /// As [`RequestBuilder::send`].
    pub async fn send(&self, request: http::Request<Bytes>) -> Result<CachedResponse> {
        let (parts, body) = request.into_parts();
        RequestBuilder::new(self.clone(), parts.method, &parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await
    }

    /// The counters since the client was built, the circuit breaker's
    /// state and whether the stores are open.
    pub fn stats(&self) -> CacheStats {
        let mut stats = self.inner.counters.snapshot();
        stats.breaker = self.inner.breaker.state();
        stats.breaker_opens = self.inner.breaker.opens();
        stats.store_state = self.inner.target.store_state().0;
        stats
    }

    /// Why the stores could not be opened, while they are not (see
    /// [`CachedClientBuilder::degraded_start`]); `None` once they are.
    pub fn store_error(&self) -> Option<String> {
        self.inner.target.store_state().1
    }

    /// How many origin requests are in flight with requests waiting on
    /// them, plus running background refreshes: the only per-key state the
    /// client keeps, released as each request ends.
    pub fn in_flight(&self) -> usize {
        self.inner.flights.in_flight() + self.inner.refreshing.len()
    }

    /// The clock the client reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Waits until every background refresh (`stale-while-revalidate`) has
    /// finished.
    pub async fn wait_background(&self) {
        self.inner.wait_background().await;
    }

    /// Removes the stored answers to GET and HEAD requests for `url` (as a
    /// successful POST, PUT, PATCH or DELETE to it does); returns how many
    /// entries were removed.
    ///
    /// # Errors
    ///
    /// [`InvalidUrl`](crate::ErrorKind::InvalidUrl) for a bad URL. Cache
    /// failures are logged and counted, not returned.
    pub async fn invalidate(&self, url: &str) -> Result<u64> {
        let url = crate::maintenance::parse(url)?;
        Ok(self.inner.invalidate_url(&url, &HeaderMap::new()).await)
    }

    pub(crate) fn redact(&self, url: &Url) -> Url {
        self.inner.options.rules.redact_url(url)
    }

    /// Makes `request` one whose answer's body may stream (see
    /// [`RequestBuilder::send_streaming`]); the time limit for each chunk
    /// of that body.
    pub(crate) fn streaming(&self, request: &mut Prepared) -> Option<Duration> {
        request.streaming = true;
        self.inner.transport.time_limit(request.per.timeout)
    }

    /// Takes a request through the engine, with its span, its counters and
    /// the client's own preconditions. The future owns the client: it is
    /// the whole of a `send()` future, with no wrapper around it.
    ///
    /// Not an `async fn`: an `async fn` keeps each argument twice in its
    /// future (the argument, and the local it is moved into), and this
    /// future is moved and polled on every hit; the block uses the captured
    /// `request` itself.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    pub(crate) fn execute(
        self,
        request: Box<Prepared>,
        stream: Option<RequestStream>,
    ) -> impl Future<Output = Result<CachedResponse>> + Send + 'static {
        async move {
            let inner = &self.inner;
            // Neither the line nor the redacted URL is written unless used
            // (by a cold path or a subscriber).
            let rules = &inner.options.rules;
            let line = RequestLine::new(rules, &request.method, &request.url);
            let span = tracing::info_span!(
                "respcache_http.request",
                method = %request.method,
                url = %RedactedUrl(rules, &request.url),
                outcome = tracing::field::Empty,
                status = tracing::field::Empty,
            );
            // Boxed and `None` for most requests: the hit future stays small.
            let asks = Asks::of(&request.method, &request.headers).map(Box::new);
            let mut unfinished = Unfinished(Some(&span));
            let mut out = inner
                .run(request, stream, &line)
                .instrument(span.clone())
                .await;
            unfinished.0 = None;
            if let (Some(asks), Ok(r)) = (asks, &mut out) {
                let whole = std::mem::replace(
                    r,
                    CachedResponse::new(
                        StatusCode::OK,
                        HeaderMap::new(),
                        None,
                        Bytes::new(),
                        CacheStatus::new(CacheOutcome::Hit),
                        Arc::clone(&inner.clock),
                    ),
                );
                *r = asks.apply(whole, inner.now());
            }
            match &out {
                Ok(r) => {
                    span.record("outcome", r.outcome().as_str());
                    span.record("status", r.status().as_u16());
                    inner.counters.record(r.outcome(), r.body.len());
                    tracing::debug!(parent: &span, cache_status = %r.cache_status(), "respcache-http: {line}");
                }
                Err(e) => {
                    span.record("outcome", "error");
                    inner.counters.record_error();
                    tracing::debug!(parent: &span, error = %e, "respcache-http: {line}");
                }
            }
            out
        }
    }
}
