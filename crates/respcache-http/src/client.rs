//! [`CachedClient`]: asks the cache first, otherwise the origin, applies the
//! HTTP caching rules and stores the answer through the core contract.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::header::{
    AGE, CONTENT_LOCATION, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, LOCATION,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use respcache_core::breaker::{CircuitBreaker, Transition};
use respcache_core::{
    Backend, BreakerState, Clock, DynStore, Entry, ErrorKind as CoreErrorKind, Key, Timestamp,
};
use tokio::sync::Notify;
use tracing::Instrument as _;
use url::Url;

use crate::body::{self, RequestStream, ResponseBody};
use crate::budget;
use crate::builder::{CacheMode, CachedClientBuilder, Options};
use crate::coalesce::{Coalescer, OnePerKey, Share};
use crate::directives::Directives;
use crate::error::{Error, Result};
use crate::freshness::{self, Decision, Lifetime, Rules, Stored};
use crate::line::{RedactedUrl, RequestLine};
use crate::meta::{
    BodyCheck, Head, MetaError, ResponseMeta, StoredHead, StoredMeta, VaryIndex, VaryMatch,
    header_list,
};
use crate::metrics::{self as m, NotStored};
use crate::normalize::{vary_digest, vary_names};
use crate::precondition::Asks;
use crate::request::{Prepared, RequestBuilder};
use crate::response::{CacheKey, CachedResponse, Tail};
use crate::rules::lifetime::{self, Freshness};
use crate::rules::storable::{self, Exchange, NotStorable};
use crate::rules::{age, conditional};
use crate::stats::{CacheStats, Counters};
use crate::status::{CacheOutcome, CacheStatus, Forward};
use crate::streaming::StreamingResponse;
use crate::target::{Slot, Target, digest_key};
use crate::transport::{BodyMode, OriginBody, OriginRequest, OriginResponse, Transport};

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
    inner: Arc<Inner>,
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

type Answer = Result<CachedResponse>;

impl Share for Answer {
    fn share(&self) -> Self {
        match self {
            Ok(r) => Ok(r.clone()),
            Err(e) => Err(e.duplicate()),
        }
    }
}

#[derive(Debug, Default)]
struct Background {
    active: AtomicUsize,
    idle: Notify,
}

struct BackgroundGuard(Arc<Inner>);

impl Drop for BackgroundGuard {
    fn drop(&mut self) {
        if self.0.background.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.background.idle.notify_waiters();
        }
    }
}

struct Inner {
    options: Options,
    target: Box<dyn Target>,
    transport: Transport,
    clock: Arc<dyn Clock>,
    counters: Counters,
    flights: Coalescer<Answer>,
    refreshing: Arc<OnePerKey>,
    background: Background,
    /// Skips the cache while its backend is down.
    breaker: CircuitBreaker,
}

/// A cache call failed (an error, not a miss), or was skipped: the request
/// makes no further cache calls.
#[derive(Clone, Copy, Debug)]
struct CacheFailed;

/// Records `cancelled` as a request's outcome if it ends before an answer.
struct Unfinished<'a>(Option<&'a tracing::Span>);

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if let Some(span) = self.0 {
            span.record("outcome", "cancelled");
        }
    }
}

/// A stored response found for a request.
#[derive(Clone)]
struct Found {
    /// The entry (its meta bytes hold the whole [`ResponseMeta`]).
    entry: Entry,
    /// What serving it needs, decoded.
    head: Head,
    /// Where it is stored (a variant key under `Vary`).
    key: Key,
    /// The final URL when it was found through a redirect pointer.
    via_redirect: Option<Url>,
}

/// What the cache holds for a request.
#[derive(Clone, Default)]
struct Read {
    found: Option<Found>,
    /// The vary index at the request's primary key, if any.
    index: Option<VaryIndex>,
    /// Something is stored for the URL, but not this variant.
    vary_miss: bool,
    /// A cache call failed or was skipped: no more cache calls for this
    /// request (no redirect lookup, no store).
    cache_failed: bool,
}

impl Read {
    fn failed() -> Self {
        Read {
            cache_failed: true,
            ..Read::default()
        }
    }
}

/// A storable answer: its directives and the freshness its origin gives it.
struct Verdict {
    directives: Directives,
    freshness: Freshness,
    /// How old it already was on arrival (RFC 9111 §4.2.3).
    initial_age: std::time::Duration,
}

// A short-lived local of the read path: boxing the head would cost a hit
// an allocation for nothing.
#[allow(clippy::large_enum_variant)]
enum Decoded {
    /// No meta: an entry written by a `Repository` directly.
    Raw,
    Meta(StoredHead),
    Undecodable,
}

/// Hop-by-hop headers and those a 304 must not change (RFC 9111 §3.2).
const NOT_UPDATED_BY_304: [&str; 10] = [
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "content-range",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
];

static NONCE: AtomicU64 = AtomicU64::new(0);

fn new_nonce(now: Timestamp) -> u64 {
    let n = NONCE.fetch_add(1, Ordering::Relaxed);
    let h = blake3::hash(&[now.as_millis().to_le_bytes(), n.to_le_bytes()].concat());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(b)
}

fn version_code(v: Version) -> u8 {
    match v {
        Version::HTTP_09 => 9,
        Version::HTTP_10 => 10,
        Version::HTTP_2 => 20,
        Version::HTTP_3 => 30,
        _ => 11,
    }
}

fn version_of(code: u8) -> Version {
    match code {
        9 => Version::HTTP_09,
        10 => Version::HTTP_10,
        20 => Version::HTTP_2,
        30 => Version::HTTP_3,
        _ => Version::HTTP_11,
    }
}

/// In streaming mode, the most of a storable body read into memory when
/// neither `max_body_size` nor the backend sets a limit; a larger body
/// streams on and is not stored.
pub const STREAMING_BUFFER_LIMIT: usize = 64 * 1024 * 1024;

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
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
        let breaker = CircuitBreaker::new(options.breaker);
        CachedClient {
            inner: Arc::new(Inner {
                breaker,
                options,
                target,
                transport,
                clock,
                counters: Counters::default(),
                flights: Coalescer::default(),
                refreshing: Arc::new(OnePerKey::default()),
                background: Background::default(),
            }),
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
        loop {
            let notified = self.inner.background.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.background.active.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
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
        let url = Url::parse(url)
            .map_err(|e| Error::new(crate::ErrorKind::InvalidUrl, format!("{url:?}: {e}")))?;
        Ok(self.inner.invalidate_url(&url, &HeaderMap::new()).await)
    }

    pub(crate) fn redact(&self, url: &Url) -> Url {
        self.inner.options.rules.redact_url(url)
    }

    /// Sends a request whose answer's body may stream: see
    /// [`RequestBuilder::send_streaming`].
    pub(crate) async fn execute_streaming(
        &self,
        mut request: Prepared,
        stream: Option<RequestStream>,
    ) -> Result<StreamingResponse> {
        request.streaming = true;
        let idle = self.inner.transport.time_limit(request.per.timeout);
        let mut head = self.execute(request, stream).await?;
        let prefix = std::mem::take(&mut head.body);
        let body = match head.tail.take() {
            Some(rest) => ResponseBody::streaming(prefix, rest, idle),
            None => ResponseBody::full(prefix),
        };
        head.tail = Tail::default();
        Ok(StreamingResponse::new(head, body))
    }

    pub(crate) async fn execute(
        &self,
        request: Prepared,
        stream: Option<RequestStream>,
    ) -> Result<CachedResponse> {
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

impl Inner {
    fn rules(&self) -> Rules {
        Rules {
            respect_cache_control: self.options.respect_cache_control,
            shared: self.options.shared,
            stale_while_revalidate: self.options.stale_while_revalidate,
            stale_if_error: self.options.stale_if_error,
            stale_when_unreachable: self.options.stale_when_unreachable,
        }
    }

    /// A response's directives: from the first valid targeted field the
    /// client obeys (RFC 9213, e.g. `CDN-Cache-Control`), else from
    /// `Cache-Control`.
    fn response_directives(&self, headers: &HeaderMap) -> Directives {
        let targeted = &self.options.targeted_cache_control;
        if !targeted.is_empty()
            && let Some(d) = crate::rules::targeted::directives(headers, targeted)
        {
            return d;
        }
        Directives::parse(headers)
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn cache_error(&self, op: &'static str, repository: &str, e: &respcache_core::Error) {
        let backend = self.target.backend_name();
        if e.kind() == CoreErrorKind::Unavailable {
            self.counters.cache_skipped.fetch_add(1, Ordering::Relaxed);
            m::cache_skipped(backend);
            tracing::debug!(
                backend,
                repository,
                operation = op,
                error = %e,
                "respcache-http: cache skipped; the request goes on without it"
            );
            return;
        }
        self.counters.cache_errors.fetch_add(1, Ordering::Relaxed);
        m::cache_error(backend, op);
        tracing::warn!(
            backend,
            repository,
            operation = op,
            error = %e,
            "respcache-http: cache operation failed; the request goes on without the cache"
        );
    }

    /// Makes one cache call through the circuit breaker and times it.
    async fn guarded<T>(
        &self,
        call: impl std::future::Future<Output = respcache_core::Result<T>>,
        timer: &metrics::Histogram,
    ) -> respcache_core::Result<T> {
        let started = Instant::now();
        // The deadline's timer is boxed: without one, a hit's future stays
        // as small as it was.
        let (out, transition) = match self.options.cache_timeout {
            None => self.breaker.call_reporting(call).await,
            Some(limit) => Box::pin(self.breaker.call_reporting(within(limit, call))).await,
        };
        if !matches!(&out, Err(e) if e.kind() == CoreErrorKind::Unavailable) {
            timer.record(started.elapsed());
        }
        if let Some(t) = transition {
            self.breaker_moved(t);
        }
        out
    }

    fn breaker_moved(&self, t: Transition) {
        let backend = self.target.backend_name();
        if t == Transition::Closed {
            tracing::info!(
                backend,
                "respcache-http: the cache answers again; circuit breaker closed"
            );
            m::breaker(backend, BreakerState::Closed);
        } else {
            tracing::warn!(
                backend,
                cool_down = ?self.breaker.config().cool_down,
                "respcache-http: circuit breaker opened; requests skip the cache until a probe succeeds"
            );
            m::breaker(backend, BreakerState::Open);
        }
    }

    async fn cache_get(
        &self,
        store: &Arc<DynStore>,
        key: &Key,
        repository: &str,
    ) -> std::result::Result<Option<Entry>, CacheFailed> {
        match self
            .guarded(store.get(key), &self.counters.metrics.store_get)
            .await
        {
            Ok(e) => Ok(e),
            Err(e) => {
                self.cache_error("get", repository, &e);
                Err(CacheFailed)
            }
        }
    }

    async fn cache_put(&self, store: &Arc<DynStore>, entry: Entry, repository: &str) -> bool {
        match self
            .guarded(store.put(entry), &self.counters.metrics.store_put)
            .await
        {
            Ok(()) => true,
            Err(e) => {
                self.cache_error("put", repository, &e);
                false
            }
        }
    }

    async fn cache_delete(&self, store: &Arc<DynStore>, key: &Key, repository: &str) -> bool {
        match self
            .guarded(store.delete(key), &self.counters.metrics.store_delete)
            .await
        {
            Ok(existed) => existed,
            Err(e) => {
                self.cache_error("delete", repository, &e);
                false
            }
        }
    }

    fn decode(&self, entry: &Entry, repository: &str) -> Decoded {
        let Some(bytes) = &entry.meta else {
            return Decoded::Raw;
        };
        match StoredHead::decode(bytes) {
            Ok(m) => Decoded::Meta(m),
            Err(e) => {
                self.undecodable(repository, &e);
                Decoded::Undecodable
            }
        }
    }

    fn undecodable(&self, repository: &str, e: &MetaError) {
        Counters::bump(&self.counters.undecodable);
        let err = respcache_core::Error::new(CoreErrorKind::Codec, format!("HTTP meta: {}", e.0));
        respcache_core::stats::record_undecodable(self.target.backend_name(), repository, &err);
    }

    /// The whole meta of a stored response (its policy included), for a
    /// `304`; `None`, counted as undecodable, when it does not decode.
    fn full_meta(&self, f: &Found, url: &Url, repository: &str) -> Option<ResponseMeta> {
        let Some(bytes) = &f.entry.meta else {
            return self.raw_meta(&f.entry, url);
        };
        match StoredMeta::decode(bytes) {
            Ok(StoredMeta::Response(m)) => Some(*m),
            Ok(StoredMeta::VaryIndex(_)) => {
                self.undecodable(
                    repository,
                    &MetaError("a vary index, not a response".into()),
                );
                None
            }
            Err(e) => {
                self.undecodable(repository, &e);
                None
            }
        }
    }

    /// A `ResponseMeta` for an entry a `Repository` wrote without one: a
    /// plain 200 with no headers, received when it was cached.
    fn raw_meta(&self, entry: &Entry, url: &Url) -> Option<ResponseMeta> {
        Some(ResponseMeta {
            status: 200,
            headers: Vec::new(),
            url: self.options.rules.redact_url(url).to_string(),
            method: "GET".to_owned(),
            response_time: entry.cached_at.as_millis(),
            initial_age: 0,
            body: None,
            vary: None,
            version: 11,
        })
    }

    /// The head of an entry a `Repository` wrote without meta: a plain 200
    /// with no headers, received when it was cached.
    fn raw_head(entry: &Entry) -> Head {
        Head {
            status: 200,
            version: 11,
            response_time: entry.cached_at.as_millis(),
            initial_age: 0,
            body: None,
            headers: HeaderMap::new(),
            vary: None,
        }
    }

    fn found(
        &self,
        entry: Entry,
        head: Head,
        key: Key,
        headers: &HeaderMap,
        repository: &str,
    ) -> Option<Found> {
        if let Some(v) = &head.vary
            && vary_digest(&v.names, headers) != v.digest
        {
            return None;
        }
        if let Some(check) = &head.body
            && !check.matches(&entry.payload)
        {
            // The payload is not the body this meta was written for
            // (replaced or damaged): a counted miss, never served.
            self.undecodable(
                repository,
                &MetaError("the stored body does not match its length and checksum".into()),
            );
            return None;
        }
        Some(Found {
            entry,
            head,
            key,
            via_redirect: None,
        })
    }

    async fn read_slot(&self, slot: &Slot, url: &Url, headers: &HeaderMap) -> Read {
        let repo = &*slot.repository;
        let entry = match self.cache_get(&slot.store, &slot.key, repo).await {
            Ok(Some(entry)) => entry,
            Ok(None) => return Read::default(),
            Err(CacheFailed) => return Read::failed(),
        };
        match self.decode(&entry, repo) {
            Decoded::Undecodable => Read::default(),
            Decoded::Raw => {
                let now = self.now();
                // As before the head was built without a policy: served
                // only when the URL is one a policy can be made for.
                let found = if entry.is_fresh(now) && url.as_str().parse::<http::Uri>().is_ok() {
                    let head = Self::raw_head(&entry);
                    self.found(entry, head, slot.key.clone(), headers, repo)
                } else {
                    None
                };
                Read {
                    found,
                    ..Read::default()
                }
            }
            Decoded::Meta(StoredHead::Response(head)) => {
                let found = self.found(entry, head, slot.key.clone(), headers, repo);
                Read {
                    vary_miss: found.is_none(),
                    found,
                    ..Read::default()
                }
            }
            Decoded::Meta(StoredHead::VaryIndex(index)) => {
                let vkey =
                    self.target
                        .variant_key(slot, index.nonce, &vary_digest(&index.names, headers));
                let variant = self.cache_get(&slot.store, &vkey, repo).await;
                let found = match &variant {
                    Ok(Some(variant)) => match self.decode(variant, repo) {
                        Decoded::Meta(StoredHead::Response(head)) => {
                            self.found(variant.clone(), head, vkey, headers, repo)
                        }
                        _ => None,
                    },
                    _ => None,
                };
                Read {
                    vary_miss: found.is_none(),
                    found,
                    index: Some(index),
                    cache_failed: variant.is_err(),
                }
            }
        }
    }

    /// What the cache holds for a request: its own slot, else the slot of
    /// the final URL its redirect pointer names.
    async fn lookup(&self, slot: &Slot, method: &Method, digest: &str, req: &Prepared) -> Read {
        let read = self.read_slot(slot, &req.url, &req.headers).await;
        if read.found.is_some() || read.cache_failed {
            return read;
        }
        // Boxed: a hit does not carry the redirect lookup in its future.
        Box::pin(self.lookup_redirect(read, method, digest, req)).await
    }

    /// The redirect half of [`lookup`](Self::lookup): the slot of the final
    /// URL the request's redirect pointer names, else `read` unchanged.
    async fn lookup_redirect(
        &self,
        read: Read,
        method: &Method,
        digest: &str,
        req: &Prepared,
    ) -> Read {
        let pointer_key = digest_key(method, digest);
        let pointer = match self
            .cache_get(
                self.target.redirects(),
                &pointer_key,
                crate::target::REDIRECTS_REPOSITORY,
            )
            .await
        {
            Ok(Some(pointer)) => pointer,
            Ok(None) => return read,
            Err(CacheFailed) => {
                return Read {
                    cache_failed: true,
                    ..read
                };
            }
        };
        let Some(final_url) = std::str::from_utf8(&pointer.payload)
            .ok()
            .and_then(|s| Url::parse(s).ok())
        else {
            return read;
        };
        let rules = &self.options.rules;
        let final_digest = rules.digest(method, &final_url, b"", &req.headers);
        let normalized = rules.normalize_url(&final_url);
        let Some(final_slot) = self
            .target
            .slot(method, &normalized, &final_digest, &req.headers)
        else {
            return read;
        };
        let mut via = self.read_slot(&final_slot, &final_url, &req.headers).await;
        match via.found.as_mut() {
            Some(f) => {
                f.via_redirect = Some(final_url);
                via.index = read.index;
                via
            }
            None => Read {
                cache_failed: via.cache_failed,
                ..read
            },
        }
    }

    /// A response built from a stored one (taken whole: a hit clones
    /// nothing), `url` the request's.
    fn stored_response(
        &self,
        f: Found,
        url: Url,
        method: &Method,
        outcome: CacheOutcome,
    ) -> CachedResponse {
        let now = self.now();
        let status = f.head.status_code();
        let Found {
            entry,
            head,
            key,
            via_redirect,
        } = f;
        let current_age = head.age(now);
        let mut headers = head.headers;
        headers.insert(AGE, HeaderValue::from(age::to_header(current_age)));
        let url = Some(via_redirect.unwrap_or(url));
        let body = if *method == Method::HEAD {
            Bytes::new()
        } else {
            entry.payload
        };
        let ttl = entry.expires_at.map(|e| {
            e.as_millis()
                .saturating_sub(now.as_millis())
                .div_euclid(1000)
        });
        let cache_status = CacheStatus::new(outcome).with_ttl(ttl);
        let mut r = CachedResponse::new(
            status,
            headers,
            url,
            body,
            cache_status,
            Arc::clone(&self.clock),
        );
        r.version = version_of(head.version);
        r.from_cache = true;
        r.created_at = Some(entry.cached_at);
        r.expires_at = entry.expires_at;
        r.cache_key = CacheKey::new(key);
        r
    }

    fn stored_view<'a>(&self, f: &Found, directives: &'a Directives) -> Stored<'a> {
        let now = self.now();
        let age = if self.options.respect_cache_control {
            f.head.age(now)
        } else {
            now.duration_since(f.entry.cached_at)
        };
        Stored {
            expires_at: f.entry.expires_at,
            age,
            directives,
        }
    }

    /// Whether requests of `method` go through the cache (a HEAD through
    /// the GET it is answered from).
    fn caches(&self, method: &Method) -> bool {
        let o = &self.options;
        let lookup = if *method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        o.mode != CacheMode::Disabled
            && o.allowed_methods.contains(method)
            && o.allowed_methods.contains(lookup)
    }

    /// The most of a body read into memory to store it.
    fn store_limit(&self) -> Option<usize> {
        match (self.options.max_body_size, self.target.max_payload()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn body_mode(req: &Prepared) -> BodyMode {
        if req.streaming {
            BodyMode::Unread
        } else {
            BodyMode::Whole
        }
    }

    async fn run(
        self: &Arc<Self>,
        mut req: Prepared,
        stream: Option<RequestStream>,
        line: &RequestLine<'_>,
    ) -> Answer {
        let o = &self.options;
        let is_head = req.method == Method::HEAD;
        let lookup_method = if is_head {
            Method::GET
        } else {
            req.method.clone()
        };
        if !self.caches(&req.method) {
            return Box::pin(self.bypass(req, stream, line.text())).await;
        }
        // The body of a request the cache may answer is part of its key:
        // it is read whole, up to the size limit; a larger one goes past
        // the cache, streaming on from what was read.
        if let Some(stream) = stream {
            let limit = o.max_body_size.unwrap_or(STREAMING_BUFFER_LIMIT);
            let idle = self.transport.time_limit(req.per.timeout);
            let read = Box::pin(body::read_up_to(stream, limit, idle))
                .await
                .map_err(|e| {
                    let kind = match e.kind() {
                        crate::ErrorKind::Timeout => crate::ErrorKind::Timeout,
                        _ => crate::ErrorKind::InvalidRequest,
                    };
                    Error::new(kind, format!("the request body: {}", e.message()))
                        .with_url(line.text())
                })?;
            match read {
                body::Read::Whole(bytes) => req.body = bytes,
                body::Read::Partial(prefix, rest) => {
                    let stream = Some(body::prefixed(prefix, rest));
                    return Box::pin(self.bypass(req, stream, line.text())).await;
                }
            }
        }
        let body_for_key: &[u8] = if is_head { b"" } else { &req.body };
        let normalized = o.rules.normalize_url(&req.url);
        let digest =
            o.rules
                .digest_normalized(&lookup_method, &normalized, body_for_key, &req.headers);
        let Some(slot) = self
            .target
            .slot(&lookup_method, &normalized, &digest, &req.headers)
        else {
            return Box::pin(self.bypass(req, None, line.text())).await;
        };
        let req_cc = if o.respect_cache_control {
            Directives::parse(&req.headers)
        } else {
            Directives::default()
        };
        let only_if_cached = req.per.only_if_cached || req_cc.only_if_cached;
        let mut read = if req.per.force_refresh {
            Read::default()
        } else {
            self.lookup(&slot, &lookup_method, &digest, &req).await
        };
        // Only requests that go to the origin need it: computed lazily.
        let coalesce_key = || {
            format!(
                "{}|{}|{}",
                req.method,
                slot.key.encode(),
                o.rules.headers_digest(&req.headers)
            )
        };
        let decision = read.found.as_ref().map(|f| {
            let directives = self.response_directives(&f.head.headers);
            let stored = self.stored_view(f, &directives);
            freshness::decide(stored, &req_cc, req.per.refresh, self.rules(), self.now())
        });
        // `decision` is `Some` exactly when a stored response was found.
        match decision {
            Some(d @ (Decision::Fresh | Decision::StaleAllowed)) => {
                let outcome = if d == Decision::Fresh {
                    CacheOutcome::Hit
                } else {
                    CacheOutcome::StaleHit
                };
                if let Some(f) = read.found.take() {
                    // Nothing reads the stored response after this: it is
                    // taken, not cloned.
                    return Ok(self.stored_response(f, req.url, &req.method, outcome));
                }
            }
            Some(Decision::StaleWhileRevalidate) => {
                if let Some(f) = &read.found {
                    let answer = self.stored_response(
                        f.clone(),
                        req.url.clone(),
                        &req.method,
                        CacheOutcome::StaleWhileRevalidate,
                    );
                    if !only_if_cached && !is_head {
                        self.spawn_refresh(&req, &slot, &read, &coalesce_key(), line.text());
                    }
                    return Ok(answer);
                }
            }
            Some(Decision::Revalidate) | None => {}
        }
        if only_if_cached {
            let status = CacheStatus::new(CacheOutcome::OnlyIfCachedMiss);
            let mut r = CachedResponse::new(
                StatusCode::GATEWAY_TIMEOUT,
                HeaderMap::new(),
                Some(req.url.clone()),
                Bytes::new(),
                status,
                Arc::clone(&self.clock),
            );
            r.cache_key = CacheKey::new(slot.key.clone());
            return Ok(r);
        }
        // The origin paths are boxed: a hit moves and polls a small future.
        let (answer, leader) = Box::pin(self.flights.run(&coalesce_key(), || {
            self.fetch(&req, &slot, &read, &req_cc, line.text())
        }))
        .await;
        if leader {
            answer
        } else if answer.as_ref().is_ok_and(|r| r.tail.is_streaming()) {
            // The leader's answer streams to the leader alone: ask again.
            Box::pin(self.fetch(&req, &slot, &read, &req_cc, line.text())).await
        } else {
            answer.map(|mut r| {
                r.from_cache = true;
                let mut status = CacheStatus::new(CacheOutcome::Coalesced);
                if let Some(fwd) = r.cache_status.forward() {
                    status = status.with_forward(fwd);
                }
                r.cache_status = status;
                r
            })
        }
    }

    fn spawn_refresh(
        self: &Arc<Self>,
        req: &Prepared,
        slot: &Slot,
        read: &Read,
        key: &str,
        line: &str,
    ) {
        let Some(claim) = self.refreshing.claim(key) else {
            return;
        };
        Counters::bump(&self.counters.background_refreshes);
        self.background.active.fetch_add(1, Ordering::AcqRel);
        let guard = BackgroundGuard(Arc::clone(self));
        let this = Arc::clone(self);
        let (mut req, slot, read, key, line) = (
            req.clone(),
            slot.clone(),
            read.clone(),
            key.to_owned(),
            line.to_owned(),
        );
        req.per.refresh = false;
        let span = tracing::info_span!("respcache_http.background_refresh", url = %self.options.rules.redact_url(&req.url));
        tokio::spawn(
            async move {
                // Dropped in reverse order: the claim before the guard, so a
                // caller of `wait_background` sees no claim left.
                let _guard = guard;
                let _claim = claim;
                let req_cc = Directives::default();
                let (answer, _) = this
                    .flights
                    .run(&key, || this.fetch(&req, &slot, &read, &req_cc, &line))
                    .await;
                match answer {
                    Ok(r) => tracing::debug!(cache_status = %r.cache_status(), "respcache-http: background refresh done"),
                    Err(e) => tracing::debug!(error = %e, "respcache-http: background refresh failed"),
                }
            }
            .instrument(span),
        );
    }

    async fn bypass(
        self: &Arc<Self>,
        req: Prepared,
        stream: Option<RequestStream>,
        line: &str,
    ) -> Answer {
        let origin = req.origin_request();
        let started = Instant::now();
        let resp = self
            .transport
            .send(origin, stream, line, Self::body_mode(&req))
            .await;
        self.count_hops(&resp, started);
        let resp = resp?;
        if is_unsafe(&req.method) {
            self.invalidate_after(&req, &resp).await;
        }
        let status = CacheStatus::new(CacheOutcome::Bypass)
            .with_forward(Forward::Bypass)
            .with_forward_status(resp.status.as_u16());
        Ok(self.network_response(resp, status))
    }

    fn network_response(&self, resp: OriginResponse, status: CacheStatus) -> CachedResponse {
        let (body, tail) = match resp.body {
            OriginBody::Whole(b) => (b, Tail::default()),
            OriginBody::Unread(rest) => (Bytes::new(), Tail::new(rest)),
            OriginBody::Partial(prefix, rest) => (prefix, Tail::new(rest)),
        };
        let mut r = CachedResponse::new(
            resp.status,
            resp.headers,
            Some(resp.url),
            body,
            status,
            Arc::clone(&self.clock),
        );
        r.version = resp.version;
        r.tail = tail;
        r
    }

    async fn send_origin(
        &self,
        origin: OriginRequest,
        line: &str,
        mode: BodyMode,
    ) -> Result<OriginResponse> {
        let started = Instant::now();
        let out = self.transport.send(origin, None, line, mode).await;
        self.count_hops(&out, started);
        out
    }

    /// Counts the origin requests an answer took, and its time.
    fn count_hops(&self, out: &Result<OriginResponse>, started: Instant) {
        self.counters.metrics.origin.record(started.elapsed());
        let hops = out.as_ref().map_or(1, |r| r.hops);
        self.counters.origin_requests.add(hops);
    }

    /// Goes to the origin (conditionally when a stored response has
    /// validators) and turns the answer into a response, storing it when the
    /// rules allow.
    async fn fetch(
        self: &Arc<Self>,
        req: &Prepared,
        slot: &Slot,
        read: &Read,
        req_cc: &Directives,
        line: &str,
    ) -> Answer {
        let is_head = req.method == Method::HEAD;
        let found = read.found.as_ref().filter(|_| !is_head);
        let forward = if req.per.force_refresh || req.per.refresh || req_cc.no_cache {
            Forward::Request
        } else if read.found.is_some() {
            Forward::Stale
        } else if read.vary_miss {
            Forward::VaryMiss
        } else {
            Forward::UriMiss
        };
        let mut origin = req.origin_request();
        let mut conditional = false;
        if let Some(f) = found {
            // The cache revalidates its own stored response with its own
            // validators; a client's preconditions are then answered from
            // the result (RFC 9111 §4.3.1–4.3.2).
            origin.headers.remove(IF_NONE_MATCH);
            origin.headers.remove(IF_MODIFIED_SINCE);
            let etags: Vec<HeaderValue> = f.head.headers.get_all(ETAG).iter().cloned().collect();
            for etag in etags {
                origin.headers.append(IF_NONE_MATCH, etag);
                conditional = true;
            }
            if let Some(lm) = f.head.headers.get(LAST_MODIFIED) {
                origin.headers.insert(IF_MODIFIED_SINCE, lm.clone());
                conditional = true;
            }
        }
        let result = self.send_origin(origin, line, Self::body_mode(req)).await;
        let now = self.now();
        let stale_fallback = |status: Option<u16>, unreachable: bool| -> Option<CachedResponse> {
            let f = found?;
            let directives = self.response_directives(&f.head.headers);
            let stored = self.stored_view(f, &directives);
            if !freshness::stale_if_error_allows(stored, req_cc, self.rules(), unreachable, now) {
                return None;
            }
            let mut r = self.stored_response(
                f.clone(),
                req.url.clone(),
                &req.method,
                CacheOutcome::StaleIfError,
            );
            let mut st = r.cache_status.with_forward(forward);
            if let Some(s) = status {
                st = st.with_forward_status(s);
            }
            r.cache_status = st;
            Some(r)
        };
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                let unreachable = matches!(
                    e.kind(),
                    crate::ErrorKind::Connection | crate::ErrorKind::Timeout
                );
                if let Some(r) = stale_fallback(None, unreachable) {
                    tracing::info!(error = %e, "respcache-http: origin failed; serving a stale response (stale-if-error)");
                    return Ok(r);
                }
                return Err(e);
            }
        };
        if resp.status.is_server_error()
            && let Some(r) = stale_fallback(Some(resp.status.as_u16()), false)
        {
            tracing::info!(
                status = resp.status.as_u16(),
                "respcache-http: origin answered 5xx; serving a stale response (stale-if-error)"
            );
            return Ok(r);
        }
        if resp.status == StatusCode::NOT_MODIFIED
            && conditional
            && let Some(f) = found
        {
            return self.freshen(f, resp, req, slot, read, forward, line).await;
        }
        // A storable body is read in `complete` when streaming: a body that
        // fails there is the origin failing, as when `send()` reads it.
        match self.complete(req, slot, read, resp, forward, line).await {
            Err(e) => match stale_fallback(None, false) {
                Some(r) => {
                    tracing::info!(error = %e, "respcache-http: origin failed; serving a stale response (stale-if-error)");
                    Ok(r)
                }
                None => Err(e),
            },
            ok => ok,
        }
    }

    /// A 304 for a stored response: check that it selects the stored
    /// response, merge the new headers, recompute the expiry, and update the
    /// entry's meta and expiry in place (`Store::set_meta`; the body is not
    /// sent again), storing it whole if it vanished meanwhile.
    #[allow(clippy::too_many_arguments)]
    async fn freshen(
        self: &Arc<Self>,
        f: &Found,
        resp: OriginResponse,
        req: &Prepared,
        slot: &Slot,
        read: &Read,
        forward: Forward,
        line: &str,
    ) -> Answer {
        let o = &self.options;
        let now = self.now();
        // Meta that does not decode whole (counted) is a stored response to
        // ask for again.
        let found_at = f.via_redirect.as_ref().unwrap_or(&req.url);
        let Some(old) = self.full_meta(f, found_at, &slot.repository) else {
            return self.refetch(req, slot, read, forward, line).await;
        };
        // RFC 9111 §4.3.4: a 304 whose validators do not select the stored
        // response cannot freshen it: ask again without conditions.
        if !conditional::selects(&f.head.headers, &resp.headers) {
            return self.refetch(req, slot, read, forward, line).await;
        }
        let merged = merge_304(&old.headers, &resp.headers, o);
        let merged_map = ResponseMeta {
            headers: merged.clone(),
            ..old.clone()
        }
        .header_map();
        let directives = self.response_directives(&merged_map);
        let url = f.via_redirect.clone().unwrap_or_else(|| req.url.clone());
        let origin = lifetime::freshness(
            old.status_code(),
            &merged_map,
            &directives,
            o.shared,
            now,
            o.heuristic_fraction,
        );
        // The age counts afresh from the 304 (its own `Date` and `Age`).
        let initial_age = age::initial(&resp.headers, now, now);
        let expires_at = freshness::expires_at(
            self.lifetime(req, slot, &url),
            o.respect_cache_control,
            &directives,
            origin,
            std::time::Duration::from_secs(initial_age),
            now,
        );
        let meta = ResponseMeta {
            headers: merged,
            response_time: now.as_millis(),
            initial_age,
            ..old
        };
        let mut stored = false;
        if o.mode == CacheMode::ReadWrite
            && let Some(bytes) = StoredMeta::Response(Box::new(meta.clone())).encode().ok()
        {
            let entry = Entry {
                key: f.key.clone(),
                name: f.entry.name.clone(),
                cached_at: f.entry.cached_at,
                expires_at,
                payload: f.entry.payload.clone(),
                meta: Some(bytes),
            };
            let store_slot = if f.via_redirect.is_some() {
                self.slot_for(&req.method, &url, &req.headers)
                    .unwrap_or_else(|| slot.clone())
            } else {
                slot.clone()
            };
            // A 304 changes headers and expiry only: update those in place
            // (the body is not sent again); if the entry vanished meanwhile,
            // store it whole.
            let set_meta =
                store_slot
                    .store
                    .set_meta(&entry.key, entry.meta.clone(), entry.expires_at);
            stored = match self
                .guarded(set_meta, &self.counters.metrics.store_put)
                .await
            {
                Ok(true) => true,
                Ok(false) => {
                    self.cache_put(&store_slot.store, entry, &store_slot.repository)
                        .await
                }
                Err(e) => {
                    self.cache_error("put", &store_slot.repository, &e);
                    false
                }
            };
            if stored {
                Counters::bump(&self.counters.stored);
            }
        }
        let fresh = Found {
            entry: Entry {
                expires_at,
                ..f.entry.clone()
            },
            head: Head::of(&meta),
            key: f.key.clone(),
            via_redirect: f.via_redirect.clone(),
        };
        let mut r = self.stored_response(
            fresh,
            req.url.clone(),
            &req.method,
            CacheOutcome::Revalidated,
        );
        r.revalidated = true;
        r.cache_status = r
            .cache_status
            .with_forward(forward)
            .with_forward_status(304)
            .with_stored(stored);
        Ok(r)
    }

    /// Asks the origin again without conditions, and completes with the
    /// answer (after a `304` that cannot freshen the stored response).
    async fn refetch(
        self: &Arc<Self>,
        req: &Prepared,
        slot: &Slot,
        read: &Read,
        forward: Forward,
        line: &str,
    ) -> Answer {
        let origin = req.origin_request();
        let full = self.send_origin(origin, line, Self::body_mode(req)).await?;
        self.complete(req, slot, read, full, forward, line).await
    }

    fn slot_for(&self, method: &Method, url: &Url, headers: &HeaderMap) -> Option<Slot> {
        let rules = &self.options.rules;
        let digest = rules.digest(method, url, b"", headers);
        self.target
            .slot(method, &rules.normalize_url(url), &digest, headers)
    }

    fn lifetime(&self, req: &Prepared, slot: &Slot, url: &Url) -> Lifetime {
        Lifetime {
            request: req.per.expiry,
            url: self
                .options
                .url_expiry(url)
                .or_else(|| self.target.repository_expiry(slot)),
            default: self.options.default_expiry,
        }
    }

    /// A full answer from the origin: invalidate after unsafe methods,
    /// store when the rules allow, and build the response.
    async fn complete(
        self: &Arc<Self>,
        req: &Prepared,
        slot: &Slot,
        read: &Read,
        mut resp: OriginResponse,
        forward: Forward,
        line: &str,
    ) -> Answer {
        if is_unsafe(&req.method) {
            self.invalidate_after(req, &resp).await;
        }
        // Streaming: a body the cache would keep and could serve again is
        // read into memory, up to the store limit; any other body streams
        // from its first byte.
        if matches!(resp.body, OriginBody::Unread(_)) {
            let limit = self.store_limit().unwrap_or(STREAMING_BUFFER_LIMIT);
            let length = content_length(&resp.headers);
            if self.worth_buffering(req, slot, &resp, limit)
                && let Some(held) =
                    budget::for_body(self.options.buffer_budget.as_ref(), length, limit)
                && let OriginBody::Unread(rest) =
                    std::mem::replace(&mut resp.body, OriginBody::Whole(Bytes::new()))
            {
                let idle = self.transport.time_limit(req.per.timeout);
                resp.body = match body::read_up_to(rest, limit, idle)
                    .await
                    .map_err(|e| e.with_url(line))?
                {
                    body::Read::Whole(b) => OriginBody::Whole(held.attach(b)),
                    body::Read::Partial(prefix, rest) => {
                        OriginBody::Partial(held.attach(prefix), rest)
                    }
                };
            }
        }
        let fwd_status = resp.status.as_u16();
        let status = CacheStatus::new(CacheOutcome::Miss)
            .with_forward(forward)
            .with_forward_status(fwd_status);
        let final_method = resp.method.clone();
        let mut r = self.network_response(resp, status);
        r.cache_key = CacheKey::new(slot.key.clone());
        if req.method == Method::HEAD
            || final_method != req.method
            || self.options.mode != CacheMode::ReadWrite
            || r.tail.is_streaming()
        {
            if r.tail.is_streaming() && self.options.mode == CacheMode::ReadWrite {
                self.not_stored::<()>(NotStored::Streamed);
            }
            return Ok(r);
        }
        if let Some((key, expires_at)) = self.store(req, slot, read, &r).await {
            r.created_at = Some(self.now());
            r.expires_at = expires_at;
            r.cache_key = CacheKey::new(key);
            r.cache_status = r.cache_status.with_stored(true);
        }
        Ok(r)
    }

    /// Whether a streaming request should read an answer's body whole
    /// before handing the head on, judged by the head alone: the rules let
    /// the cache store it (what `store` checks first; the body is judged
    /// again once read), and a stored copy could be served again — fresh
    /// for a while, revalidatable, or usable stale. An answer stale at once
    /// with nothing to revalidate with (`no-cache` alone, no cache headers
    /// at all) and event streams pass on at once instead.
    fn worth_buffering(
        &self,
        req: &Prepared,
        slot: &Slot,
        resp: &OriginResponse,
        limit: usize,
    ) -> bool {
        let o = &self.options;
        let event_stream = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
            });
        if event_stream
            || req.method == Method::HEAD
            || resp.method != req.method
            || o.mode != CacheMode::ReadWrite
            || content_length(&resp.headers).is_some_and(|n| n > limit as u64)
            || vary_names(&resp.headers).is_none()
        {
            return false;
        }
        let now = self.now();
        let Ok(verdict) = self.storability(req, resp.status, &resp.headers, now) else {
            return false;
        };
        let directives = verdict.directives;
        let expires_at = freshness::expires_at(
            self.lifetime(req, slot, &resp.url),
            o.respect_cache_control,
            &directives,
            verdict.freshness,
            verdict.initial_age,
            now,
        );
        let fresh = expires_at.is_none_or(|e| e > now);
        let validators =
            resp.headers.contains_key(ETAG) || resp.headers.contains_key(LAST_MODIFIED);
        let usable_stale = directives.stale_if_error.is_some()
            || directives.stale_while_revalidate.is_some()
            || o.stale_if_error.is_some()
            || o.stale_while_revalidate.is_some();
        fresh || validators || usable_stale
    }

    /// Whether an answer may be stored (RFC 9111 §3 and the client's
    /// options) and, if so, how fresh the origin says it is.
    ///
    /// With `Cache-Control` respected, a response with explicit freshness
    /// is judged by the HTTP rules alone, whatever its status; one whose
    /// lifetime would come from this client (default, per-URL or
    /// per-request expiry) or from the heuristic is stored only when its
    /// status is in `allowed_codes`. Without it, only `allowed_codes`
    /// count.
    fn storability(
        &self,
        req: &Prepared,
        status: StatusCode,
        headers: &HeaderMap,
        now: Timestamp,
    ) -> std::result::Result<Verdict, NotStorable> {
        let o = &self.options;
        let allowed_by_user = o.allowed_codes.contains(&status.as_u16());
        if !o.respect_cache_control {
            if !allowed_by_user {
                return Err(NotStorable::Status);
            }
            return Ok(Verdict {
                directives: Directives::default(),
                freshness: Freshness::Heuristic(std::time::Duration::ZERO),
                initial_age: std::time::Duration::ZERO,
            });
        }
        let directives = self.response_directives(headers);
        let req_cc = Directives::parse(&req.headers);
        let explicit = lifetime::has_explicit(headers, &directives, o.shared);
        storable::check(Exchange {
            status,
            response: &directives,
            request: &req_cc,
            request_headers: &req.headers,
            explicit,
            allowed_by_user,
            shared: o.shared,
        })?;
        if !explicit && !allowed_by_user {
            return Err(NotStorable::NoFreshness);
        }
        let freshness = lifetime::freshness(
            status,
            headers,
            &directives,
            o.shared,
            now,
            o.heuristic_fraction,
        );
        Ok(Verdict {
            directives,
            freshness,
            initial_age: std::time::Duration::from_secs(age::initial(headers, now, now)),
        })
    }

    /// Stores `r` when the rules allow; returns where and until when.
    async fn store(
        &self,
        req: &Prepared,
        slot: &Slot,
        read: &Read,
        r: &CachedResponse,
    ) -> Option<(Key, Option<Timestamp>)> {
        let o = &self.options;
        if read.cache_failed {
            return self.not_stored(NotStored::CacheUnavailable);
        }
        if let Some(limit) = self.store_limit()
            && r.body.len() > limit
        {
            tracing::debug!(
                len = r.body.len(),
                limit,
                "respcache-http: body over the size limit; not stored"
            );
            return self.not_stored(NotStored::TooLarge);
        }
        let Some(names) = vary_names(&r.headers) else {
            return self.not_stored(NotStored::VaryStar);
        };
        let final_url = r.url.clone().unwrap_or_else(|| req.url.clone());
        let now = self.now();
        let redacted_url = o.rules.redact_url(&final_url);
        let stored_headers = o.rules.redact_headers(&r.headers);
        let verdict = match self.storability(req, r.status, &r.headers, now) {
            Ok(v) => v,
            Err(why) => {
                tracing::debug!(reason = why.as_str(), "respcache-http: not stored");
                return self.not_stored(NotStored::from(why));
            }
        };
        if let Some(filter) = &o.filter
            && !filter(r)
        {
            return self.not_stored(NotStored::Filter);
        }
        let redirected = o.rules.normalize_url(&final_url) != o.rules.normalize_url(&req.url);
        let store_slot = if redirected {
            self.slot_for(&req.method, &final_url, &req.headers)
                .unwrap_or_else(|| slot.clone())
        } else {
            slot.clone()
        };
        let name = match self.target.payload_name(&store_slot, &r.body) {
            Ok(n) => n,
            Err(why) => {
                tracing::debug!(reason = %why, "respcache-http: not stored");
                return self.not_stored(NotStored::Codec);
            }
        };
        let expires_at = freshness::expires_at(
            self.lifetime(req, &store_slot, &final_url),
            o.respect_cache_control,
            &verdict.directives,
            verdict.freshness,
            verdict.initial_age,
            now,
        );
        let vary = (!names.is_empty()).then(|| VaryMatch {
            digest: vary_digest(&names, &req.headers),
            names: names.clone(),
        });
        let meta = ResponseMeta {
            status: r.status.as_u16(),
            headers: header_list(&stored_headers),
            url: redacted_url.to_string(),
            method: req.method.to_string(),
            response_time: now.as_millis(),
            initial_age: verdict.initial_age.as_secs(),
            body: Some(BodyCheck::of(&r.body)),
            vary: vary.clone(),
            version: version_code(r.version),
        };
        let meta_bytes = StoredMeta::Response(Box::new(meta)).encode().ok()?;
        let repo = store_slot.repository.clone();
        let key = match &vary {
            Some(v) if store_slot.variants => {
                let reuse = read
                    .index
                    .as_ref()
                    .filter(|ix| !redirected && ix.names == v.names)
                    .map(|ix| ix.nonce);
                let nonce = match reuse {
                    Some(n) => n,
                    None => {
                        let index = VaryIndex {
                            names: v.names.clone(),
                            nonce: new_nonce(now),
                        };
                        let bytes = StoredMeta::VaryIndex(index.clone()).encode().ok()?;
                        let entry =
                            Entry::new(store_slot.key.clone(), now, Bytes::new()).with_meta(bytes);
                        if !self.cache_put(&store_slot.store, entry, &repo).await {
                            return self.not_stored(NotStored::CacheUnavailable);
                        }
                        index.nonce
                    }
                };
                self.target.variant_key(&store_slot, nonce, &v.digest)
            }
            _ => store_slot.key.clone(),
        };
        let entry = Entry {
            key: key.clone(),
            name,
            cached_at: now,
            expires_at,
            payload: r.body.clone(),
            meta: Some(meta_bytes),
        };
        if !self.cache_put(&store_slot.store, entry, &repo).await {
            return self.not_stored(NotStored::CacheUnavailable);
        }
        Counters::bump(&self.counters.stored);
        if redirected {
            let digest = o
                .rules
                .digest(&req.method, &req.url, &req.body, &req.headers);
            let pointer = Entry::new(
                digest_key(&req.method, &digest),
                now,
                Bytes::from(redacted_url.to_string()),
            )
            .with_expires_at(expires_at);
            self.cache_put(
                self.target.redirects(),
                pointer,
                crate::target::REDIRECTS_REPOSITORY,
            )
            .await;
        }
        Some((key, expires_at))
    }

    /// Counts an answer the cache does not keep; `None`, for `store`.
    fn not_stored<T>(&self, reason: NotStored) -> Option<T> {
        self.counters.metrics.not_stored(reason).increment(1);
        None
    }

    /// After a successful unsafe request, removes the stored GET answers for
    /// its URL and for same-origin `Location` / `Content-Location`
    /// (RFC 9111 §4.4).
    async fn invalidate_after(&self, req: &Prepared, resp: &OriginResponse) {
        if self.options.mode != CacheMode::ReadWrite
            || !(resp.status.is_success() || resp.status.is_redirection())
        {
            return;
        }
        let mut urls = vec![req.url.clone()];
        for h in [LOCATION, CONTENT_LOCATION] {
            if let Some(u) = resp
                .headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| resp.url.join(v).ok())
                .filter(|u| u.origin() == req.url.origin())
            {
                urls.push(u);
            }
        }
        for url in urls {
            self.invalidate_url(&url, &req.headers).await;
        }
    }

    async fn invalidate_url(&self, url: &Url, headers: &HeaderMap) -> u64 {
        let method = Method::GET;
        let mut removed = 0;
        let digest = self.options.rules.digest(&method, url, b"", headers);
        if let Some(slot) = self.slot_for(&method, url, headers)
            && self
                .cache_delete(&slot.store, &slot.key, &slot.repository)
                .await
        {
            removed += 1;
        }
        let pointer = digest_key(&method, &digest);
        if self
            .cache_delete(
                self.target.redirects(),
                &pointer,
                crate::target::REDIRECTS_REPOSITORY,
            )
            .await
        {
            removed += 1;
        }
        removed
    }
}

/// `call`, or a [`Timeout`](CoreErrorKind::Timeout) error after `limit`
/// (the client's `cache_timeout`).
async fn within<T>(
    limit: std::time::Duration,
    call: impl std::future::Future<Output = respcache_core::Result<T>>,
) -> respcache_core::Result<T> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(respcache_core::Error::new(
            CoreErrorKind::Timeout,
            format!("no answer within {limit:?} (cache_timeout)"),
        ))
    })
}

/// The stored headers updated by a 304: every header the 304 carries
/// (except those describing the body and hop-by-hop ones) replaces all
/// stored values of that name; ignored headers are redacted. The stored
/// `Age` always goes: the age now counts from the 304 (and its own `Age`).
fn merge_304(
    stored: &[(String, Vec<u8>)],
    fresh: &HeaderMap,
    o: &Options,
) -> Vec<(String, Vec<u8>)> {
    let replaced = |name: &str| {
        name == "age" || (fresh.contains_key(name) && !NOT_UPDATED_BY_304.contains(&name))
    };
    let mut out: Vec<(String, Vec<u8>)> = stored
        .iter()
        .filter(|(n, _)| !replaced(n))
        .cloned()
        .collect();
    out.extend(
        header_list(&o.rules.redact_headers(fresh))
            .into_iter()
            .filter(|(n, _)| replaced(n)),
    );
    out
}
