//! Stage 3, serve: a response built from a stored one (its current `Age`,
//! its remaining freshness in `Cache-Status`), and the `504` of an
//! `only-if-cached` request with nothing to serve.

use std::sync::Arc;

use bytes::Bytes;
use http::header::AGE;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use url::Url;

use super::Engine;
use super::exchange::Exchange;
use super::lookup::Found;
use crate::response::{CacheKey, CachedResponse};
use crate::rules::age;
use crate::status::{CacheOutcome, CacheStatus};

impl Engine {
    /// A response built from a stored one (taken whole: a hit clones
    /// nothing), `url` the request's.
    pub(super) fn stored_response(
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

    /// The stored response, stale within `stale-while-revalidate`, and a
    /// refresh of it started in the background (not for `only-if-cached`
    /// or HEAD requests).
    pub(super) fn serve_and_refresh(self: &Arc<Self>, ex: &Exchange<'_>) -> CachedResponse {
        let Some(found) = &ex.read.found else {
            return self.only_if_cached_miss(ex);
        };
        let answer = self.stored_response(
            Found::clone(found),
            ex.req.url.clone(),
            &ex.req.method,
            CacheOutcome::StaleWhileRevalidate,
        );
        if !ex.only_if_cached() && !ex.is_head() {
            self.spawn_refresh(ex);
        }
        answer
    }

    /// The `504 Gateway Timeout` an `only-if-cached` request gets when
    /// nothing stored may answer it (RFC 9111 §5.2.1.7).
    pub(super) fn only_if_cached_miss(&self, ex: &Exchange<'_>) -> CachedResponse {
        let mut r = CachedResponse::new(
            StatusCode::GATEWAY_TIMEOUT,
            HeaderMap::new(),
            Some(ex.req.url.clone()),
            Bytes::new(),
            CacheStatus::new(CacheOutcome::OnlyIfCachedMiss),
            Arc::clone(&self.clock),
        );
        r.cache_key = CacheKey::new(ex.slot.key.clone());
        r
    }
}

/// The code meta stores for an HTTP version.
pub(super) fn version_code(v: Version) -> u8 {
    match v {
        Version::HTTP_09 => 9,
        Version::HTTP_10 => 10,
        Version::HTTP_2 => 20,
        Version::HTTP_3 => 30,
        _ => 11,
    }
}

/// The HTTP version of a code meta stores.
fn version_of(code: u8) -> Version {
    match code {
        9 => Version::HTTP_09,
        10 => Version::HTTP_10,
        20 => Version::HTTP_2,
        30 => Version::HTTP_3,
        _ => Version::HTTP_11,
    }
}
