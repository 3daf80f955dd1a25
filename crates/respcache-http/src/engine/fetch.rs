//! Stage 4, fetch: the request goes to the origin — once for all identical
//! requests in flight — conditionally when something is stored, and the
//! answer is completed: its body read when the cache may keep it, stored
//! when the rules allow, handed back as a response. Requests the cache does
//! not answer pass by ([`Engine::bypass`]).

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, ETAG, LAST_MODIFIED};
use http::{HeaderMap, StatusCode};

use respcache_core::cross_process;

use super::decide::Step;
use super::exchange::Exchange;
use super::{Answer, Engine};
use crate::body::{self, RequestStream};
use crate::budget;
use crate::error::{Error, ErrorKind, Result};
use crate::freshness;
use crate::line::RequestLine;
use crate::metrics::NotStored;
use crate::request::Prepared;
use crate::response::{CacheKey, CachedResponse, Tail};
use crate::rules::lifetime::Freshness;
use crate::status::{CacheOutcome, CacheStatus, Forward};
use crate::transport::{BodyMode, OriginBody, OriginRequest, OriginResponse};

/// In streaming mode, the most of a storable body read into memory when
/// neither `max_body_size` nor the backend sets a limit; a larger body
/// streams on and is not stored.
pub const STREAMING_BUFFER_LIMIT: usize = 64 * 1024 * 1024;

/// The outcome of a request whose work panicked, for it and every request
/// coalesced with it.
pub(super) fn panicked(_: Box<dyn Any + Send>) -> Answer {
    Err(Error::new(
        ErrorKind::Internal,
        "the request panicked on its way to the origin",
    ))
}

impl Engine {
    /// Fetches once for all identical requests in flight: the first leads,
    /// the others get a copy of its answer (marked `Coalesced`), or ask
    /// themselves when it streams to the leader alone.
    pub(super) async fn fetch_coalesced(self: &Arc<Self>, ex: &Exchange<'_>) -> Answer {
        let (answer, leader) = self
            .flights
            .run(&ex.coalesce_key(self), || self.fetch_across(ex), panicked)
            .await;
        if leader {
            answer
        } else if answer.as_ref().is_ok_and(|r| r.tail.is_streaming()) {
            // The leader's answer streams to the leader alone: ask again.
            self.fetch(ex).await
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

    /// [`fetch`](Self::fetch), coordinated with the other processes that
    /// share the backend when the client asks for it
    /// ([`cross_process`](crate::CachedClientBuilder::cross_process)): the
    /// holder of the key's lease fetches, the others serve what it stores.
    async fn fetch_across(self: &Arc<Self>, ex: &Exchange<'_>) -> Answer {
        let req = &ex.req;
        let Some(options) = self.options.cross_process.filter(|_| {
            !ex.read.cache_failed
                && self.writes(req)
                && !(req.per.refresh || req.per.force_refresh || ex.req_cc.no_cache)
        }) else {
            return self.fetch(ex).await;
        };
        let store = &ex.slot.store;
        let key = &ex.slot.key;
        // What another process stored meanwhile, if this request may be
        // answered with it.
        let stored = || async {
            let read = self.lookup(&ex.slot, req, &ex.digest).await;
            if read.cache_failed {
                return Err(respcache_core::Error::new(
                    respcache_core::ErrorKind::Unavailable,
                    "the cache failed while waiting for another process",
                ));
            }
            Ok(match self.decide_on(read.found.as_deref(), ex) {
                Step::Serve(_) => read.found.map(|found| {
                    self.stored_response(
                        *found,
                        req.url.clone(),
                        &req.method,
                        CacheOutcome::Coalesced,
                    )
                }),
                Step::ServeAndRefresh | Step::Origin => None,
            })
        };
        let started = Instant::now();
        let turn = cross_process::take_or_wait(store.as_ref(), key, &options, stored).await;
        self.counters.metrics.lease_wait.record(started.elapsed());
        match turn {
            Ok(cross_process::Step::Found(r)) => Ok(r),
            Ok(cross_process::Step::Compute(token)) => {
                let answer = self.fetch(ex).await;
                if let Some(token) = token {
                    // The answer is stored: the others find it on their next
                    // poll whether or not the lease is freed yet, so the
                    // release does not hold this answer back (one round trip
                    // less per miss on a server backend).
                    let (store, key) = (Arc::clone(store), key.clone());
                    tokio::spawn(async move {
                        cross_process::release(store.as_ref(), &key, &token).await;
                    });
                }
                answer
            }
            Err(e) => {
                self.cache_error("lease", &ex.slot.repository, &e);
                self.fetch(ex).await
            }
        }
    }

    /// Goes to the origin (conditionally when a stored response has
    /// validators) and turns the answer into a response: a `304` freshens
    /// the stored one, a failure or `5xx` may be answered stale
    /// (`stale-if-error`), anything else is completed and stored when the
    /// rules allow.
    pub(super) async fn fetch(self: &Arc<Self>, ex: &Exchange<'_>) -> Answer {
        let req = &ex.req;
        let found = ex.read.found.as_deref().filter(|_| !ex.is_head());
        let forward = if req.per.force_refresh || req.per.refresh || ex.req_cc.no_cache {
            Forward::Request
        } else if ex.read.found.is_some() {
            Forward::Stale
        } else if ex.read.vary_miss {
            Forward::VaryMiss
        } else {
            Forward::UriMiss
        };
        let mut origin = req.origin_request();
        let conditional =
            found.is_some_and(|f| super::revalidate::ask_conditionally(&mut origin, f));
        let result = self
            .send_origin(origin, ex.line, Self::body_mode(req))
            .await;
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                let unreachable = matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout);
                return match self.stale_if_error(ex, forward, None, unreachable) {
                    Some(r) => {
                        tracing::info!(error = %e, "respcache-http: origin failed; serving a stale response (stale-if-error)");
                        Ok(r)
                    }
                    None => Err(e),
                };
            }
        };
        if resp.status.is_server_error()
            && let Some(r) = self.stale_if_error(ex, forward, Some(resp.status.as_u16()), false)
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
            return self.freshen(ex, f, resp, forward).await;
        }
        // A storable body is read in `complete` when streaming: a body that
        // fails there is the origin failing, as when `send()` reads it.
        match self.complete(ex, resp, forward).await {
            Err(e) => match self.stale_if_error(ex, forward, None, false) {
                Some(r) => {
                    tracing::info!(error = %e, "respcache-http: origin failed; serving a stale response (stale-if-error)");
                    Ok(r)
                }
                None => Err(e),
            },
            ok => ok,
        }
    }

    /// A full answer from the origin: invalidate after unsafe methods,
    /// freshen the stored answer after a `HEAD`, store when the rules
    /// allow, and build the response.
    pub(super) async fn complete(
        self: &Arc<Self>,
        ex: &Exchange<'_>,
        mut resp: OriginResponse,
        forward: Forward,
    ) -> Answer {
        let req = &ex.req;
        if super::invalidate::is_unsafe(&req.method) {
            self.invalidate_after(req, &resp).await;
        }
        // A HEAD the cache sent (its stored GET answer stale, or the request
        // asked): the answer freshens the stored one or marks it stale.
        if ex.is_head()
            && resp.status == StatusCode::OK
            && self.writes(req)
            && let Some(f) = ex.read.found.as_deref()
            && f.head.status == StatusCode::OK.as_u16()
        {
            self.freshen_from_head(ex, f, &resp.url, &resp.headers)
                .await;
        }
        // Streaming: a body the cache would keep and could serve again is
        // read into memory, up to the store limit; any other body streams
        // from its first byte.
        if matches!(resp.body, OriginBody::Unread(_)) {
            let limit = self.store_limit().unwrap_or(STREAMING_BUFFER_LIMIT);
            let length = content_length(&resp.headers);
            if self.worth_buffering(ex, &resp, limit)
                && let Some(held) =
                    budget::for_body(self.options.buffer_budget.as_ref(), length, limit)
                && let OriginBody::Unread(rest) =
                    std::mem::replace(&mut resp.body, OriginBody::Whole(Bytes::new()))
            {
                let idle = self.transport.time_limit(req.per.timeout);
                resp.body = match body::read_up_to(rest, limit, idle)
                    .await
                    .map_err(|e| e.with_url(ex.line()))?
                {
                    body::Read::Whole(b) => OriginBody::Whole(held.attach(b)),
                    body::Read::Partial(prefix, rest) => {
                        OriginBody::Partial(held.attach(prefix), rest)
                    }
                };
            }
        }
        let status = CacheStatus::new(CacheOutcome::Miss)
            .with_forward(forward)
            .with_forward_status(resp.status.as_u16());
        let final_method = resp.method.clone();
        let mut r = self.network_response(resp, status);
        r.cache_key = CacheKey::new(ex.slot.key.clone());
        if ex.is_head() || final_method != req.method || !self.writes(req) || r.tail.is_streaming()
        {
            if r.tail.is_streaming() && self.writes(req) {
                self.not_stored::<()>(NotStored::Streamed);
            }
            return Ok(r);
        }
        if let Some((key, expires_at)) = self.store(ex, &r).await {
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
    /// for a while, revalidatable, or usable stale (an explicit lifetime
    /// already past on arrival is still one a request's `max-stale` may
    /// accept). An answer stale at once with nothing to revalidate with
    /// (`no-cache` alone, no cache headers at all) and event streams pass on
    /// at once instead.
    fn worth_buffering(&self, ex: &Exchange<'_>, resp: &OriginResponse, limit: usize) -> bool {
        let o = &self.options;
        let req = &ex.req;
        let event_stream = resp
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
            });
        if event_stream
            || ex.is_head()
            || resp.method != req.method
            || !self.writes(req)
            || content_length(&resp.headers).is_some_and(|n| n > limit as u64)
            || crate::normalize::vary_names(&resp.headers).is_none()
        {
            return false;
        }
        let now = self.now();
        let Ok(verdict) = self.storability(ex, resp.status, &resp.headers, now) else {
            return false;
        };
        let directives = verdict.directives;
        // Aged past an explicit lifetime on the way: a request's
        // `max-stale` may still take it, as may a client while the origin
        // is unreachable.
        let explicit_stale_usable = matches!(verdict.freshness, Freshness::Explicit(_))
            && directives.allows_stale(o.shared);
        let expires_at = freshness::expires_at(
            self.lifetime(req, &ex.slot, &resp.url),
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
        fresh || validators || usable_stale || explicit_stale_usable
    }

    /// A request the cache does not answer: straight to the origin (its
    /// body streaming), invalidating after an unsafe method; a `POST`
    /// answer that represents its URL is kept for later `GET`s.
    pub(super) async fn bypass(
        self: &Arc<Self>,
        req: Box<Prepared>,
        stream: Option<RequestStream>,
        line: &RequestLine<'_>,
    ) -> Answer {
        let origin = req.origin_request();
        let started = Instant::now();
        let resp = self
            .transport
            .send(origin, stream, line, Self::body_mode(&req))
            .await;
        self.count_hops(&resp, started);
        let resp = resp?;
        if super::invalidate::is_unsafe(&req.method) {
            self.invalidate_after(&req, &resp).await;
        }
        if let Some(get) = self.get_answered_by_post(&req, &resp) {
            return self.keep_post_answer(get, resp, line).await;
        }
        let status = CacheStatus::new(CacheOutcome::Bypass)
            .with_forward(Forward::Bypass)
            .with_forward_status(resp.status.as_u16());
        Ok(self.network_response(resp, status))
    }

    /// An origin answer as a response (its body whole, or streaming on).
    pub(super) fn network_response(
        &self,
        resp: OriginResponse,
        status: CacheStatus,
    ) -> CachedResponse {
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

    /// Sends a request (its body whole) to the origin, counted.
    pub(super) async fn send_origin(
        &self,
        origin: OriginRequest,
        line: &RequestLine<'_>,
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
}

/// A message's `Content-Length`, when it has one that parses.
pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
