//! Counters a program can read: [`CacheStats`], a snapshot of one client's
//! activity since it was built. Each counter also feeds a `metrics` counter
//! (see [`crate::metrics`]), through a handle registered once when the
//! client is built.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::Counter;
use respcache_core::BreakerState;

use crate::metrics::{self as m, Handles};
use crate::status::CacheOutcome;

/// Whether a client's stores are open (see
/// [`CachedClientBuilder::degraded_start`](crate::CachedClientBuilder::degraded_start)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreState {
    /// The stores are open: requests use the cache.
    #[default]
    Ready,
    /// The client was built while its stores could not be opened; they are
    /// being opened in the background and requests go to the origin.
    Opening,
    /// The last attempt to open the stores failed (see
    /// [`CachedClient::store_error`](crate::CachedClient::store_error));
    /// another follows after a back-off, and requests go to the origin.
    Failed,
}

impl StoreState {
    /// `ready`, `opening` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreState::Ready => "ready",
            StoreState::Opening => "opening",
            StoreState::Failed => "failed",
        }
    }
}

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
    /// Cache operations skipped because the cache was known to be
    /// unavailable (the circuit breaker was open, or the stores were not
    /// open yet); not counted in `cache_errors`.
    pub cache_skipped: u64,
    /// Stored entries whose metadata could not be decoded, or whose body
    /// did not match its length and checksum (treated as misses).
    pub undecodable: u64,
    /// Entries the backends themselves could not decode (a damaged fs or
    /// Redis envelope, a payload the codec rejects), treated as misses: the
    /// process-wide count of [`respcache_core::stats::undecodable_entries`],
    /// all clients and caches together (a backend reports them without
    /// knowing the client).
    pub store_undecodable: u64,
    /// Background refreshes started by `stale-while-revalidate`.
    pub background_refreshes: u64,
    /// The circuit breaker of the client's backend.
    pub breaker: BreakerState,
    /// How many times the circuit breaker has opened.
    pub breaker_opens: u64,
    /// Whether the stores are open.
    pub store_state: StoreState,
}

/// One counter: read by [`CacheStats`], exported through `metrics`.
#[derive(Debug)]
pub(crate) struct Tally {
    count: AtomicU64,
    metric: Counter,
}

impl Tally {
    fn new(metric: Counter) -> Self {
        Tally {
            count: AtomicU64::new(0),
            metric,
        }
    }

    pub(crate) fn add(&self, n: u64) {
        self.count.fetch_add(n, Ordering::Relaxed);
        self.metric.increment(n);
    }

    fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub(crate) struct Counters {
    requests: AtomicU64,
    hits: AtomicU64,
    stale_hits: AtomicU64,
    misses: AtomicU64,
    revalidations: AtomicU64,
    coalesced: AtomicU64,
    stale_if_error: AtomicU64,
    bypassed: AtomicU64,
    pub(crate) origin_requests: Tally,
    bytes_from_cache: Tally,
    pub(crate) stored: Tally,
    pub(crate) cache_errors: AtomicU64,
    pub(crate) cache_skipped: AtomicU64,
    pub(crate) undecodable: Tally,
    pub(crate) background_refreshes: Tally,
    /// The `metrics` handles, registered once.
    pub(crate) metrics: Handles,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            requests: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            stale_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            revalidations: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            stale_if_error: AtomicU64::new(0),
            bypassed: AtomicU64::new(0),
            origin_requests: Tally::new(metrics::counter!(m::ORIGIN_REQUESTS)),
            bytes_from_cache: Tally::new(metrics::counter!(m::BYTES_FROM_CACHE)),
            stored: Tally::new(metrics::counter!(m::STORED)),
            cache_errors: AtomicU64::new(0),
            cache_skipped: AtomicU64::new(0),
            undecodable: Tally::new(metrics::counter!(m::UNDECODABLE)),
            background_refreshes: Tally::new(metrics::counter!(m::BACKGROUND_REFRESHES)),
            metrics: Handles::new(),
        }
    }
}

impl Counters {
    /// Adds one to a counter.
    pub(crate) fn bump(t: &Tally) {
        t.add(1);
    }

    /// Records one answered request.
    pub(crate) fn record(&self, outcome: CacheOutcome, body_len: usize) {
        inc(&self.requests);
        self.metrics.outcome(outcome).increment(1);
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
            self.bytes_from_cache.add(body_len as u64);
        }
    }

    /// Records a request that ended in an error.
    pub(crate) fn record_error(&self) {
        inc(&self.requests);
        self.metrics.error.increment(1);
    }

    /// The counters; the breaker and store fields are left at their
    /// defaults for the caller to fill in.
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
            origin_requests: self.origin_requests.get(),
            origin_requests_saved: hits + coalesced,
            bytes_from_cache: self.bytes_from_cache.get(),
            stored: self.stored.get(),
            cache_errors: get(&self.cache_errors),
            cache_skipped: get(&self.cache_skipped),
            undecodable: self.undecodable.get(),
            store_undecodable: respcache_core::stats::undecodable_entries(),
            background_refreshes: self.background_refreshes.get(),
            breaker: BreakerState::Closed,
            breaker_opens: 0,
            store_state: StoreState::Ready,
        }
    }
}
