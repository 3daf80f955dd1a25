//! The HTTP caching rules this crate applies on top of
//! `http-cache-semantics`: how long a response stays fresh (with the
//! client's expiry settings), and what to do with a stored response when a
//! request arrives (RFC 9111 §4, RFC 5861).

use std::time::Duration;

use respcache_core::{Expiry, Timestamp};

use crate::directives::Directives;
use crate::rules::lifetime::Freshness;

/// What the stored response is good for, for this request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Serve it: fresh (and fresh enough for the request).
    Fresh,
    /// Serve it stale: the request allows it (`max-stale`).
    StaleAllowed,
    /// Serve it stale and refresh in the background.
    StaleWhileRevalidate,
    /// Ask the origin first (conditionally when there are validators).
    Revalidate,
}

/// The inputs of [`decide`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stored<'a> {
    pub(crate) expires_at: Option<Timestamp>,
    /// The response's current age (its `Age` header plus time in the cache).
    pub(crate) age: Duration,
    pub(crate) directives: &'a Directives,
}

/// How the client reads `Cache-Control`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules {
    pub(crate) respect_cache_control: bool,
    pub(crate) shared: bool,
    pub(crate) stale_while_revalidate: Option<Duration>,
    pub(crate) stale_if_error: Option<Duration>,
    /// Serve stale when the origin cannot be reached (RFC 9111 §4.2.4).
    pub(crate) stale_when_unreachable: bool,
}

fn staleness(expires_at: Option<Timestamp>, now: Timestamp) -> Duration {
    expires_at.map_or(Duration::ZERO, |e| now.duration_since(e))
}

/// What to do with a stored response for a request with directives `req`.
pub(crate) fn decide(
    stored: Stored<'_>,
    req: &Directives,
    refresh: bool,
    rules: Rules,
    now: Timestamp,
) -> Decision {
    if refresh {
        return Decision::Revalidate;
    }
    let fresh = stored.expires_at.is_none_or(|e| e > now);
    if !rules.respect_cache_control {
        return if fresh {
            Decision::Fresh
        } else {
            Decision::Revalidate
        };
    }
    if req.no_cache {
        return Decision::Revalidate;
    }
    // RFC 8246: a fresh `immutable` response is not revalidated on a
    // reload (`max-age=0` and the like; `no-cache` still forces it).
    let reload_ignored = fresh && stored.directives.immutable;
    if !reload_ignored && req.max_age.is_some_and(|max| stored.age > max) {
        return Decision::Revalidate;
    }
    if fresh {
        let remaining = stored.expires_at.map(|e| e.duration_since(now));
        if let (Some(min), Some(left)) = (req.min_fresh, remaining)
            && left < min
        {
            return Decision::Revalidate;
        }
        return Decision::Fresh;
    }
    let stale_for = staleness(stored.expires_at, now);
    if !stored.directives.allows_stale(rules.shared) {
        return Decision::Revalidate;
    }
    if let Some(max_stale) = req.max_stale
        && max_stale.is_none_or(|m| stale_for <= m)
    {
        return Decision::StaleAllowed;
    }
    let swr = stored
        .directives
        .stale_while_revalidate
        .or(rules.stale_while_revalidate);
    if swr.is_some_and(|w| stale_for <= w) {
        return Decision::StaleWhileRevalidate;
    }
    Decision::Revalidate
}

/// Whether a stale stored response may be served when the origin fails
/// (`unreachable`: it could not be reached at all, rather than answering
/// with an error).
pub(crate) fn stale_if_error_allows(
    stored: Stored<'_>,
    req: &Directives,
    rules: Rules,
    unreachable: bool,
    now: Timestamp,
) -> bool {
    let window = if rules.respect_cache_control {
        if !stored.directives.allows_stale(rules.shared) {
            return false;
        }
        if unreachable && rules.stale_when_unreachable {
            // A disconnected cache may serve stale (§4.2.4), within the
            // request's `max-stale` when it sets one.
            return match req.max_stale {
                Some(Some(max)) => staleness(stored.expires_at, now) <= max,
                _ => true,
            };
        }
        [
            req.stale_if_error,
            stored.directives.stale_if_error,
            rules.stale_if_error,
        ]
        .into_iter()
        .flatten()
        .max()
    } else {
        rules.stale_if_error
    };
    window.is_some_and(|w| staleness(stored.expires_at, now) <= w)
}

/// Where a response's freshness lifetime comes from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lifetime {
    /// The per-request override.
    pub(crate) request: Option<Expiry>,
    /// The first matching per-URL pattern, or the repository's expiry.
    pub(crate) url: Option<Expiry>,
    /// The client's default.
    pub(crate) default: Option<Expiry>,
}

/// When a response received at `now` goes stale (`None`: never).
///
/// With `Cache-Control` respected: the per-request override, then the
/// origin's explicit freshness (`s-maxage` in shared mode, `max-age`,
/// `Expires`; `no-cache` means stale at once), then the per-URL expiry, the
/// client default, and last the heuristic freshness (zero without
/// `Last-Modified`: stored, but revalidated before use). The origin's
/// lifetimes count from the response's age on arrival (RFC 9111 §4.2.3).
/// Without it: per-request, per-URL, default, else never.
pub(crate) fn expires_at(
    lifetime: Lifetime,
    respect_cache_control: bool,
    directives: &Directives,
    origin: Freshness,
    initial_age: Duration,
    now: Timestamp,
) -> Option<Timestamp> {
    if let Some(e) = lifetime.request {
        return e.expires_at(now);
    }
    if !respect_cache_control {
        return lifetime
            .url
            .or(lifetime.default)
            .unwrap_or(Expiry::Never)
            .expires_at(now);
    }
    if directives.no_cache {
        return Some(now);
    }
    let left = origin.lifetime().saturating_sub(initial_age);
    if origin.is_explicit() {
        return Some(now.saturating_add(left));
    }
    if let Some(e) = lifetime.url.or(lifetime.default) {
        return e.expires_at(now);
    }
    Some(now.saturating_add(left))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        respect_cache_control: true,
        shared: false,
        stale_while_revalidate: None,
        stale_if_error: None,
        stale_when_unreachable: false,
    };

    fn t(s: i64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    fn cc(v: &str) -> Directives {
        let mut h = http::HeaderMap::new();
        h.insert("cache-control", http::HeaderValue::from_str(v).unwrap());
        Directives::parse(&h)
    }

    #[test]
    fn request_directives_shape_the_decision() {
        let resp = cc("max-age=100");
        let stored = Stored {
            expires_at: Some(t(100)),
            age: Duration::from_secs(50),
            directives: &resp,
        };
        let none = Directives::default();
        assert_eq!(decide(stored, &none, false, RULES, t(50)), Decision::Fresh);
        assert_eq!(
            decide(stored, &none, true, RULES, t(50)),
            Decision::Revalidate
        );
        assert_eq!(
            decide(stored, &cc("max-age=10"), false, RULES, t(50)),
            Decision::Revalidate
        );
        assert_eq!(
            decide(stored, &cc("min-fresh=60"), false, RULES, t(50)),
            Decision::Revalidate
        );
        assert_eq!(
            decide(stored, &cc("no-cache"), false, RULES, t(50)),
            Decision::Revalidate
        );
        assert_eq!(
            decide(stored, &none, false, RULES, t(150)),
            Decision::Revalidate
        );
        assert_eq!(
            decide(stored, &cc("max-stale"), false, RULES, t(150)),
            Decision::StaleAllowed
        );
        assert_eq!(
            decide(stored, &cc("max-stale=30"), false, RULES, t(150)),
            Decision::Revalidate
        );
    }

    #[test]
    fn must_revalidate_forbids_every_stale_use() {
        let resp = cc("max-age=100, must-revalidate, stale-while-revalidate=60, stale-if-error=60");
        let stored = Stored {
            expires_at: Some(t(100)),
            age: Duration::from_secs(110),
            directives: &resp,
        };
        assert_eq!(
            decide(stored, &cc("max-stale"), false, RULES, t(110)),
            Decision::Revalidate
        );
        assert!(!stale_if_error_allows(
            stored,
            &Directives::default(),
            RULES,
            false,
            t(110)
        ));
        let lax = cc("max-age=100, stale-while-revalidate=60, stale-if-error=20");
        let stored = Stored {
            directives: &lax,
            ..stored
        };
        assert_eq!(
            decide(stored, &Directives::default(), false, RULES, t(110)),
            Decision::StaleWhileRevalidate
        );
        assert_eq!(
            decide(stored, &Directives::default(), false, RULES, t(170)),
            Decision::Revalidate
        );
        assert!(stale_if_error_allows(
            stored,
            &Directives::default(),
            RULES,
            false,
            t(120)
        ));
        assert!(!stale_if_error_allows(
            stored,
            &Directives::default(),
            RULES,
            false,
            t(121)
        ));
    }

    /// RFC 9111 §4.2.4: with the option on, an unreachable origin lets any
    /// staleness be served, except where the response forbids stale use or
    /// the request's `max-stale` is smaller.
    #[test]
    fn stale_when_unreachable() {
        let rules = Rules {
            stale_when_unreachable: true,
            ..RULES
        };
        let lax = cc("max-age=100");
        let stored = Stored {
            expires_at: Some(t(100)),
            age: Duration::from_secs(10_000),
            directives: &lax,
        };
        let none = Directives::default();
        assert!(stale_if_error_allows(stored, &none, rules, true, t(10_000)));
        assert!(!stale_if_error_allows(
            stored,
            &none,
            rules,
            false,
            t(10_000)
        ));
        assert!(!stale_if_error_allows(
            stored,
            &none,
            RULES,
            true,
            t(10_000)
        ));
        assert!(!stale_if_error_allows(
            stored,
            &cc("max-stale=5"),
            rules,
            true,
            t(10_000)
        ));
        for strict in ["max-age=100, must-revalidate", "max-age=100, no-cache"] {
            let d = cc(strict);
            let s = Stored {
                directives: &d,
                ..stored
            };
            assert!(
                !stale_if_error_allows(s, &none, rules, true, t(10_000)),
                "{strict}"
            );
        }
        let shared = Rules {
            shared: true,
            ..rules
        };
        for strict in ["max-age=100, proxy-revalidate", "s-maxage=100"] {
            let d = cc(strict);
            let s = Stored {
                directives: &d,
                ..stored
            };
            assert!(
                !stale_if_error_allows(s, &none, shared, true, t(10_000)),
                "{strict}"
            );
            assert!(
                stale_if_error_allows(s, &none, rules, true, t(10_000)),
                "{strict}"
            );
        }
    }

    #[test]
    fn lifetime_precedence() {
        let l = Lifetime {
            request: None,
            url: Some(Expiry::After(Duration::from_secs(30))),
            default: Some(Expiry::Never),
        };
        let explicit = Freshness::Explicit(Duration::from_secs(60));
        let heuristic = Freshness::Heuristic(Duration::from_secs(60));
        let cc60 = cc("max-age=60");
        let none = Directives::default();
        let zero = Duration::ZERO;
        assert_eq!(
            expires_at(l, true, &cc60, explicit, zero, t(0)),
            Some(t(60))
        );
        // An age on arrival counts against the origin's lifetime.
        assert_eq!(
            expires_at(l, true, &cc60, explicit, Duration::from_secs(50), t(0)),
            Some(t(10))
        );
        assert_eq!(
            expires_at(l, true, &none, heuristic, zero, t(0)),
            Some(t(30))
        );
        assert_eq!(
            expires_at(l, false, &cc60, explicit, zero, t(0)),
            Some(t(30))
        );
        assert_eq!(
            expires_at(l, true, &cc("no-cache"), explicit, zero, t(0)),
            Some(t(0))
        );
        let req = Lifetime {
            request: Some(Expiry::After(Duration::from_secs(5))),
            ..l
        };
        assert_eq!(
            expires_at(req, true, &cc60, explicit, zero, t(0)),
            Some(t(5))
        );
        let bare = Lifetime {
            request: None,
            url: None,
            default: None,
        };
        assert_eq!(
            expires_at(bare, true, &none, heuristic, zero, t(0)),
            Some(t(60))
        );
        assert_eq!(expires_at(bare, false, &none, heuristic, zero, t(0)), None);
    }
}
