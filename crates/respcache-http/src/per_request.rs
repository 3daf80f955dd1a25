//! [`RequestOptions`]: per-request cache settings carried in a request's
//! extensions, for the front-ends that take plain `http::Request`s
//! ([`CacheService`](crate::CacheService), the reqwest middleware).

use std::time::Duration;

use respcache_core::Expiry;

use crate::builder::CacheMode;
use crate::request::RequestBuilder;

/// Per-request cache settings, read from an `http::Request`'s extensions;
/// each does what the [`RequestBuilder`] method of the same name does.
///
/// ```
/// use std::time::Duration;
/// use respcache_http::RequestOptions;
///
/// let mut request = http::Request::get("http://127.0.0.1:8080/v1/tracks/42").body(()).unwrap();
/// request.extensions_mut().insert(RequestOptions::new().expire_after(Duration::from_secs(60)).refresh());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestOptions {
    expiry: Option<Expiry>,
    refresh: bool,
    force_refresh: bool,
    only_if_cached: bool,
    timeout: Option<Duration>,
    mode: Option<CacheMode>,
}

impl RequestOptions {
    /// No settings: the client's own apply.
    pub fn new() -> Self {
        RequestOptions::default()
    }

    /// As [`RequestBuilder::expire_after`].
    #[must_use]
    pub fn expire_after(mut self, expiry: impl Into<Expiry>) -> Self {
        self.expiry = Some(expiry.into());
        self
    }

    /// As [`RequestBuilder::refresh`].
    #[must_use]
    pub fn refresh(mut self) -> Self {
        self.refresh = true;
        self
    }

    /// As [`RequestBuilder::force_refresh`].
    #[must_use]
    pub fn force_refresh(mut self) -> Self {
        self.force_refresh = true;
        self
    }

    /// As [`RequestBuilder::only_if_cached`].
    #[must_use]
    pub fn only_if_cached(mut self) -> Self {
        self.only_if_cached = true;
        self
    }

    /// As [`RequestBuilder::timeout`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// As [`RequestBuilder::mode`].
    #[must_use]
    pub fn mode(mut self, mode: CacheMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// The time limit set by [`timeout`](Self::timeout), if any.
    pub fn time_limit(&self) -> Option<Duration> {
        self.timeout
    }

    /// Applies the settings to `builder`.
    pub fn apply(&self, mut builder: RequestBuilder) -> RequestBuilder {
        if let Some(expiry) = self.expiry {
            builder = builder.expire_after(expiry);
        }
        if self.refresh {
            builder = builder.refresh();
        }
        if self.force_refresh {
            builder = builder.force_refresh();
        }
        if self.only_if_cached {
            builder = builder.only_if_cached();
        }
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(mode) = self.mode {
            builder = builder.mode(mode);
        }
        builder
    }
}
