//! Stage 5, revalidate: the conditional request for a stored response
//! (RFC 9111 §4.3.1), the `304` that freshens it (§4.3.3–4.3.4), and the
//! stored response served stale when the origin fails (`stale-if-error`,
//! RFC 5861 §4; and while it cannot be reached, when the client allows).

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use http::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use respcache_core::Entry;
use url::Url;

use super::exchange::Exchange;
use super::fetch::content_length;
use super::lookup::Found;
use super::{Answer, Engine};
use crate::builder::Options;
use crate::freshness;
use crate::meta::{Head, ResponseMeta, StoredMeta, header_list};
use crate::response::CachedResponse;
use crate::rules::storable::NotStorable;
use crate::rules::{age, conditional, lifetime};
use crate::stats::Counters;
use crate::status::{CacheOutcome, Forward};
use crate::target::Slot;
use crate::transport::{OriginRequest, OriginResponse};

/// The headers a 304 must not change (RFC 9111 §3.2): `Content-Length`
/// always, `Content-Range` as the RFC allows (it is what a stored partial
/// answer is cut by). `Content-Encoding` is updated: only a cache that
/// decoded the stored bytes may keep it, and these are the origin's own.
/// Hop-by-hop headers never reach the stored list
/// ([`stored_headers`](crate::normalize::KeyRules::stored_headers) leaves
/// them out).
const NOT_UPDATED_BY_304: [&str; 2] = ["content-length", "content-range"];

/// Makes `origin` conditional on the stored response's validators (the
/// cache revalidates its own response with its own validators; a caller's
/// preconditions are answered from the result, RFC 9111 §4.3.1–4.3.2).
/// Whether it has any.
pub(super) fn ask_conditionally(origin: &mut OriginRequest, f: &Found) -> bool {
    origin.headers.remove(IF_NONE_MATCH);
    origin.headers.remove(IF_MODIFIED_SINCE);
    let mut conditional = false;
    for etag in f.head.headers.get_all(ETAG) {
        origin.headers.append(IF_NONE_MATCH, etag.clone());
        conditional = true;
    }
    if let Some(lm) = f.head.headers.get(LAST_MODIFIED) {
        origin.headers.insert(IF_MODIFIED_SINCE, lm.clone());
        conditional = true;
    }
    conditional
}

impl Engine {
    /// The stored response, when the origin failed (`status`: its `5xx`;
    /// `unreachable`: it could not be reached) and the rules let the cache
    /// serve it stale.
    pub(super) fn stale_if_error(
        &self,
        ex: &Exchange<'_>,
        forward: Forward,
        status: Option<u16>,
        unreachable: bool,
    ) -> Option<CachedResponse> {
        let f = ex.read.found.as_deref().filter(|_| !ex.is_head())?;
        let directives = self.response_directives(&f.head.headers);
        let now = self.now();
        let stored = self.stored_view(f, &directives, now);
        if !freshness::stale_if_error_allows(stored, &ex.req_cc, self.rules(), unreachable, now) {
            return None;
        }
        let mut r = self.stored_response(
            f.clone(),
            ex.req.url.clone(),
            &ex.req.method,
            CacheOutcome::StaleIfError,
        );
        let mut st = r.cache_status.with_forward(forward);
        if let Some(s) = status {
            st = st.with_forward_status(s);
        }
        r.cache_status = st;
        Some(r)
    }

    /// A `304` for the stored response `f`: checks that it selects `f`,
    /// merges its headers into the stored ones, recomputes the expiry, and
    /// updates the entry's meta and expiry in place (`Store::set_meta`: the
    /// body is not sent again; an entry gone meanwhile stays gone).
    /// A `304` that cannot freshen `f` (undecodable meta, validators that
    /// do not select it) sends the request again without conditions.
    pub(super) async fn freshen(
        self: &Arc<Self>,
        ex: &Exchange<'_>,
        f: &Found,
        resp: OriginResponse,
        forward: Forward,
    ) -> Answer {
        // RFC 9111 §4.3.4: a 304 whose validators do not select the stored
        // response cannot freshen it.
        if !conditional::selects(&f.head.headers, &resp.headers) {
            return self.refetch(ex, forward).await;
        }
        let Some((fresh, stored)) = self.update_stored(ex, f, &resp.headers).await else {
            return self.refetch(ex, forward).await;
        };
        let req = &ex.req;
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

    /// A `200` to a `HEAD` the cache sent, for the stored `GET` answer `f`
    /// (RFC 9111 §4.3.5), from `url`: when it came from the stored answer's
    /// own URL and every validator it carries (`ETag`, `Last-Modified`) and
    /// its `Content-Length` match the stored ones, its headers update the
    /// stored answer as a `304`'s would; otherwise the stored answer is
    /// stale from now on.
    pub(super) async fn freshen_from_head(
        &self,
        ex: &Exchange<'_>,
        f: &Found,
        url: &Url,
        head: &HeaderMap,
    ) {
        // A redirect pointer holds the final URL as logged (secrets
        // redacted): the two are compared in that form.
        let rules = &self.options.rules;
        let same_url = match &f.via_redirect {
            Some(stored) => rules.redact_url(url).as_str() == stored.as_str(),
            None => url == &ex.req.url,
        };
        if same_url && head_matches(f, head) {
            let _ = self.update_stored(ex, f, head).await;
            return;
        }
        self.mark_stale(ex, f).await;
    }

    /// Makes the stored answer `f` stale from now on (its payload and meta
    /// untouched), unless it is already.
    async fn mark_stale(&self, ex: &Exchange<'_>, f: &Found) {
        let now = self.now();
        if f.entry.expires_at.is_some_and(|e| e <= now) {
            return;
        }
        let store_slot = self.slot_of(ex, f);
        self.cache_set_expiry(&store_slot.store, &f.key, now, &store_slot.repository)
            .await;
    }

    /// Merges `fresh` (a `304`'s or a `HEAD` answer's headers) into the
    /// stored response `f`, recomputes its expiry and writes the new meta
    /// and expiry in place. The freshened stored response and whether it
    /// was written; `None` when `f`'s meta cannot be read.
    async fn update_stored(
        &self,
        ex: &Exchange<'_>,
        f: &Found,
        fresh: &HeaderMap,
    ) -> Option<(Found, bool)> {
        let o = &self.options;
        let req = &ex.req;
        let now = self.now();
        let url = f.via_redirect.as_ref().unwrap_or(&req.url);
        let old = self.full_meta(f, url, &ex.slot.repository)?;
        let merged = merge_304(&old.headers, fresh, o);
        let merged_map = ResponseMeta {
            headers: merged.clone(),
            ..old.clone()
        }
        .header_map();
        let directives = self.response_directives(&merged_map);
        let status = old.status_code();
        let origin = lifetime::freshness(
            status,
            &merged_map,
            &directives,
            o.shared,
            now,
            o.heuristic_fraction,
        );
        // The age counts afresh from the answer (its own `Date` and `Age`).
        let initial_age = age::initial(fresh, now, now);
        let expires_at = freshness::expires_at(
            self.lifetime(req, &ex.slot, url),
            o.respect_cache_control,
            &directives,
            origin,
            Duration::from_secs(initial_age),
            now,
        );
        let meta = ResponseMeta {
            headers: merged,
            response_time: now.as_millis(),
            initial_age,
            ..old
        };
        let mut entry = Entry {
            expires_at,
            ..f.entry.clone()
        };
        let mut stored = false;
        // The updated answer is written only where the answer it was updated
        // from could be kept (RFC 9111 §3). When the request is why not (its
        // `no-store`; in a shared cache its credentials without `public` in
        // the answer), the stored answer is left as it is; when the answer
        // is (`private` in a shared cache, its own `no-store`...), the
        // stored answer others are served is made stale.
        if self.writes(req) {
            let refusal = self.storability(ex, status, &merged_map, now).err();
            if ex.req_cc.no_store || refusal == Some(NotStorable::Authorization) {
                entry.expires_at = f.entry.expires_at;
            } else if refusal.is_some() {
                self.mark_stale(ex, f).await;
                entry.expires_at = Some(f.entry.expires_at.filter(|e| *e <= now).unwrap_or(now));
            } else if let Ok(bytes) = StoredMeta::Response(Box::new(meta.clone())).encode() {
                let store_slot = self.slot_of(ex, f);
                stored = self
                    .cache_set_meta(
                        &store_slot.store,
                        &f.key,
                        bytes,
                        expires_at,
                        &store_slot.repository,
                    )
                    .await;
                if stored {
                    Counters::bump(&self.counters.stored);
                }
            }
        }
        let fresh = Found {
            entry,
            head: Head::of(&meta),
            key: f.key.clone(),
            via_redirect: f.via_redirect.clone(),
        };
        Some((fresh, stored))
    }

    /// Where `f` is stored: the request's slot, or its final URL's (under
    /// the method answers are stored for: a HEAD's is the GET's) when it was
    /// found through a redirect pointer.
    fn slot_of(&self, ex: &Exchange<'_>, f: &Found) -> Slot {
        match &f.via_redirect {
            Some(final_url) => self
                .slot_for(
                    &super::exchange::lookup_method(&ex.req.method),
                    final_url,
                    &ex.req.headers,
                )
                .unwrap_or_else(|| ex.slot.clone()),
            None => ex.slot.clone(),
        }
    }

    /// Asks the origin again without conditions, and completes with the
    /// answer (after a `304` that cannot freshen the stored response).
    async fn refetch(self: &Arc<Self>, ex: &Exchange<'_>, forward: Forward) -> Answer {
        let origin = ex.req.origin_request();
        let full = self
            .send_origin(origin, ex.line, Self::body_mode(&ex.req))
            .await?;
        self.complete(ex, full, forward).await
    }
}

/// Whether a `HEAD` answer describes the stored answer `f` (RFC 9111
/// §4.3.5): the validators it carries select it (as a `304`'s would) and a
/// `Last-Modified` it carries is the stored one's (the `ETag` alone decides
/// for a `304`), and its `Content-Length`, when it has one, is the stored
/// body's length.
fn head_matches(f: &Found, head: &HeaderMap) -> bool {
    if !conditional::selects(&f.head.headers, head) {
        return false;
    }
    if let Some(lm) = head.get(LAST_MODIFIED)
        && f.head.headers.get(LAST_MODIFIED) != Some(lm)
    {
        return false;
    }
    match content_length(head) {
        None => true,
        Some(n) => content_length(&f.head.headers)
            .or(f.head.body.as_ref().map(|b| b.len))
            .is_none_or(|stored| stored == n),
    }
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
    // What the 304 brings, as it would be stored: its hop-by-hop headers
    // (and those its `Connection` names) neither replace nor join the
    // stored ones.
    let brought = header_list(&o.rules.stored_headers(fresh));
    let replaced = |name: &str| {
        name == "age"
            || (brought.iter().any(|(n, _)| n == name) && !NOT_UPDATED_BY_304.contains(&name))
    };
    let mut out: Vec<(String, Vec<u8>)> = stored
        .iter()
        .filter(|(n, _)| !replaced(n))
        .cloned()
        .collect();
    out.extend(brought.iter().filter(|(n, _)| replaced(n)).cloned());
    out
}
