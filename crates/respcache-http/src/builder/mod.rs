//! [`CachedClientBuilder`]: the options users of requests-cache and
//! aiohttp-client-cache expect, checked once at build time; [`open`]
//! builds the client (or a layer) from them.

mod open;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};
use http::{HeaderName, Method};
use respcache_core::breaker::BreakerConfig;
use respcache_core::{Clock, CrossProcess, Expiry};
use url::Url;

use crate::budget::BufferBudget;
use crate::error::{Error, ErrorKind, Result};
use crate::normalize::KeyRules;
use crate::opening::Backoff;
use crate::response::CachedResponse;
use crate::tags::DEFAULT_TAG_HEADERS;
use crate::transport::TransportOptions;

/// The parameters and headers ignored by default: left out of keys and
/// redacted in what is stored.
pub const DEFAULT_IGNORED: [&str; 5] = [
    "Authorization",
    "Proxy-Authorization",
    "X-API-Key",
    "access_token",
    "api_key",
];

/// The cache name a client over a plain backend uses unless told otherwise.
pub const DEFAULT_CACHE_NAME: &str = "http_cache";

/// Whether the cache is read and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// Read stored answers and store new ones (the default).
    #[default]
    ReadWrite,
    /// Read stored answers; never write, delete or freshen anything.
    ReadOnly,
    /// Do not use the cache at all: every request goes to the origin.
    Disabled,
}

type Filter = Arc<dyn Fn(&CachedResponse) -> bool + Send + Sync>;

/// Everything a client decides with, after validation.
#[derive(Clone)]
pub(crate) struct Options {
    pub(crate) default_expiry: Option<Expiry>,
    pub(crate) url_expiry: Vec<UrlPattern>,
    pub(crate) allowed_codes: Vec<u16>,
    pub(crate) allowed_methods: Vec<Method>,
    pub(crate) rules: KeyRules,
    pub(crate) filter: Option<Filter>,
    pub(crate) respect_cache_control: bool,
    pub(crate) shared: bool,
    pub(crate) mode: CacheMode,
    pub(crate) stale_if_error: Option<Duration>,
    pub(crate) stale_while_revalidate: Option<Duration>,
    pub(crate) max_body_size: Option<usize>,
    /// The fraction of the time since `Last-Modified` a response without
    /// explicit freshness stays fresh (RFC 9111 §4.2.2).
    pub(crate) heuristic_fraction: f32,
    /// Serve a stale response when the origin cannot be reached, where
    /// RFC 9111 §4.2.4 allows it.
    pub(crate) stale_when_unreachable: bool,
    /// A `public` answer of any status may take a heuristic lifetime
    /// (RFC 9111 §4.2.2), not only those in `allowed_codes`.
    pub(crate) public_heuristic: bool,
    /// Targeted cache-control fields obeyed before `Cache-Control`.
    pub(crate) targeted_cache_control: Vec<http::HeaderName>,
    /// Bounds the memory of bodies read whole to be stored.
    pub(crate) buffer_budget: Option<BufferBudget>,
    pub(crate) breaker: BreakerConfig,
    pub(crate) cache_timeout: Option<Duration>,
    /// One origin request per key across processes sharing the backend.
    pub(crate) cross_process: Option<CrossProcess>,
    /// The response headers whose values tag a stored answer.
    pub(crate) tag_headers: Vec<HeaderName>,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("default_expiry", &self.default_expiry)
            .field(
                "url_expiry",
                &self
                    .url_expiry
                    .iter()
                    .map(|p| (p.glob.glob().glob().to_owned(), p.expiry))
                    .collect::<Vec<_>>(),
            )
            .field("allowed_codes", &self.allowed_codes)
            .field("allowed_methods", &self.allowed_methods)
            .field("rules", &self.rules)
            .field("filter", &self.filter.is_some())
            .field("respect_cache_control", &self.respect_cache_control)
            .field("shared", &self.shared)
            .field("mode", &self.mode)
            .field("stale_if_error", &self.stale_if_error)
            .field("stale_while_revalidate", &self.stale_while_revalidate)
            .field("max_body_size", &self.max_body_size)
            .field("buffer_budget", &self.buffer_budget)
            .field("breaker", &self.breaker)
            .field("cache_timeout", &self.cache_timeout)
            .finish()
    }
}

impl Options {
    /// The expiry of the first per-URL pattern matching `url`.
    pub(crate) fn url_expiry(&self, url: &Url) -> Option<Expiry> {
        if self.url_expiry.is_empty() {
            return None;
        }
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
            None => url.host_str().unwrap_or("").to_owned(),
        };
        let full = format!("{host}{}", url.path());
        self.url_expiry
            .iter()
            .find(|p| p.glob.is_match(if p.host_only { &host } else { &full }))
            .map(|p| p.expiry)
    }
}

/// One per-URL expiry: a glob matched against `host[:port]/path`, or
/// against `host[:port]` alone when the pattern has no `/`.
#[derive(Clone)]
pub(crate) struct UrlPattern {
    glob: GlobMatcher,
    host_only: bool,
    expiry: Expiry,
}

/// Builds a [`CachedClient`](crate::CachedClient). Every option has a default; `build` checks
/// them all and opens the stores.
///
/// ```no_run
/// # async fn demo() -> respcache_http::Result<()> {
/// use std::{sync::Arc, time::Duration};
/// use respcache_core::MemoryBackend;
/// use respcache_http::CachedClient;
///
/// let client = CachedClient::builder()
///     .cache_name("demo")
///     .default_expiry(Duration::from_secs(3600))
///     .url_expiry("api.example.com/v1/tracks/*", Duration::from_secs(86_400))
///     .url_expiry("*.example.com", Duration::from_secs(60))
///     .allowed_codes([200, 203, 404])
///     .match_headers(["accept-language"])
///     .stale_if_error(Duration::from_secs(600))
///     .build(Arc::new(MemoryBackend::new()))
///     .await?;
/// let response = client.get("https://api.example.com/v1/tracks/42").send().await?;
/// println!("{} from_cache={}", response.status(), response.from_cache());
/// # Ok(()) }
/// ```
pub struct CachedClientBuilder {
    cache_name: String,
    clock: Option<Arc<dyn Clock>>,
    default_expiry: Option<Expiry>,
    url_expiry: Vec<(String, Expiry)>,
    allowed_codes: Vec<u16>,
    allowed_methods: Vec<Method>,
    match_headers: Vec<String>,
    ignored: Vec<String>,
    filter: Option<Filter>,
    respect_cache_control: bool,
    shared: bool,
    mode: CacheMode,
    stale_if_error: Option<Duration>,
    stale_while_revalidate: Option<Duration>,
    max_body_size: Option<usize>,
    buffer_budget: Option<BufferBudget>,
    heuristic: f32,
    stale_when_unreachable: bool,
    public_heuristic: bool,
    targeted_cache_control: Vec<http::HeaderName>,
    retention: Option<Duration>,
    transport: TransportOptions,
    breaker: BreakerConfig,
    cache_timeout: Option<Duration>,
    cross_process: Option<CrossProcess>,
    tag_headers: Vec<String>,
    degraded_start: bool,
    reopen: Backoff,
}

impl fmt::Debug for CachedClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedClientBuilder")
            .field("cache_name", &self.cache_name)
            .field("default_expiry", &self.default_expiry)
            .field("url_expiry", &self.url_expiry)
            .field("allowed_codes", &self.allowed_codes)
            .field("allowed_methods", &self.allowed_methods)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Default for CachedClientBuilder {
    fn default() -> Self {
        CachedClientBuilder {
            cache_name: DEFAULT_CACHE_NAME.to_owned(),
            clock: None,
            default_expiry: None,
            url_expiry: Vec::new(),
            allowed_codes: vec![200],
            allowed_methods: vec![Method::GET, Method::HEAD],
            match_headers: Vec::new(),
            ignored: DEFAULT_IGNORED.iter().map(|s| (*s).to_owned()).collect(),
            filter: None,
            respect_cache_control: true,
            shared: false,
            mode: CacheMode::ReadWrite,
            stale_if_error: None,
            stale_while_revalidate: None,
            max_body_size: None,
            buffer_budget: None,
            heuristic: 0.1,
            stale_when_unreachable: false,
            public_heuristic: false,
            targeted_cache_control: Vec::new(),
            retention: None,
            transport: TransportOptions::default(),
            breaker: BreakerConfig::default(),
            cache_timeout: None,
            cross_process: None,
            tag_headers: DEFAULT_TAG_HEADERS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
            degraded_start: true,
            reopen: Backoff::default(),
        }
    }
}

impl CachedClientBuilder {
    /// A builder with every default.
    pub fn new() -> Self {
        CachedClientBuilder::default()
    }

    /// The cache name when building over a plain backend (default
    /// [`DEFAULT_CACHE_NAME`]); validated like every respcache name.
    pub fn cache_name(mut self, name: impl Into<String>) -> Self {
        self.cache_name = name.into();
        self
    }

    /// Where the current time comes from (default: the system clock; over a
    /// [`ResponseCache`](respcache_core::ResponseCache), its repositories' clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// How long responses without explicit freshness stay fresh (default:
    /// the HTTP heuristic, or never when `Cache-Control` is not respected).
    pub fn default_expiry(mut self, expiry: impl Into<Expiry>) -> Self {
        self.default_expiry = Some(expiry.into());
        self
    }

    /// The expiry of URLs matching `pattern`, a glob matched against
    /// `host[:port]/path` (no scheme, no query). `*` matches any characters,
    /// `/` included; a pattern without `/` names hosts
    /// (`*.example.com`). The first matching pattern wins. A bad pattern is
    /// a [`Configuration`](ErrorKind::Configuration) error at build time.
    pub fn url_expiry(mut self, pattern: impl Into<String>, expiry: impl Into<Expiry>) -> Self {
        self.url_expiry.push((pattern.into(), expiry.into()));
        self
    }

    /// The status codes whose responses are stored when their lifetime
    /// would come from this client (its [`default_expiry`](Self::default_expiry),
    /// a [`url_expiry`](Self::url_expiry), a per-request expiry) or from the
    /// heuristic of RFC 9111 §4.2.2 (default: 200, as the seeds have it), so
    /// a default expiry never caches error pages. A response whose origin
    /// gives it explicit freshness (`max-age`, `s-maxage` when shared,
    /// `Expires`) is stored by the HTTP rules whatever its final status;
    /// without [`cache_control`](Self::cache_control) only these codes are
    /// stored. [`HEURISTICALLY_CACHEABLE`](crate::HEURISTICALLY_CACHEABLE)
    /// is the set a cache that follows the HTTP rules alone uses.
    pub fn allowed_codes(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.allowed_codes = codes.into_iter().collect();
        self
    }

    /// The methods whose responses are stored (default: GET and HEAD; HEAD
    /// is answered from a stored GET). Adding POST caches POST responses
    /// keyed by their body digest.
    pub fn allowed_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.allowed_methods = methods.into_iter().collect();
        self
    }

    /// Request headers whose values join the key (default: none).
    pub fn match_headers<I, S>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.match_headers = headers.into_iter().map(Into::into).collect();
        self
    }

    /// Replaces the ignored query parameters and headers (default
    /// [`DEFAULT_IGNORED`]): they never join a key and their values are
    /// replaced by `REDACTED` in everything stored.
    pub fn ignored_parameters<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ignored = names.into_iter().map(Into::into).collect();
        self
    }

    /// Adds one ignored query parameter or header to the list.
    pub fn ignore_parameter(mut self, name: impl Into<String>) -> Self {
        self.ignored.push(name.into());
        self
    }

    /// Stores a response only when `filter` returns `true` (it sees the
    /// response as the caller will).
    pub fn filter(
        mut self,
        filter: impl Fn(&CachedResponse) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// Whether `Cache-Control`, `Expires`, validators and the other HTTP
    /// caching headers are respected (default `true`). When `false`, the
    /// configured expiries alone decide.
    pub fn cache_control(mut self, respect: bool) -> Self {
        self.respect_cache_control = respect;
        self
    }

    /// Behave as a shared cache (`s-maxage`, `proxy-revalidate`; `private`
    /// responses are not stored, nor answers to requests with credentials —
    /// `Authorization`, and the ignored headers and parameters such as
    /// `X-API-Key` and `api_key` — unless `public`, `s-maxage` or
    /// `must-revalidate` allow it; requests with other credentials are
    /// never coalesced). Default: a private cache.
    pub fn shared(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    /// Read-write (default), read-only or disabled.
    pub fn mode(mut self, mode: CacheMode) -> Self {
        self.mode = mode;
        self
    }

    /// Shorthand for [`CacheMode::ReadOnly`].
    pub fn read_only(self) -> Self {
        self.mode(CacheMode::ReadOnly)
    }

    /// Shorthand for [`CacheMode::Disabled`].
    pub fn disabled(self) -> Self {
        self.mode(CacheMode::Disabled)
    }

    /// Serve a stale response up to `window` past its expiry when the origin
    /// fails (connection error or 5xx), as `stale-if-error` would
    /// (default: only when the response or request says so).
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = Some(window);
        self
    }

    /// Serve a stale response up to `window` past its expiry at once and
    /// refresh it in the background, as `stale-while-revalidate` would
    /// (default: only when the response says so).
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale_while_revalidate = Some(window);
        self
    }

    /// Bodies larger than `bytes` are returned but not stored (default: no
    /// limit beyond the backend's own).
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.max_body_size = Some(bytes);
        self
    }

    /// Serve a stale stored response when the origin cannot be reached (a
    /// connection error or a timeout, not an HTTP error status), as RFC 9111
    /// §4.2.4 allows a disconnected cache — unless the response forbids it
    /// (`must-revalidate`, `no-cache`; `proxy-revalidate` and `s-maxage`
    /// in a shared cache) or the request's `max-stale` is smaller than its
    /// staleness. Off by default; `respcache serve` turns it on, as proxies
    /// do (nginx `proxy_cache_use_stale`, Varnish grace).
    pub fn stale_when_unreachable(mut self, serve: bool) -> Self {
        self.stale_when_unreachable = serve;
        self
    }

    /// Lets a `public` answer of any final status without explicit freshness
    /// take a lifetime of the cache's own — the heuristic of RFC 9111
    /// §4.2.2, or this client's expiry when one is set — as a cache
    /// following the HTTP rules alone does (`respcache serve`); otherwise
    /// only the statuses in [`allowed_codes`](Self::allowed_codes) get one.
    pub(crate) fn public_heuristic(mut self, allow: bool) -> Self {
        self.public_heuristic = allow;
        self
    }

    /// Obey a targeted cache-control field (RFC 9213) such as
    /// `CDN-Cache-Control`: when a response carries it with a valid value,
    /// it replaces `Cache-Control` and `Expires` for this cache. For
    /// gateway caches (`respcache serve` obeys `CDN-Cache-Control`); fields
    /// named first win.
    ///
    /// ```
    /// let builder = respcache_http::CachedClient::builder()
    ///     .targeted_cache_control(respcache_http::http::HeaderName::from_static("cdn-cache-control"));
    /// # let _ = builder;
    /// ```
    pub fn targeted_cache_control(mut self, field: http::HeaderName) -> Self {
        self.targeted_cache_control.push(field);
        self
    }

    /// Bounds the memory that response bodies read whole to be stored
    /// hold at once (default: no bound beyond
    /// [`max_body_size`](Self::max_body_size) per body). Takes a byte count
    /// or a [`BufferBudget`] shared with other users (clones share one
    /// budget). A streamed body the budget cannot take — its
    /// `Content-Length`, or the store limit when it has none — is passed on
    /// unstored, like one too large by its `Content-Length`.
    pub fn buffer_budget(mut self, budget: impl Into<BufferBudget>) -> Self {
        self.buffer_budget = Some(budget.into());
        self
    }

    /// The fraction of the time since `Last-Modified` used as heuristic
    /// freshness (default 0.1).
    pub fn heuristic_fraction(mut self, fraction: f32) -> Self {
        self.heuristic = fraction;
        self
    }

    /// How long stale entries are kept by backends with native expiry
    /// (default: until cleared). Used when building over a plain backend.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// How many redirects are followed (default 10).
    pub fn max_redirects(mut self, n: usize) -> Self {
        self.transport.max_redirects = n;
        self
    }

    /// Whether redirects are followed (default `true`). When `false`, a 3xx
    /// is returned as the origin sent it, as a proxy must.
    pub fn follow_redirects(mut self, follow: bool) -> Self {
        self.transport.follow_redirects = follow;
        self
    }

    /// A time limit for each origin request (default: none).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.transport.timeout = Some(timeout);
        self
    }

    /// A time limit for connecting (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.transport.connect_timeout = Some(timeout);
        self
    }

    /// How long idle pooled connections are kept (default 90 s).
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.transport.pool_idle_timeout = timeout;
        self
    }

    /// The rustls configuration for HTTPS (default: the aws-lc-rs provider
    /// and the platform's root certificates).
    pub fn tls_config(mut self, config: rustls::ClientConfig) -> Self {
        self.transport.tls = Some(Arc::new(config));
        self
    }

    /// How many connection or timeout errors in a row, in calls to the
    /// cache, open the circuit breaker (default
    /// [`DEFAULT_THRESHOLD`](respcache_core::breaker::DEFAULT_THRESHOLD), 5);
    /// `0` never opens it. While it is open, requests skip the cache and go
    /// to the origin at once; see [`breaker_cool_down`](Self::breaker_cool_down).
    pub fn breaker_threshold(mut self, errors: u32) -> Self {
        self.breaker.threshold = errors;
        self
    }

    /// How long an open circuit breaker skips the cache before one probe
    /// call may try it again (default
    /// [`DEFAULT_COOL_DOWN`](respcache_core::breaker::DEFAULT_COOL_DOWN), 5 s);
    /// a probe that succeeds closes the breaker.
    pub fn breaker_cool_down(mut self, cool_down: Duration) -> Self {
        self.breaker.cool_down = cool_down;
        self
    }

    /// A time limit for each cache call (default: none beyond the
    /// backend's own deadlines, such as Redis's command timeout). A call
    /// over it is a [`Timeout`](respcache_core::ErrorKind::Timeout): the
    /// request goes on without the cache, and the circuit breaker counts
    /// it. It bounds what a frozen backend can cost a request whatever the
    /// backend's own settings.
    pub fn cache_timeout(mut self, limit: Duration) -> Self {
        self.cache_timeout = Some(limit);
        self
    }

    /// The response headers whose values tag a stored answer, for
    /// [`purge_tag`](crate::CachedClient::purge_tag) (default: `Cache-Tag`, comma
    /// separated, and `Surrogate-Key`, space separated). An empty list
    /// stores no tags.
    ///
    /// ```no_run
    /// # async fn demo() -> respcache_http::Result<()> {
    /// let client = respcache_http::CachedClient::builder()
    ///     .tag_headers(["x-cache-tags"])
    ///     .build(std::sync::Arc::new(respcache_core::MemoryBackend::new()))
    ///     .await?;
    /// client.get("https://shop.example/products/7").send().await?;
    /// client.purge_tag("product-7").await?; // every answer tagged product-7
    /// # Ok(()) }
    /// ```
    pub fn tag_headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tag_headers = names.into_iter().map(Into::into).collect();
        self
    }

    /// One origin request per key across every process that shares the
    /// backend (several pods over one Redis, MongoDB, DynamoDB, SQLite file
    /// or folder), not only within this one: on a miss (or a stale entry to
    /// revalidate), the process that takes the store's lease on the key asks
    /// the origin and stores the answer; the others poll the store with
    /// back-off and serve what it stored, take the lease over when its
    /// holder died (the lease expires), or ask the origin themselves when
    /// `max_wait` runs out. In-process coalescing runs first, so each
    /// process makes one lease attempt per key. Requests that must reach the
    /// origin (`no-cache`, [`refresh`](crate::RequestBuilder::refresh),
    /// [`force_refresh`](crate::RequestBuilder::force_refresh)) and
    /// backends without leases go straight on. Costs a miss one lease call
    /// and one release (Redis: one round trip each).
    ///
    /// ```no_run
    /// # async fn demo() -> respcache_http::Result<()> {
    /// use std::time::Duration;
    /// use respcache_core::CrossProcess;
    /// use respcache_http::CachedClient;
    ///
    /// let backend = respcache_core::MemoryBackend::new(); // a shared backend in practice
    /// let client = CachedClient::builder()
    ///     .cross_process(CrossProcess::new().lease(Duration::from_secs(20)))
    ///     .build(std::sync::Arc::new(backend))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn cross_process(mut self, options: CrossProcess) -> Self {
        self.cross_process = Some(options);
        self
    }

    /// Whether a client may be built while its stores cannot be opened
    /// (default `true`): requests then go to the origin, the stores are
    /// opened again in the background (see
    /// [`reopen_backoff`](Self::reopen_backoff)) and
    /// [`CacheStats::store_state`](crate::CacheStats::store_state) says
    /// where it stands. A cache failure never fails a request, and so by
    /// default it does not fail the build either; invalid names and
    /// configuration errors still do. With `false`, `build` fails when the
    /// stores cannot be opened.
    pub fn degraded_start(mut self, allow: bool) -> Self {
        self.degraded_start = allow;
        self
    }

    /// The waits between attempts to open the stores after a degraded
    /// start: `initial` first, doubling up to `max` (defaults
    /// [`DEFAULT_REOPEN_INITIAL`](crate::DEFAULT_REOPEN_INITIAL), 500 ms,
    /// and [`DEFAULT_REOPEN_MAX`](crate::DEFAULT_REOPEN_MAX), 30 s).
    pub fn reopen_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.reopen = Backoff {
            initial,
            max: max.max(initial),
        };
        self
    }

    fn options(&self) -> Result<Options> {
        let bad = |msg: String| Error::new(ErrorKind::Configuration, msg);
        let mut url_expiry = Vec::with_capacity(self.url_expiry.len());
        for (pattern, expiry) in &self.url_expiry {
            let p = pattern
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            let glob = GlobBuilder::new(p)
                .case_insensitive(false)
                .literal_separator(false)
                .build()
                .map_err(|e| bad(format!("URL pattern {pattern:?}: {e}")).with_source(e))?;
            url_expiry.push(UrlPattern {
                glob: glob.compile_matcher(),
                host_only: !p.contains('/'),
                expiry: *expiry,
            });
        }
        let mut match_headers = Vec::with_capacity(self.match_headers.len());
        for h in &self.match_headers {
            let name = HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                .map_err(|e| bad(format!("match header {h:?}: {e}")).with_source(e))?;
            match_headers.push(name);
        }
        let mut tag_headers = Vec::with_capacity(self.tag_headers.len());
        for h in &self.tag_headers {
            let name = HeaderName::try_from(h.as_str())
                .map_err(|e| bad(format!("tag header {h:?}: {e}")).with_source(e))?;
            tag_headers.push(name);
        }
        if !(0.0..=1.0).contains(&self.heuristic) {
            return Err(bad(format!(
                "heuristic fraction {} is not between 0 and 1",
                self.heuristic
            )));
        }
        Ok(Options {
            default_expiry: self.default_expiry,
            url_expiry,
            allowed_codes: self.allowed_codes.clone(),
            allowed_methods: self.allowed_methods.clone(),
            rules: KeyRules::new(&self.ignored, &match_headers),
            filter: self.filter.clone(),
            respect_cache_control: self.respect_cache_control,
            shared: self.shared,
            mode: self.mode,
            stale_if_error: self.stale_if_error,
            stale_while_revalidate: self.stale_while_revalidate,
            max_body_size: self.max_body_size,
            heuristic_fraction: self.heuristic,
            stale_when_unreachable: self.stale_when_unreachable,
            public_heuristic: self.public_heuristic,
            targeted_cache_control: self.targeted_cache_control.clone(),
            buffer_budget: self.buffer_budget.clone(),
            breaker: self.breaker,
            cache_timeout: self.cache_timeout,
            cross_process: self.cross_process,
            tag_headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_patterns_first_match_wins_and_host_patterns_cover_paths() -> Result<()> {
        let o = CachedClientBuilder::new()
            .url_expiry("api.example.com/v1/tracks/*", Duration::from_secs(1))
            .url_expiry("*.example.com", Duration::from_secs(2))
            .url_expiry("https://static.test:8443/img/*.png", Expiry::Never)
            .options()?;
        let at = |u: &str| o.url_expiry(&Url::parse(u).unwrap());
        assert_eq!(
            at("https://api.example.com/v1/tracks/7?x=1"),
            Some(Expiry::After(Duration::from_secs(1)))
        );
        assert_eq!(
            at("https://api.example.com/v1/albums/7"),
            Some(Expiry::After(Duration::from_secs(2)))
        );
        assert_eq!(
            at("https://static.test:8443/img/a/b.png"),
            Some(Expiry::Never)
        );
        assert_eq!(at("https://example.org/"), None);
        assert_eq!(at("https://evil.test/a.example.com/x"), None);
        Ok(())
    }

    #[test]
    fn bad_options_are_configuration_errors() {
        let e = CachedClientBuilder::new()
            .url_expiry("a/[", Expiry::Never)
            .options()
            .err();
        assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::Configuration));
        let e = CachedClientBuilder::new()
            .match_headers(["bad header"])
            .options()
            .err();
        assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::Configuration));
    }
}
