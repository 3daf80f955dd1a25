//! Stage 1, lookup: what the cache holds for a request — the entry at its
//! key, the variant a `Vary` index there points to, else the entry of the
//! final URL its redirect pointer names — checked against its meta (the
//! request's `Vary` values, the body's length and checksum).

use http::{HeaderMap, Method, StatusCode};
use respcache_core::{Entry, ErrorKind as CoreErrorKind, Key};
use url::Url;

use super::Engine;
use super::calls::CacheFailed;
use crate::meta::{Head, MetaError, ResponseMeta, StoredHead, StoredMeta, VaryIndex};
use crate::normalize::vary_digest;
use crate::request::Prepared;
use crate::rules::{conditional, range};
use crate::stats::Counters;
use crate::stored_heads;
use crate::target::{REDIRECTS_REPOSITORY, Slot, digest_key};

/// A stored response found for a request.
#[derive(Clone)]
pub(crate) struct Found {
    /// The entry (its meta bytes hold the whole [`ResponseMeta`]).
    pub(crate) entry: Entry,
    /// What serving it needs, decoded.
    pub(crate) head: Head,
    /// Where it is stored (a variant key under `Vary`).
    pub(crate) key: Key,
    /// The final URL when it was found through a redirect pointer.
    pub(crate) via_redirect: Option<Url>,
}

/// What the cache holds for a request.
#[derive(Clone, Default)]
pub(crate) struct Read {
    /// Boxed: a `Read` is held by the lookup's futures and the exchange;
    /// a pointer keeps them ~450 bytes smaller than the entry and head
    /// inline, for one allocation on a hit.
    pub(crate) found: Option<Box<Found>>,
    /// The vary index at the request's primary key, if any.
    pub(crate) index: Option<VaryIndex>,
    /// Something is stored for the URL, but not this variant.
    pub(crate) vary_miss: bool,
    /// A cache call failed or was skipped: no more cache calls for this
    /// request (no redirect lookup, no store).
    pub(crate) cache_failed: bool,
}

impl Read {
    fn failed() -> Self {
        Read {
            cache_failed: true,
            ..Read::default()
        }
    }
}

// A short-lived local of the read path: boxing the head would cost a hit
// an allocation for nothing.
#[allow(clippy::large_enum_variant)]
enum Decoded {
    /// No meta: an entry written by a `Repository` directly.
    Raw,
    Meta(StoredHead),
    Undecodable,
}

impl Engine {
    /// What the cache holds for a request: its own slot, else — when this
    /// client's answers may come from another URL — the slot of the final
    /// URL its redirect pointer names.
    pub(super) async fn lookup(&self, slot: &Slot, req: &Prepared, digest: &str) -> Read {
        let mut read = self.read_slot(slot, &req.url, &req.headers).await;
        keep_what_answers(&mut read, req);
        // A client that never gets an answer from another URL never
        // answers through a redirect pointer (another client sharing the
        // cache may have written one).
        if read.found.is_some() || read.cache_failed || !self.transport.may_redirect() {
            return read;
        }
        // Boxed: a hit does not carry the redirect lookup in its future.
        let mut via = Box::pin(self.lookup_redirect(read, req, digest)).await;
        keep_what_answers(&mut via, req);
        via
    }

    /// The redirect half of [`lookup`](Self::lookup): the slot of the final
    /// URL the request's redirect pointer names, else `read` unchanged.
    async fn lookup_redirect(&self, read: Read, req: &Prepared, digest: &str) -> Read {
        let method = &super::exchange::lookup_method(&req.method);
        let pointer_key = digest_key(method, digest);
        let pointer = match self
            .cache_get(self.target.redirects(), &pointer_key, REDIRECTS_REPOSITORY)
            .await
        {
            Ok(Some(pointer)) => pointer,
            Ok(None) => return read,
            Err(CacheFailed) => {
                return Read {
                    cache_failed: true,
                    ..read
                };
            }
        };
        let Some(final_url) = std::str::from_utf8(&pointer.payload)
            .ok()
            .and_then(|s| Url::parse(s).ok())
        else {
            return read;
        };
        let Some(final_slot) = self.slot_for(method, &final_url, &req.headers) else {
            return read;
        };
        let mut via = self.read_slot(&final_slot, &final_url, &req.headers).await;
        match via.found.as_mut() {
            Some(f) => {
                f.via_redirect = Some(final_url);
                via.index = read.index;
                via
            }
            None => Read {
                cache_failed: via.cache_failed,
                ..read
            },
        }
    }

    async fn read_slot(&self, slot: &Slot, url: &Url, headers: &HeaderMap) -> Read {
        let repo = &*slot.repository;
        // The entry and its decoded head live in this block: neither is
        // held across the variant's read below (the hit future stays small).
        let index = {
            let entry = match self.cache_get(&slot.store, &slot.key, repo).await {
                Ok(Some(entry)) => entry,
                Ok(None) => return Read::default(),
                Err(CacheFailed) => return Read::failed(),
            };
            match self.decode(&entry, repo) {
                Decoded::Undecodable => return Read::default(),
                Decoded::Raw => {
                    let now = self.now();
                    // As before the head was built without a policy: served
                    // only when the URL is one a policy can be made for.
                    let found = if entry.is_fresh(now) && url.as_str().parse::<http::Uri>().is_ok()
                    {
                        let head = raw_head(&entry);
                        self.found(entry, head, slot.key.clone(), headers, repo)
                    } else {
                        None
                    };
                    return Read {
                        found,
                        ..Read::default()
                    };
                }
                Decoded::Meta(StoredHead::Response(head)) => {
                    let found = self.found(entry, head, slot.key.clone(), headers, repo);
                    return Read {
                        vary_miss: found.is_none(),
                        found,
                        ..Read::default()
                    };
                }
                Decoded::Meta(StoredHead::VaryIndex(index)) => index,
            }
        };
        let vkey = self
            .target
            .variant_key(slot, index.nonce, &vary_digest(&index.names, headers));
        let variant = self.cache_get(&slot.store, &vkey, repo).await;
        let cache_failed = variant.is_err();
        let found = match variant {
            Ok(Some(variant)) => match self.decode(&variant, repo) {
                Decoded::Meta(StoredHead::Response(head)) => {
                    self.found(variant, head, vkey, headers, repo)
                }
                _ => None,
            },
            _ => None,
        };
        Read {
            vary_miss: found.is_none(),
            found,
            index: Some(index),
            cache_failed,
        }
    }

    fn decode(&self, entry: &Entry, repository: &str) -> Decoded {
        let Some(bytes) = &entry.meta else {
            return Decoded::Raw;
        };
        match stored_heads::decode(bytes) {
            Ok(m) => Decoded::Meta(m),
            Err(e) => {
                self.undecodable(repository, &e);
                Decoded::Undecodable
            }
        }
    }

    /// The stored response, if it is the request's variant and its body is
    /// the one its meta was written for.
    fn found(
        &self,
        entry: Entry,
        head: Head,
        key: Key,
        headers: &HeaderMap,
        repository: &str,
    ) -> Option<Box<Found>> {
        if let Some(v) = &head.vary
            && vary_digest(&v.names, headers) != v.digest
        {
            return None;
        }
        if let Some(check) = &head.body
            && !check.matches(&entry.payload)
        {
            // The payload is not the body this meta was written for
            // (replaced or damaged): a counted miss, never served.
            self.undecodable(
                repository,
                &MetaError("the stored body does not match its length and checksum".into()),
            );
            return None;
        }
        Some(Box::new(Found {
            entry,
            head,
            key,
            via_redirect: None,
        }))
    }

    /// Counts meta that does not decode (an undecodable entry is a miss).
    pub(super) fn undecodable(&self, repository: &str, e: &MetaError) {
        Counters::bump(&self.counters.undecodable);
        let err = respcache_core::Error::new(CoreErrorKind::Codec, format!("HTTP meta: {}", e.0));
        respcache_core::stats::record_undecodable(self.target.backend_name(), repository, &err);
    }

    /// The whole meta of a stored response, for a `304`; `None`, counted
    /// as undecodable, when it does not decode.
    pub(super) fn full_meta(&self, f: &Found, url: &Url, repository: &str) -> Option<ResponseMeta> {
        let Some(bytes) = &f.entry.meta else {
            return Some(self.raw_meta(&f.entry, url));
        };
        match StoredMeta::decode(bytes) {
            Ok(StoredMeta::Response(m)) => Some(*m),
            Ok(StoredMeta::VaryIndex(_)) => {
                self.undecodable(
                    repository,
                    &MetaError("a vary index, not a response".into()),
                );
                None
            }
            Err(e) => {
                self.undecodable(repository, &e);
                None
            }
        }
    }

    /// A `ResponseMeta` for an entry a `Repository` wrote without one: a
    /// plain 200 with no headers, received when it was cached.
    fn raw_meta(&self, entry: &Entry, url: &Url) -> ResponseMeta {
        ResponseMeta {
            status: 200,
            headers: Vec::new(),
            url: self.options.rules.redact_url(url).to_string(),
            method: Method::GET.to_string(),
            response_time: entry.cached_at.as_millis(),
            initial_age: 0,
            body: None,
            vary: None,
            version: 11,
        }
    }
}

/// The head of an entry a `Repository` wrote without meta: a plain 200
/// with no headers, received when it was cached.
fn raw_head(entry: &Entry) -> Head {
    Head {
        status: 200,
        version: 11,
        response_time: entry.cached_at.as_millis(),
        initial_age: 0,
        body: None,
        headers: HeaderMap::new(),
        vary: None,
    }
}

/// Drops what `read` found when it cannot answer `req` (see [`answers`]).
fn keep_what_answers(read: &mut Read, req: &Prepared) {
    if read.found.as_deref().is_some_and(|f| !answers(f, req)) {
        read.found = None;
    }
}

/// Whether a stored response may answer `req`: a complete one may; a
/// partial one (`206`, RFC 9111 §3.3) only a GET for a range within the
/// bytes it holds, without `If-None-Match` / `If-Modified-Since` (those go
/// to the origin).
fn answers(found: &Found, req: &Prepared) -> bool {
    if found.head.status != StatusCode::PARTIAL_CONTENT.as_u16() {
        return true;
    }
    req.method == Method::GET
        && !conditional::is_conditional(&req.headers)
        && range::content_range(&found.head.headers)
            .and_then(|held| range::within(&req.headers, &found.head.headers, held))
            .is_some()
}
