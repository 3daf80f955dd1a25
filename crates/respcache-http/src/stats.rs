//! Counters a program can read: [`CacheStats`], a snapshot of one client's
//! activity since it was built.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::status::CacheOutcome;

/// A snapshot of a client's counters (see [`CachedClient::stats`](crate::CachedClient::stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Requests answered (successfully or with an error).
    pub requests: u64,
    /// Answers served from a stored response without waiting for the
    /// origin: fresh hits, `max-stale` hits and `stale-while-revalidate`.
    pub hits: u64,
    /// Of the hits, those served stale (`max-stale`, `stale-while-revalidate`).
    pub stale_hits: u64,
    /// Requests that found nothing usable and went to the origin.
    pub misses: u64,
    /// Stored responses the origin confirmed with `304 Not Modified`.
    pub revalidations: u64,
    /// Requests that waited for an identical request in flight.
    pub coalesced: u64,
    /// Stale responses served because the origin failed.
    pub stale_if_error: u64,
    /// Requests that did not use the cache at all.
    pub bypassed: u64,
    /// Requests actually sent to the origin (redirect hops and background
    /// refreshes included).
    pub origin_requests: u64,
    /// Requests answered without an origin request of their own (hits and
    /// coalesced requests).
    pub origin_requests_saved: u64,
    /// Body bytes served from stored responses.
    pub bytes_from_cache: u64,
    /// Responses written to the cache.
    pub stored: u64,
    /// Cache operations that failed (logged; the request went on without
    /// the cache).
    pub cache_errors: u64,
    /// Stored entries whose metadata could not be decoded (treated as misses).
    pub undecodable: u64,
    /// Background refreshes started by `stale-while-revalidate`.
    pub background_refreshes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    hits: AtomicU64,
    stale_hits: AtomicU64,
    misses: AtomicU64,
    revalidations: AtomicU64,
    coalesced: AtomicU64,
    stale_if_error: AtomicU64,
    bypassed: AtomicU64,
    pub(crate) origin_requests: AtomicU64,
    bytes_from_cache: AtomicU64,
    pub(crate) stored: AtomicU64,
    pub(crate) cache_errors: AtomicU64,
    pub(crate) undecodable: AtomicU64,
    pub(crate) background_refreshes: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn bump(c: &AtomicU64) {
        inc(c);
    }

    /// Records one answered request.
    pub(crate) fn record(&self, outcome: CacheOutcome, body_len: usize) {
        inc(&self.requests);
        match outcome {
            CacheOutcome::Hit => inc(&self.hits),
            CacheOutcome::StaleHit | CacheOutcome::StaleWhileRevalidate => {
                inc(&self.hits);
                inc(&self.stale_hits);
            }
            CacheOutcome::Revalidated => inc(&self.revalidations),
            CacheOutcome::Miss | CacheOutcome::OnlyIfCachedMiss => inc(&self.misses),
            CacheOutcome::Coalesced => inc(&self.coalesced),
            CacheOutcome::StaleIfError => inc(&self.stale_if_error),
            CacheOutcome::Bypass => inc(&self.bypassed),
        }
        if outcome.body_from_cache() {
            self.bytes_from_cache
                .fetch_add(body_len as u64, Ordering::Relaxed);
        }
    }

    /// Records a request that ended in an error.
    pub(crate) fn record_error(&self) {
        inc(&self.requests);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let hits = get(&self.hits);
        let coalesced = get(&self.coalesced);
        CacheStats {
            requests: get(&self.requests),
            hits,
            stale_hits: get(&self.stale_hits),
            misses: get(&self.misses),
            revalidations: get(&self.revalidations),
            coalesced,
            stale_if_error: get(&self.stale_if_error),
            bypassed: get(&self.bypassed),
            origin_requests: get(&self.origin_requests),
            origin_requests_saved: hits + coalesced,
            bytes_from_cache: get(&self.bytes_from_cache),
            stored: get(&self.stored),
            cache_errors: get(&self.cache_errors),
            undecodable: get(&self.undecodable),
            background_refreshes: get(&self.background_refreshes),
        }
    }
}
