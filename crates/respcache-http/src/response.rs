//! [`CachedResponse`]: an answer from the cache or the origin, read the same
//! way either way.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Version};
use respcache_core::{Clock, Key, SystemClock, Timestamp};
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{Error, ErrorKind, Result};
use crate::origin::OriginStream;
use crate::status::{CacheOutcome, CacheStatus};

/// An HTTP response as the client returns it: status, headers, final URL
/// and body, plus what the cache knows about it.
///
/// A response served from the cache reads exactly like the one the origin
/// sent (same status, headers in the same order with every value, body),
/// with an updated `Age` header.
///
/// ```
/// use bytes::Bytes;
/// use respcache_http::CachedResponse;
///
/// let http = http::Response::builder()
///     .status(200)
///     .header("content-type", "application/json")
///     .body(Bytes::from_static(br#"{"name":"Hey Jude"}"#))
///     .unwrap();
/// let response = CachedResponse::from(http);
/// assert_eq!(response.status(), 200);
/// let v: serde_json::Value = response.json()?;
/// assert_eq!(v["name"], "Hey Jude");
/// assert!(!response.from_cache());
/// let back: http::Response<Bytes> = response.into();
/// assert_eq!(back.headers()["content-type"], "application/json");
/// # Ok::<(), respcache_http::Error>(())
/// ```
#[derive(Clone)]
pub struct CachedResponse {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) url: Option<Url>,
    pub(crate) body: Bytes,
    pub(crate) from_cache: bool,
    pub(crate) created_at: Option<Timestamp>,
    pub(crate) expires_at: Option<Timestamp>,
    pub(crate) revalidated: bool,
    pub(crate) cache_key: CacheKey,
    pub(crate) cache_status: CacheStatus,
    pub(crate) clock: Arc<dyn Clock>,
    /// The unread rest of the body, for a streaming request only.
    pub(crate) tail: Tail,
}

/// The unread rest of an origin body: taken once, by the streaming request
/// that asked for it (copies of the response share it, and see that it
/// streams).
#[derive(Clone, Default)]
pub(crate) struct Tail(Option<Arc<Mutex<Option<OriginStream>>>>);

impl Tail {
    pub(crate) fn new(rest: OriginStream) -> Self {
        Tail(Some(Arc::new(Mutex::new(Some(rest)))))
    }

    /// Whether the body streams (whether or not it was taken).
    pub(crate) fn is_streaming(&self) -> bool {
        self.0.is_some()
    }

    pub(crate) fn take(&self) -> Option<OriginStream> {
        self.0.as_ref()?.lock().ok()?.take()
    }
}

/// The key a response is stored under, encoded the first time it is asked
/// for (most callers never ask).
#[derive(Clone, Default)]
pub(crate) struct CacheKey {
    key: Option<Key>,
    encoded: OnceLock<String>,
}

impl CacheKey {
    pub(crate) fn new(key: Key) -> Self {
        CacheKey {
            key: Some(key),
            encoded: OnceLock::new(),
        }
    }

    fn encoded(&self) -> Option<&str> {
        let key = self.key.as_ref()?;
        Some(self.encoded.get_or_init(|| key.encode()))
    }
}

/// What the cache knows about a response besides its [`CacheStatus`]: kept
/// in `http::Response` extensions when a [`CachedResponse`] is converted
/// (so converting back keeps it), and on every response a
/// [`CacheService`](crate::CacheService) gives.
#[derive(Clone)]
pub struct CacheFacts {
    from_cache: bool,
    created_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
    revalidated: bool,
    cache_key: CacheKey,
    clock: Arc<dyn Clock>,
}

impl CacheFacts {
    /// As [`CachedResponse::from_cache`].
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// As [`CachedResponse::created_at`].
    pub fn created_at(&self) -> Option<Timestamp> {
        self.created_at
    }

    /// As [`CachedResponse::expires_at`].
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }

    /// As [`CachedResponse::is_expired`].
    pub fn is_expired(&self) -> bool {
        self.expires_at.is_some_and(|e| e <= self.clock.now())
    }

    /// As [`CachedResponse::revalidated`].
    pub fn revalidated(&self) -> bool {
        self.revalidated
    }

    /// As [`CachedResponse::cache_key`].
    pub fn cache_key(&self) -> Option<&str> {
        self.cache_key.encoded()
    }
}

impl fmt::Debug for CacheFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheFacts")
            .field("from_cache", &self.from_cache)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("revalidated", &self.revalidated)
            .finish_non_exhaustive()
    }
}

/// The final URL of a response, kept in `http::Response` extensions when a
/// [`CachedResponse`] is converted, so converting back keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalUrl(pub Url);

impl CachedResponse {
    pub(crate) fn new(
        status: StatusCode,
        headers: HeaderMap,
        url: Option<Url>,
        body: Bytes,
        cache_status: CacheStatus,
        clock: Arc<dyn Clock>,
    ) -> Self {
        CachedResponse {
            status,
            version: Version::HTTP_11,
            headers,
            url,
            body,
            from_cache: false,
            created_at: None,
            expires_at: None,
            revalidated: false,
            cache_key: CacheKey::default(),
            cache_status,
            clock,
            tail: Tail::default(),
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The HTTP version the origin answered with (stored answers keep it).
    pub fn version(&self) -> Version {
        self.version
    }

    /// The headers, every value of multi-valued headers kept.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The final URL, after redirects (`None` for a response built from a
    /// plain `http::Response` without a [`FinalUrl`] extension).
    pub fn url(&self) -> Option<&Url> {
        self.url.as_ref()
    }

    /// The body.
    pub fn bytes(&self) -> Bytes {
        self.body.clone()
    }

    /// The body as text (invalid UTF-8 replaced by U+FFFD, as browsers do).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Decode`] when the body is not valid JSON for `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            let mut err = Error::new(ErrorKind::Decode, format!("body is not valid JSON: {e}"))
                .with_source(e);
            if let Some(url) = &self.url {
                err = err.with_url(url.as_str());
            }
            err
        })
    }

    /// The body, consuming the response.
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// Whether the body came from the cache rather than from an origin
    /// request made for this call (a request coalesced with another one also
    /// counts as from the cache).
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// When the stored response was created (received from the origin), if
    /// it is or was stored.
    pub fn created_at(&self) -> Option<Timestamp> {
        self.created_at
    }

    /// When the stored response goes stale (`None`: never, or not stored).
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }

    /// Whether the stored response is stale now.
    pub fn is_expired(&self) -> bool {
        self.expires_at.is_some_and(|e| e <= self.clock.now())
    }

    /// Whether the origin confirmed the stored response with `304 Not Modified`.
    pub fn revalidated(&self) -> bool {
        self.revalidated
    }

    /// The encoded key the response is stored under, if the request is cached.
    pub fn cache_key(&self) -> Option<&str> {
        self.cache_key.encoded()
    }

    /// How the cache answered (see [`CacheStatus`]; `Display` gives an
    /// RFC 9211 `Cache-Status` value).
    pub fn cache_status(&self) -> &CacheStatus {
        &self.cache_status
    }

    /// The outcome alone.
    pub fn outcome(&self) -> CacheOutcome {
        self.cache_status.outcome()
    }

    /// Converts into an `http::Response<Bytes>`; the final URL, the cache
    /// status and the rest of what the cache knows go into its extensions
    /// ([`FinalUrl`], [`CacheStatus`], [`CacheFacts`]).
    pub fn into_http(mut self) -> http::Response<Bytes> {
        let body = std::mem::take(&mut self.body);
        self.into_http_with(body)
    }

    /// [`into_http`](Self::into_http) with `body` as the response's body
    /// (this one's own is dropped): the one conversion behind every
    /// `http::Response` the crate hands out.
    pub(crate) fn into_http_with<B>(self, body: B) -> http::Response<B> {
        let mut out = http::Response::new(body);
        *out.status_mut() = self.status;
        *out.version_mut() = self.version;
        *out.headers_mut() = self.headers;
        let extensions = out.extensions_mut();
        if let Some(url) = self.url {
            extensions.insert(FinalUrl(url));
        }
        extensions.insert(self.cache_status);
        extensions.insert(CacheFacts {
            from_cache: self.from_cache,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revalidated: self.revalidated,
            cache_key: self.cache_key,
            clock: self.clock,
        });
        out
    }
}

impl From<CachedResponse> for http::Response<Bytes> {
    fn from(r: CachedResponse) -> Self {
        r.into_http()
    }
}

impl From<http::Response<Bytes>> for CachedResponse {
    /// A response that did not come from the cache (unless the extensions
    /// carry a [`CacheStatus`] or [`CacheFacts`] saying otherwise).
    fn from(r: http::Response<Bytes>) -> Self {
        let (parts, body) = r.into_parts();
        let url = parts.extensions.get::<FinalUrl>().map(|u| u.0.clone());
        let status = parts
            .extensions
            .get::<CacheStatus>()
            .copied()
            .unwrap_or(CacheStatus::new(CacheOutcome::Bypass));
        let mut out = CachedResponse::new(
            parts.status,
            parts.headers,
            url,
            body,
            status,
            Arc::new(SystemClock),
        );
        out.version = parts.version;
        out.from_cache = status.outcome().body_from_cache();
        if let Some(facts) = parts.extensions.get::<CacheFacts>() {
            out.from_cache = facts.from_cache;
            out.created_at = facts.created_at;
            out.expires_at = facts.expires_at;
            out.revalidated = facts.revalidated;
            out.cache_key = facts.cache_key.clone();
            out.clock = Arc::clone(&facts.clock);
        }
        out
    }
}

impl fmt::Debug for CachedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedResponse")
            .field("status", &self.status)
            .field("url", &self.url.as_ref().map(Url::as_str))
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("from_cache", &self.from_cache)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("revalidated", &self.revalidated)
            .field("cache_status", &self.cache_status.to_string())
            .finish()
    }
}
