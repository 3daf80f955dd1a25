//! A `POST` answer kept for later `GET`s (RFC 9110 §9.3.3, RFC 9111 §4):
//! an answer to a `POST` with explicit freshness whose `Content-Location`
//! names the request's own URL is a representation of that resource, and
//! may be stored as the answer to a `GET` of it — after the invalidation
//! every successful `POST` makes (§4.4).

use bytes::Bytes;
use http::Method;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_LOCATION, CONTENT_TYPE};

use super::exchange::Exchange;
use super::lookup::Read;
use super::{Answer, Engine};
use crate::line::RequestLine;
use crate::request::Prepared;
use crate::rules::lifetime;
use crate::status::{CacheOutcome, CacheStatus, Forward};
use crate::transport::OriginResponse;

impl Engine {
    /// The `GET` of the same URL that `resp`, the answer to `req`, may be
    /// stored for; `None` unless `req` is a `POST` whose successful answer
    /// (2xx, not partial, from the URL asked) names that URL in
    /// `Content-Location` and has explicit freshness, and the client caches
    /// `GET`s and follows `Cache-Control`.
    pub(super) fn get_answered_by_post(
        &self,
        req: &Prepared,
        resp: &OriginResponse,
    ) -> Option<Box<Prepared>> {
        // A successful, complete answer from the URL asked (RFC 9110 §8.7:
        // only a 2xx's content is a representation of the resource).
        if req.method != Method::POST
            || resp.method != Method::POST
            || resp.url != req.url
            || !resp.status.is_success()
            || resp.status == http::StatusCode::PARTIAL_CONTENT
            || !self.options.respect_cache_control
            || !self.writes(req)
            || !self.caches(&Method::GET)
        {
            return None;
        }
        let named = resp.headers.get(CONTENT_LOCATION)?.to_str().ok()?;
        if resp.url.join(named.trim()).ok()? != req.url {
            return None;
        }
        let directives = self.response_directives(&resp.headers);
        if !lifetime::has_explicit(&resp.headers, &directives, self.options.shared) {
            return None;
        }
        // The GET asks with the POST's headers, less those describing its
        // body.
        let mut headers = req.headers.clone();
        for name in [CONTENT_TYPE, CONTENT_LENGTH, CONTENT_ENCODING] {
            headers.remove(name);
        }
        Some(Box::new(Prepared {
            method: Method::GET,
            url: req.url.clone(),
            headers,
            body: Bytes::new(),
            per: req.per,
            streaming: req.streaming,
            extensions: http::Extensions::new(),
        }))
    }

    /// Completes `resp` as the answer to `get` (stored when the rules
    /// allow, as any `GET` answer); it is still the `POST`'s answer to its
    /// caller: a bypass, `stored` when it was kept.
    pub(super) async fn keep_post_answer(
        self: &std::sync::Arc<Self>,
        get: Box<Prepared>,
        mut resp: OriginResponse,
        line: &RequestLine<'_>,
    ) -> Answer {
        let forward_status = resp.status.as_u16();
        let bypass = CacheStatus::new(CacheOutcome::Bypass)
            .with_forward(Forward::Bypass)
            .with_forward_status(forward_status);
        let Some((digest, slot)) = self.locate(&get) else {
            return Ok(self.network_response(resp, bypass));
        };
        resp.method = Method::GET;
        let ex = Exchange {
            req_cc: self.request_directives(&get),
            req: get,
            line,
            digest,
            slot,
            read: Read::default(),
        };
        let mut r = self.complete(&ex, resp, Forward::Bypass).await?;
        r.cache_status = bypass.with_stored(r.cache_status.stored());
        Ok(r)
    }
}
