//! The engine: the cache's request path, over any origin [`Transport`]
//! (the built-in hyper client, or the service a [`CacheLayer`](crate::CacheLayer)
//! wraps). [`CachedClient`](crate::CachedClient) and
//! [`CacheService`](crate::CacheService) are its front doors.
//!
//! [`Engine::run`] takes a request through stages, a file each, all around
//! one per-request value, the [`Exchange`]:
//!
//! 1. [`lookup`]: the stored entry, the `Vary` index and the redirect
//!    pointer;
//! 2. [`decide`]: fresh, usable stale, or to the origin (RFC 9111 §4.2,
//!    RFC 5861, the request's directives);
//! 3. [`serve`]: a response built from a stored one;
//! 4. [`fetch`]: to the origin (coalesced with identical requests), and the
//!    answer completed;
//! 5. [`revalidate`]: the conditional request, the `304` merge, and
//!    `stale-if-error`;
//! 6. [`store`]: whether and how long the answer is kept, and writing it;
//! 7. [`invalidate`]: after unsafe methods (RFC 9111 §4.4), and
//!    [`post_answer`]: a `POST` answer kept for later `GET`s (RFC 9110
//!    §9.3.3);
//! 8. [`refresh`]: `stale-while-revalidate` in the background.
//!
//! Every cache call goes through [`calls`] (circuit breaker, deadline,
//! timing, errors logged and counted, never returned).

mod calls;
mod decide;
mod exchange;
mod fetch;
mod invalidate;
mod lookup;
mod post_answer;
mod refresh;
mod revalidate;
mod serve;
mod store;

use std::sync::Arc;

use http::{HeaderMap, Method};
use respcache_core::breaker::CircuitBreaker;
use respcache_core::single_flight::SingleFlight;
use respcache_core::{Clock, Timestamp};
use url::Url;

use crate::body::{self, RequestStream};
use crate::builder::{CacheMode, Options};
use crate::directives::Directives;
use crate::error::{Error, ErrorKind, Result};
use crate::freshness::{Lifetime, Rules};
use crate::line::RequestLine;
use crate::request::Prepared;
use crate::response::CachedResponse;
use crate::stats::Counters;
use crate::target::{Slot, Target};
use crate::transport::{BodyMode, Transport};

use self::decide::Step;
use self::exchange::Exchange;
pub use self::fetch::STREAMING_BUFFER_LIMIT;
use self::lookup::Read;
use self::refresh::{Background, OnePerKey};

/// What a request gets: a response, or the error of the HTTP layer.
pub(crate) type Answer = Result<CachedResponse>;

/// The cache's request path and everything it shares between requests.
pub(crate) struct Engine {
    pub(crate) options: Options,
    pub(crate) target: Box<dyn Target>,
    pub(crate) transport: Transport,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) counters: Counters,
    /// Identical requests to the origin in flight (one per key).
    pub(crate) flights: SingleFlight<Answer>,
    /// Keys with a background refresh running.
    pub(crate) refreshing: Arc<OnePerKey>,
    pub(crate) background: Background,
    /// Skips the cache while its backend is down.
    pub(crate) breaker: CircuitBreaker,
}

impl Engine {
    pub(crate) fn new(
        options: Options,
        target: Box<dyn Target>,
        transport: Transport,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Engine {
            breaker: CircuitBreaker::new(options.breaker),
            options,
            target,
            transport,
            clock,
            counters: Counters::default(),
            flights: SingleFlight::new(),
            refreshing: Arc::new(OnePerKey::default()),
            background: Background::default(),
        }
    }

    /// Takes one request through the stages.
    ///
    /// Not an `async fn`, which would keep `req` twice in the future (the
    /// argument and its local): the block uses the captured `req`.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    pub(crate) fn run<'a>(
        self: &'a Arc<Self>,
        mut req: Box<Prepared>,
        stream: Option<RequestStream>,
        line: &'a RequestLine<'_>,
    ) -> impl Future<Output = Answer> + Send + 'a {
        async move {
            if !self.caches_in(self.mode(&req), &req.method) {
                return Box::pin(self.bypass(req, stream, line)).await;
            }
            // The body of a request the cache may answer is part of its key:
            // it is read whole, up to the size limit; a larger one goes past
            // the cache, streaming on from what was read.
            if let Some(stream) = stream {
                let limit = self.options.max_body_size.unwrap_or(STREAMING_BUFFER_LIMIT);
                let idle = self.transport.time_limit(req.per.timeout);
                let read = Box::pin(body::read_up_to(stream, limit, idle))
                    .await
                    .map_err(|e| {
                        let kind = match e.kind() {
                            ErrorKind::Timeout => ErrorKind::Timeout,
                            _ => ErrorKind::InvalidRequest,
                        };
                        Error::new(kind, format!("the request body: {}", e.message()))
                            .with_url(line.text())
                    })?;
                match read {
                    body::Read::Whole(bytes) => req.body = bytes,
                    body::Read::Partial(prefix, rest) => {
                        let stream = Some(body::prefixed(prefix, rest));
                        return Box::pin(self.bypass(req, stream, line)).await;
                    }
                }
            }
            let Some((digest, slot)) = self.locate(&req) else {
                // No store for this request (a repository that does not match).
                return Box::pin(self.bypass(req, None, line)).await;
            };
            // The exchange is made after the lookup: its room for what the
            // lookup finds is not held while the lookup runs (the hit future
            // stays small).
            let read = if req.per.force_refresh {
                Read::default()
            } else {
                self.lookup(&slot, &req, &digest).await
            };
            let mut ex = Exchange {
                req_cc: self.request_directives(&req),
                req,
                line,
                digest,
                slot,
                read,
            };
            match self.decide(&ex) {
                Step::Serve(outcome) => {
                    if let Some(found) = ex.read.found.take() {
                        // Nothing reads the stored response after this: it is
                        // taken, not cloned.
                        return Ok(self.stored_response(
                            *found,
                            ex.req.url,
                            &ex.req.method,
                            outcome,
                        ));
                    }
                }
                Step::ServeAndRefresh => return Ok(self.serve_and_refresh(&ex)),
                Step::Origin => {}
            }
            if ex.only_if_cached() {
                return Ok(self.only_if_cached_miss(&ex));
            }
            // The origin paths are boxed: a hit moves and polls a small future.
            Box::pin(self.fetch_coalesced(&ex)).await
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The HTTP rules this client applies.
    fn rules(&self) -> Rules {
        let o = &self.options;
        Rules {
            respect_cache_control: o.respect_cache_control,
            shared: o.shared,
            stale_while_revalidate: o.stale_while_revalidate,
            stale_if_error: o.stale_if_error,
            stale_when_unreachable: o.stale_when_unreachable,
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

    /// Whether requests of `method` go through the cache (a HEAD through
    /// the GET it is answered from), in the client's mode.
    pub(crate) fn caches(&self, method: &Method) -> bool {
        self.caches_in(self.options.mode, method)
    }

    fn caches_in(&self, mode: CacheMode, method: &Method) -> bool {
        let allowed = &self.options.allowed_methods;
        let lookup = if *method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        mode != CacheMode::Disabled && allowed.contains(method) && allowed.contains(lookup)
    }

    /// A request's cache mode: its own, else the client's.
    fn mode(&self, req: &Prepared) -> CacheMode {
        req.per.mode.unwrap_or(self.options.mode)
    }

    /// Whether `req`'s answers are written to the cache.
    fn writes(&self, req: &Prepared) -> bool {
        self.mode(req) == CacheMode::ReadWrite
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

    /// Where the answer to a body-less `method` request for `url` lives.
    fn slot_for(&self, method: &Method, url: &Url, headers: &HeaderMap) -> Option<Slot> {
        self.digest_and_slot(method, url, headers).1
    }

    /// The digest of a body-less `method` request for `url` (its redirect
    /// pointer's key) and where its answer lives; the URL normalised once.
    pub(crate) fn digest_and_slot(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
    ) -> (String, Option<Slot>) {
        let rules = &self.options.rules;
        let normalized = rules.normalize_url(url);
        let digest = rules.digest_normalized(method, &normalized, b"", headers);
        let slot = self.target.slot(method, &normalized, &digest, headers);
        (digest, slot)
    }

    /// The lifetimes the client gives an answer for `url` that the origin
    /// gives none.
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
}
