//! The metrics a client reports through the [`metrics`] facade crate, for
//! whatever recorder the program installs (Prometheus, StatsD, ...). With
//! no recorder installed they cost next to nothing.
//!
//! Handles are registered when a client is built, so **install the
//! recorder before building the client**: a client built earlier reports
//! its counters to no one (its [`CacheStats`](crate::CacheStats) still
//! count).
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `respcache_http_requests_total` | counter | `outcome` | answered requests by [`CacheOutcome`] (`hit`, `stale-hit`, `stale-while-revalidate`, `revalidated`, `miss`, `coalesced`, `stale-if-error`, `only-if-cached-miss`, `bypass`), or `error` |
//! | `respcache_http_stored_total` | counter | | responses written to the cache |
//! | `respcache_http_not_stored_total` | counter | `reason` | full answers the cache did not keep, by [`NotStored`] reason |
//! | `respcache_http_cache_errors_total` | counter | `backend`, `operation` | cache calls that failed (`get`, `put` — a 304's metadata update included —, `delete`, `lease`) |
//! | `respcache_http_cache_skipped_total` | counter | `backend` | cache calls skipped: breaker open, or stores not open yet |
//! | `respcache_http_breaker_state` | gauge | `backend` | 0 closed, 1 open (half-open included, until its probe ends) |
//! | `respcache_http_breaker_opens_total` | counter | `backend` | times the circuit breaker opened |
//! | `respcache_http_store_state` | gauge | `backend` | 0 ready, 1 opening, 2 the last attempt to open failed |
//! | `respcache_http_undecodable_total` | counter | | stored entries whose metadata did not decode |
//! | `respcache_http_origin_requests_total` | counter | | requests sent to the origin (redirect hops included) |
//! | `respcache_http_bytes_from_cache_total` | counter | | body bytes served from stored responses |
//! | `respcache_http_background_refreshes_total` | counter | | `stale-while-revalidate` refreshes started |
//! | `respcache_http_store_seconds` | histogram | `operation` | time of each cache call (`get`, `put`, `delete`) |
//! | `respcache_http_origin_seconds` | histogram | | time to the origin's answer (its head, or its whole body when read whole) |
//! | `respcache_http_lease_seconds` | histogram | | with [`cross_process`](crate::CachedClientBuilder::cross_process): what a miss spent on the key's lease — taking it, or waiting for the process that holds it |

use metrics::{Counter, Histogram};
use respcache_core::BreakerState;

use crate::rules::storable::NotStorable;
use crate::stats::StoreState;
use crate::status::CacheOutcome;

/// Answered requests by outcome.
pub const REQUESTS: &str = "respcache_http_requests_total";
/// Responses written to the cache.
pub const STORED: &str = "respcache_http_stored_total";
/// Full answers not kept, by reason.
pub const NOT_STORED: &str = "respcache_http_not_stored_total";
/// Failed cache calls, by backend and operation.
pub const CACHE_ERRORS: &str = "respcache_http_cache_errors_total";
/// Skipped cache calls, by backend.
pub const CACHE_SKIPPED: &str = "respcache_http_cache_skipped_total";
/// The circuit breaker's state, by backend.
pub const BREAKER_STATE: &str = "respcache_http_breaker_state";
/// Times the circuit breaker opened, by backend.
pub const BREAKER_OPENS: &str = "respcache_http_breaker_opens_total";
/// Whether the stores are open, by backend.
pub const STORE_STATE: &str = "respcache_http_store_state";
/// Undecodable stored entries.
pub const UNDECODABLE: &str = "respcache_http_undecodable_total";
/// Requests sent to the origin.
pub const ORIGIN_REQUESTS: &str = "respcache_http_origin_requests_total";
/// Body bytes served from the cache.
pub const BYTES_FROM_CACHE: &str = "respcache_http_bytes_from_cache_total";
/// Background refreshes started.
pub const BACKGROUND_REFRESHES: &str = "respcache_http_background_refreshes_total";
/// Time of each cache call, by operation.
pub const STORE_SECONDS: &str = "respcache_http_store_seconds";
/// Time a miss spent on the key's lease (cross-process single flight).
pub const LEASE_SECONDS: &str = "respcache_http_lease_seconds";
/// Time to the origin's answer.
pub const ORIGIN_SECONDS: &str = "respcache_http_origin_seconds";

/// Why a full answer from the origin was not stored (the `reason` label of
/// `respcache_http_not_stored_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotStored {
    /// A status the cache does not store (interim, `206`, `304`, not
    /// understood with `must-understand`).
    Status,
    /// `no-store` in the request or the response.
    NoStore,
    /// `private` in a shared cache.
    Private,
    /// A request with `Authorization` in a shared cache, without a
    /// response directive that allows storing it.
    Authorization,
    /// Nothing allows storing it: no explicit freshness, not `public`, a
    /// status that is not heuristically cacheable nor allowed by the user.
    NoFreshness,
    /// Its body is over the size limit.
    TooLarge,
    /// `Vary: *`.
    VaryStar,
    /// The user's filter refused it.
    Filter,
    /// The repository's codec cannot read the body back.
    Codec,
    /// A cache call failed or was skipped (backend down) in this request.
    CacheUnavailable,
    /// Streaming: the body was passed on as it arrived, judged from the
    /// head not worth keeping (the rules forbid it, it could not be served
    /// again, an event stream) or larger than the store limit.
    Streamed,
}

impl NotStored {
    const ALL: [NotStored; 11] = [
        NotStored::Status,
        NotStored::NoStore,
        NotStored::Private,
        NotStored::Authorization,
        NotStored::NoFreshness,
        NotStored::TooLarge,
        NotStored::VaryStar,
        NotStored::Filter,
        NotStored::Codec,
        NotStored::CacheUnavailable,
        NotStored::Streamed,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            NotStored::Status => "status",
            NotStored::NoStore => "no-store",
            NotStored::Private => "private",
            NotStored::Authorization => "authorization",
            NotStored::NoFreshness => "no-freshness",
            NotStored::TooLarge => "too-large",
            NotStored::VaryStar => "vary-star",
            NotStored::Filter => "filter",
            NotStored::Codec => "codec",
            NotStored::CacheUnavailable => "cache-unavailable",
            NotStored::Streamed => "streamed",
        }
    }

    fn index(self) -> usize {
        match self {
            NotStored::Status => 0,
            NotStored::NoStore => 1,
            NotStored::Private => 2,
            NotStored::Authorization => 3,
            NotStored::NoFreshness => 4,
            NotStored::TooLarge => 5,
            NotStored::VaryStar => 6,
            NotStored::Filter => 7,
            NotStored::Codec => 8,
            NotStored::CacheUnavailable => 9,
            NotStored::Streamed => 10,
        }
    }
}

impl From<NotStorable> for NotStored {
    fn from(why: NotStorable) -> Self {
        match why {
            NotStorable::NoStore => NotStored::NoStore,
            NotStorable::Private => NotStored::Private,
            NotStorable::Authorization => NotStored::Authorization,
            NotStorable::Status => NotStored::Status,
            NotStorable::NoFreshness => NotStored::NoFreshness,
        }
    }
}

const OUTCOMES: [CacheOutcome; 9] = [
    CacheOutcome::Hit,
    CacheOutcome::StaleHit,
    CacheOutcome::StaleWhileRevalidate,
    CacheOutcome::Revalidated,
    CacheOutcome::Miss,
    CacheOutcome::Coalesced,
    CacheOutcome::StaleIfError,
    CacheOutcome::OnlyIfCachedMiss,
    CacheOutcome::Bypass,
];

fn outcome_index(o: CacheOutcome) -> usize {
    match o {
        CacheOutcome::Hit => 0,
        CacheOutcome::StaleHit => 1,
        CacheOutcome::StaleWhileRevalidate => 2,
        CacheOutcome::Revalidated => 3,
        CacheOutcome::Miss => 4,
        CacheOutcome::Coalesced => 5,
        CacheOutcome::StaleIfError => 6,
        CacheOutcome::OnlyIfCachedMiss => 7,
        CacheOutcome::Bypass => 8,
    }
}

/// The handles of the hot paths, registered once per client.
#[derive(Debug)]
pub(crate) struct Handles {
    outcomes: [Counter; 9],
    pub(crate) error: Counter,
    not_stored: [Counter; 11],
    pub(crate) store_get: Histogram,
    pub(crate) store_put: Histogram,
    pub(crate) store_delete: Histogram,
    pub(crate) origin: Histogram,
    pub(crate) lease_wait: Histogram,
}

impl Handles {
    pub(crate) fn new() -> Self {
        Handles {
            outcomes: OUTCOMES.map(|o| metrics::counter!(REQUESTS, "outcome" => o.as_str())),
            error: metrics::counter!(REQUESTS, "outcome" => "error"),
            not_stored: NotStored::ALL
                .map(|r| metrics::counter!(NOT_STORED, "reason" => r.as_str())),
            store_get: metrics::histogram!(STORE_SECONDS, "operation" => "get"),
            store_put: metrics::histogram!(STORE_SECONDS, "operation" => "put"),
            store_delete: metrics::histogram!(STORE_SECONDS, "operation" => "delete"),
            origin: metrics::histogram!(ORIGIN_SECONDS),
            lease_wait: metrics::histogram!(LEASE_SECONDS),
        }
    }

    pub(crate) fn outcome(&self, o: CacheOutcome) -> &Counter {
        &self.outcomes[outcome_index(o)]
    }

    pub(crate) fn not_stored(&self, reason: NotStored) -> &Counter {
        &self.not_stored[reason.index()]
    }
}

/// A failed cache call (a cold path: looked up per call).
pub(crate) fn cache_error(backend: &'static str, operation: &'static str) {
    metrics::counter!(CACHE_ERRORS, "backend" => backend, "operation" => operation).increment(1);
}

/// A skipped cache call.
pub(crate) fn cache_skipped(backend: &'static str) {
    metrics::counter!(CACHE_SKIPPED, "backend" => backend).increment(1);
}

/// The breaker opened or closed.
pub(crate) fn breaker(backend: &'static str, state: BreakerState) {
    let value = match state {
        BreakerState::Closed => 0.0,
        _ => 1.0,
    };
    metrics::gauge!(BREAKER_STATE, "backend" => backend).set(value);
    if state == BreakerState::Open {
        metrics::counter!(BREAKER_OPENS, "backend" => backend).increment(1);
    }
}

/// The stores' state changed.
pub(crate) fn store_state(backend: &'static str, state: StoreState) {
    let value = match state {
        StoreState::Ready => 0.0,
        StoreState::Opening => 1.0,
        StoreState::Failed => 2.0,
    };
    metrics::gauge!(STORE_STATE, "backend" => backend).set(value);
}
