//! Stage 7, invalidate: a successful unsafe request removes what the cache
//! holds for its URL and for the same-origin URLs its `Location` and
//! `Content-Location` name (RFC 9111 §4.4).

use http::header::{CONTENT_LOCATION, LOCATION};
use http::{HeaderMap, Method};
use url::Url;

use super::Engine;
use crate::request::Prepared;
use crate::target::{REDIRECTS_REPOSITORY, digest_key};
use crate::transport::OriginResponse;

/// Whether a method may change the resource (RFC 9110 §9.2.1).
pub(super) fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

impl Engine {
    /// After a successful unsafe request, removes the stored GET answers for
    /// its URL and for same-origin `Location` / `Content-Location`.
    pub(super) async fn invalidate_after(&self, req: &Prepared, resp: &OriginResponse) {
        if !self.writes(req) || !(resp.status.is_success() || resp.status.is_redirection()) {
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

    /// Removes the stored GET answer for `url` and its redirect pointer;
    /// how many entries were removed.
    pub(crate) async fn invalidate_url(&self, url: &Url, headers: &HeaderMap) -> u64 {
        let method = Method::GET;
        let (digest, slot) = self.digest_and_slot(&method, url, headers);
        let mut removed = 0;
        if let Some(slot) = slot
            && self
                .cache_delete(&slot.store, &slot.key, &slot.repository)
                .await
        {
            removed += 1;
        }
        let pointer = digest_key(&method, &digest);
        if self
            .cache_delete(self.target.redirects(), &pointer, REDIRECTS_REPOSITORY)
            .await
        {
            removed += 1;
        }
        removed
    }
}
