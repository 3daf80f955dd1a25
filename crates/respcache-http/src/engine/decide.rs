//! Stage 2, decide: whether a stored response answers the request as it is
//! (fresh, or stale where allowed), answers it while a background refresh
//! runs (`stale-while-revalidate`), or the request goes to the origin.

use respcache_core::Timestamp;

use super::Engine;
use super::exchange::Exchange;
use super::lookup::Found;
use crate::directives::Directives;
use crate::freshness::{self, Decision, Stored};
use crate::status::CacheOutcome;

/// What to do with a request after its lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Serve the stored response with this outcome.
    Serve(CacheOutcome),
    /// Serve the stored response, and refresh it in the background.
    ServeAndRefresh,
    /// Ask the origin (conditionally, when something is stored).
    Origin,
}

impl Engine {
    pub(super) fn decide(&self, ex: &Exchange<'_>) -> Step {
        self.decide_on(ex.read.found.as_deref(), ex)
    }

    /// [`decide`](Self::decide) for `found`, a stored response read for
    /// the exchange's request.
    pub(super) fn decide_on(&self, found: Option<&Found>, ex: &Exchange<'_>) -> Step {
        let Some(f) = found else {
            return Step::Origin;
        };
        let directives = self.response_directives(&f.head.headers);
        // One reading of the clock for the age and the decision.
        let now = self.now();
        let stored = self.stored_view(f, &directives, now);
        match freshness::decide(stored, &ex.req_cc, ex.req.per.refresh, self.rules(), now) {
            Decision::Fresh => Step::Serve(CacheOutcome::Hit),
            Decision::StaleAllowed => Step::Serve(CacheOutcome::StaleHit),
            Decision::StaleWhileRevalidate => Step::ServeAndRefresh,
            Decision::Revalidate => Step::Origin,
        }
    }

    /// A stored response as the freshness rules see it: its expiry, its
    /// current age (RFC 9111 §4.2.3, or the time since it was stored when
    /// `Cache-Control` is not respected) and its directives.
    pub(super) fn stored_view<'a>(
        &self,
        f: &Found,
        directives: &'a Directives,
        now: Timestamp,
    ) -> Stored<'a> {
        let age = if self.options.respect_cache_control {
            f.head.age(now)
        } else {
            now.duration_since(f.entry.cached_at)
        };
        Stored {
            expires_at: f.entry.expires_at,
            age,
            directives,
        }
    }
}
