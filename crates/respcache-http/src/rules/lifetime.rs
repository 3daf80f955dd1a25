//! How long a response is fresh by what its origin says (RFC 9111 §4.2.1,
//! §4.2.2, §5.3): explicit freshness first, else a heuristic.

use std::time::Duration;

use http::header::{EXPIRES, LAST_MODIFIED};
use http::{HeaderMap, StatusCode};
use respcache_core::Timestamp;

use super::storable::HEURISTICALLY_CACHEABLE;
use super::{age, date};
use crate::directives::Directives;

/// A freshness lifetime and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// From `s-maxage` (shared caches), `max-age` or `Expires`.
    Explicit(Duration),
    /// Computed by this cache (§4.2.2); zero when nothing allows a
    /// heuristic.
    Heuristic(Duration),
}

impl Freshness {
    /// The lifetime.
    pub(crate) fn lifetime(self) -> Duration {
        match self {
            Freshness::Explicit(d) | Freshness::Heuristic(d) => d,
        }
    }

    /// Whether the origin set it.
    pub(crate) fn is_explicit(self) -> bool {
        matches!(self, Freshness::Explicit(_))
    }
}

/// The response's `Expires` (§5.3): `Some(None)` when present but invalid
/// (a date that does not parse, or more than one field line), which means
/// "already expired".
fn expires(headers: &HeaderMap) -> Option<Option<Timestamp>> {
    let mut lines = headers.get_all(EXPIRES).iter();
    let first = lines.next()?;
    if lines.next().is_some() {
        return Some(None);
    }
    Some(first.to_str().ok().and_then(date::parse))
}

/// The freshness lifetime of a response received at `response_time`
/// (§4.2.1): `s-maxage` in a shared cache, then `max-age`, then `Expires`
/// minus `Date` (or the time received, without a valid `Date`); otherwise
/// the heuristic of §4.2.2 — `fraction` of the time since `Last-Modified`
/// — for a heuristically cacheable status or a `public` response.
pub(crate) fn freshness(
    status: StatusCode,
    headers: &HeaderMap,
    d: &Directives,
    shared: bool,
    response_time: Timestamp,
    fraction: f32,
) -> Freshness {
    if shared && let Some(s) = d.s_maxage {
        return Freshness::Explicit(s);
    }
    if let Some(m) = d.max_age {
        return Freshness::Explicit(m);
    }
    let date = age::date_of(headers).unwrap_or(response_time);
    if let Some(exp) = expires(headers).filter(|_| !d.targeted) {
        return Freshness::Explicit(exp.map_or(Duration::ZERO, |e| e.duration_since(date)));
    }
    let heuristic = if HEURISTICALLY_CACHEABLE.contains(&status.as_u16()) || d.public {
        headers
            .get(LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(date::parse)
            .map_or(Duration::ZERO, |lm| {
                date.duration_since(lm).mul_f32(fraction.clamp(0.0, 1.0))
            })
    } else {
        Duration::ZERO
    };
    Freshness::Heuristic(heuristic)
}

/// Whether the response has explicit freshness (without computing it).
pub(crate) fn has_explicit(headers: &HeaderMap, d: &Directives, shared: bool) -> bool {
    d.max_age.is_some()
        || (shared && d.s_maxage.is_some())
        || (!d.targeted && headers.contains_key(EXPIRES))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn fresh(status: u16, pairs: &[(&'static str, String)], shared: bool) -> Freshness {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_str(v).unwrap());
        }
        let d = Directives::parse(&h);
        freshness(
            StatusCode::from_u16(status).unwrap(),
            &h,
            &d,
            shared,
            NOW,
            0.1,
        )
    }

    const NOW: Timestamp = Timestamp::from_millis(1_000_000_000_000);

    fn at(secs_from_now: i64) -> String {
        date::format(Timestamp::from_millis(
            NOW.as_millis() + secs_from_now * 1000,
        ))
    }

    #[test]
    fn s_maxage_only_in_shared_caches_then_max_age_then_expires() {
        let h = [("cache-control", "max-age=10, s-maxage=5".to_owned())];
        assert_eq!(
            fresh(200, &h, true),
            Freshness::Explicit(Duration::from_secs(5))
        );
        assert_eq!(
            fresh(200, &h, false),
            Freshness::Explicit(Duration::from_secs(10))
        );
        let e = [("expires", at(100)), ("date", at(0))];
        assert_eq!(
            fresh(200, &e, false),
            Freshness::Explicit(Duration::from_secs(100))
        );
        let mixed = [
            ("expires", at(100)),
            ("cache-control", "max-age=0".to_owned()),
        ];
        assert_eq!(
            fresh(200, &mixed, false),
            Freshness::Explicit(Duration::ZERO)
        );
    }

    /// §5.3: an invalid `Expires` (a bare `0`, a second line) means
    /// already expired; `Expires` older than `Date` is stale at once.
    #[test]
    fn invalid_expires_is_already_expired() {
        assert_eq!(
            fresh(200, &[("expires", "0".to_owned())], false),
            Freshness::Explicit(Duration::ZERO)
        );
        let two = [("expires", at(100)), ("expires", at(100))];
        assert_eq!(fresh(200, &two, false), Freshness::Explicit(Duration::ZERO));
        let old = [("expires", at(-10)), ("date", at(0))];
        assert_eq!(fresh(200, &old, false), Freshness::Explicit(Duration::ZERO));
        let rfc850 = [("expires", "Sunday, 06-Nov-44 08:49:37 GMT".to_owned())];
        assert!(fresh(200, &rfc850, false).lifetime() > Duration::from_secs(86_400));
    }

    /// §4.2.2: 10 % of the time since `Last-Modified`, only for
    /// heuristically cacheable statuses (or `public`).
    #[test]
    fn heuristic_freshness() {
        let lm = [("last-modified", at(-1000)), ("date", at(0))];
        assert_eq!(
            fresh(200, &lm, false),
            Freshness::Heuristic(Duration::from_secs(100))
        );
        assert_eq!(
            fresh(404, &lm, false),
            Freshness::Heuristic(Duration::from_secs(100))
        );
        assert_eq!(fresh(201, &lm, false), Freshness::Heuristic(Duration::ZERO));
        assert_eq!(fresh(200, &[], false), Freshness::Heuristic(Duration::ZERO));
    }
}
