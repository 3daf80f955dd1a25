//! Stage 6, store: whether an answer may be kept (RFC 9111 §3 and the
//! client's options), until when (§4.2), and writing it — under its
//! variant key when it varies, under the final URL's key when it was
//! redirected (with a pointer from the request's key).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use respcache_core::{Entry, Key, Timestamp};

use super::Engine;
use super::exchange::Exchange;
use super::serve::version_code;
use crate::directives::Directives;
use crate::freshness;
use crate::meta::{BodyCheck, StoredMeta, VaryIndex, VaryMatch, WireResponse};
use crate::metrics::NotStored;
use crate::normalize::{vary_digest, vary_names};
use crate::response::CachedResponse;
use crate::rules::lifetime::{self, Freshness};
use crate::rules::storable::{self, Exchange as Stored, NotStorable};
use crate::rules::{age, range};
use crate::stats::Counters;
use crate::target::{REDIRECTS_REPOSITORY, digest_key};

/// A storable answer: its directives and the freshness its origin gives it.
pub(super) struct Verdict {
    pub(super) directives: Directives,
    pub(super) freshness: Freshness,
    /// How old it already was on arrival (RFC 9111 §4.2.3).
    pub(super) initial_age: Duration,
}

static NONCE: AtomicU64 = AtomicU64::new(0);

/// A nonce for a new `Vary` index: variants stored under an older index
/// (other header names) are never read again.
fn new_nonce(now: Timestamp) -> u64 {
    let n = NONCE.fetch_add(1, Ordering::Relaxed);
    let h = blake3::hash(&[now.as_millis().to_le_bytes(), n.to_le_bytes()].concat());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(b)
}

impl Engine {
    /// Whether an answer may be stored (RFC 9111 §3 and the client's
    /// options) and, if so, how fresh the origin says it is.
    ///
    /// With `Cache-Control` respected, a response with explicit freshness
    /// is judged by the HTTP rules alone, whatever its status; one whose
    /// lifetime would come from this client (default, per-URL or
    /// per-request expiry) or from the heuristic is stored only when its
    /// status is in `allowed_codes` (or, following the HTTP rules alone, when
    /// it is `public`: RFC 9111 §4.2.2). Without it, only `allowed_codes`
    /// count.
    pub(super) fn storability(
        &self,
        ex: &Exchange<'_>,
        status: StatusCode,
        headers: &HeaderMap,
        now: Timestamp,
    ) -> Result<Verdict, NotStorable> {
        let o = &self.options;
        let allowed_by_user = o.allowed_codes.contains(&status.as_u16());
        if !o.respect_cache_control {
            if !allowed_by_user {
                return Err(NotStorable::Status);
            }
            return Ok(Verdict {
                directives: Directives::default(),
                freshness: Freshness::Heuristic(Duration::ZERO),
                initial_age: Duration::ZERO,
            });
        }
        let directives = self.response_directives(headers);
        // The request's directives were parsed once, into the exchange.
        let explicit = lifetime::has_explicit(headers, &directives, o.shared);
        // A partial answer is kept where the lookup found nothing complete
        // (a stored partial one it replaces; without a lookup — a forced
        // refresh — it is not kept).
        let partial = status == StatusCode::PARTIAL_CONTENT
            && !ex.req.per.force_refresh
            && range::content_range(headers).is_some()
            && ex
                .read
                .found
                .as_ref()
                .is_none_or(|f| f.head.status == StatusCode::PARTIAL_CONTENT.as_u16());
        storable::check(Stored {
            status,
            response: &directives,
            request: &ex.req_cc,
            credentials: o.shared && o.rules.carries_credentials(&ex.req.headers, &ex.req.url),
            explicit,
            allowed_by_user,
            shared: o.shared,
            partial,
        })?;
        // A lifetime from this client or the heuristic: for the allowed
        // codes, or any `public` answer when following the HTTP rules alone.
        let heuristic_allowed = allowed_by_user || (o.public_heuristic && directives.public);
        if !explicit && !heuristic_allowed {
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
            initial_age: Duration::from_secs(age::initial(headers, now, now)),
        })
    }

    /// Stores `r` when the rules allow; returns where and until when.
    pub(super) async fn store(
        &self,
        ex: &Exchange<'_>,
        r: &CachedResponse,
    ) -> Option<(Key, Option<Timestamp>)> {
        let o = &self.options;
        let req = &ex.req;
        if ex.read.cache_failed {
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
        let verdict = match self.storability(ex, r.status, &r.headers, now) {
            Ok(v) => v,
            Err(why) => {
                tracing::debug!(reason = why.as_str(), "respcache-http: not stored");
                return self.not_stored(NotStored::from(why));
            }
        };
        // A partial answer is kept only where the lookup looked (not under
        // the final URL of a redirect, which may hold a complete one), and
        // only when its body is the range it names.
        if r.status == StatusCode::PARTIAL_CONTENT
            && (final_url != req.url || range::held(&r.headers, r.body.len() as u64).is_none())
        {
            return self.not_stored(NotStored::from(NotStorable::Status));
        }
        if let Some(filter) = &o.filter
            && !filter(r)
        {
            return self.not_stored(NotStored::Filter);
        }
        // Normalised only when the answer came from another URL (a miss
        // without a redirect pays for no URL normalisation here).
        let redirected = final_url != req.url
            && o.rules.normalize_url(&final_url) != o.rules.normalize_url(&req.url);
        let store_slot = if redirected {
            self.slot_for(&req.method, &final_url, &req.headers)
                .unwrap_or_else(|| ex.slot.clone())
        } else {
            ex.slot.clone()
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
        // Encoded from the response as it is: no owned copy of its headers.
        let meta_bytes = WireResponse {
            status: r.status.as_u16(),
            version: version_code(r.version),
            response_time: now.as_millis(),
            initial_age: verdict.initial_age.as_secs(),
            body: Some(BodyCheck::of(&r.body)),
            headers: o.rules.stored_headers(&r.headers),
            vary: vary.clone(),
            url: redacted_url.as_str().as_bytes(),
            method: req.method.as_str().as_bytes(),
        }
        .encode()
        .ok()?;
        let repo = store_slot.repository.clone();
        let key = match &vary {
            Some(v) if store_slot.variants => {
                let reuse = ex
                    .read
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
        let mut entry = Entry::new(key.clone(), now, r.body.clone())
            .with_expires_at(expires_at)
            .with_meta(meta_bytes)
            .with_tags(crate::tags::of(&r.headers, &o.tag_headers));
        entry.name = name;
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
            self.cache_put(self.target.redirects(), pointer, REDIRECTS_REPOSITORY)
                .await;
        }
        Some((key, expires_at))
    }

    /// Counts an answer the cache does not keep; `None`, for `store`.
    pub(super) fn not_stored<T>(&self, reason: NotStored) -> Option<T> {
        self.counters.metrics.not_stored(reason).increment(1);
        None
    }
}
