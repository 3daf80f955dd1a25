//! `Cache-Control` directives (RFC 9111 §5.2, RFC 5861) as this crate reads
//! them, for requests and responses. `http-cache-semantics` parses the ones
//! it implements internally but does not expose them, and it has no
//! `stale-while-revalidate` / `stale-if-error` at all.

use std::time::Duration;

use http::HeaderMap;
use http::header::{CACHE_CONTROL, PRAGMA};

/// The directives of one header map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub(crate) no_store: bool,
    pub(crate) no_cache: bool,
    pub(crate) must_revalidate: bool,
    pub(crate) proxy_revalidate: bool,
    pub(crate) private: bool,
    pub(crate) public: bool,
    pub(crate) immutable: bool,
    pub(crate) only_if_cached: bool,
    pub(crate) max_age: Option<Duration>,
    pub(crate) s_maxage: Option<Duration>,
    /// `Some(None)`: `max-stale` without a value (any staleness).
    pub(crate) max_stale: Option<Option<Duration>>,
    pub(crate) min_fresh: Option<Duration>,
    pub(crate) stale_while_revalidate: Option<Duration>,
    pub(crate) stale_if_error: Option<Duration>,
}

fn seconds(value: Option<&str>) -> Option<Duration> {
    let v = value?.trim().trim_matches('"');
    // Delta-seconds: a non-negative integer; a value too large to parse is
    // "practically forever" (RFC 9111 §1.2.2).
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Duration::from_secs(
        v.parse().unwrap_or(u64::from(u32::MAX)),
    ))
}

impl Directives {
    /// Parses every `Cache-Control` header of `headers`; for requests, a
    /// `Pragma: no-cache` without `Cache-Control` counts as `no-cache`.
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let mut d = Directives::default();
        let mut any = false;
        for value in headers.get_all(CACHE_CONTROL) {
            let Ok(text) = value.to_str() else { continue };
            for part in text.split(',') {
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                any = true;
                let (name, value) = match part.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v)),
                    None => (part, None),
                };
                // Names compare without case, and without a lowercased copy.
                let is = |directive: &str| name.eq_ignore_ascii_case(directive);
                if is("no-store") {
                    d.no_store = true;
                } else if is("no-cache") {
                    d.no_cache = true;
                } else if is("must-revalidate") {
                    d.must_revalidate = true;
                } else if is("proxy-revalidate") {
                    d.proxy_revalidate = true;
                } else if is("private") {
                    d.private = true;
                } else if is("public") {
                    d.public = true;
                } else if is("immutable") {
                    d.immutable = true;
                } else if is("only-if-cached") {
                    d.only_if_cached = true;
                } else if is("max-age") {
                    // A malformed max-age means "stale" (RFC 9111 §5.2.2.1).
                    d.max_age = Some(seconds(value).unwrap_or(Duration::ZERO));
                } else if is("s-maxage") {
                    d.s_maxage = Some(seconds(value).unwrap_or(Duration::ZERO));
                } else if is("max-stale") {
                    d.max_stale = Some(seconds(value));
                } else if is("min-fresh") {
                    d.min_fresh = seconds(value);
                } else if is("stale-while-revalidate") {
                    d.stale_while_revalidate = seconds(value);
                } else if is("stale-if-error") {
                    d.stale_if_error = seconds(value);
                }
            }
        }
        if !any
            && headers
                .get_all(PRAGMA)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.to_ascii_lowercase().contains("no-cache"))
        {
            d.no_cache = true;
        }
        d
    }

    /// Whether the response may ever be served stale (RFC 9111 §4.2.4):
    /// not when it says `must-revalidate` or `no-cache`, nor, in a shared
    /// cache, `proxy-revalidate` or `s-maxage`.
    pub(crate) fn allows_stale(&self, shared: bool) -> bool {
        !(self.must_revalidate
            || self.no_cache
            || (shared && (self.proxy_revalidate || self.s_maxage.is_some())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parse(values: &[&str]) -> Directives {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        Directives::parse(&h)
    }

    #[test]
    fn parses_rfc9111_and_rfc5861_directives() {
        let d = parse(&[
            "max-age=60, stale-while-revalidate=30",
            "Stale-If-Error=\"600\", must-revalidate, immutable",
        ]);
        assert_eq!(d.max_age, Some(Duration::from_secs(60)));
        assert_eq!(d.stale_while_revalidate, Some(Duration::from_secs(30)));
        assert_eq!(d.stale_if_error, Some(Duration::from_secs(600)));
        assert!(d.must_revalidate && d.immutable && !d.no_store);
        assert!(!d.allows_stale(false));
        let r = parse(&["max-stale, min-fresh=5, only-if-cached"]);
        assert_eq!(r.max_stale, Some(None));
        assert_eq!(r.min_fresh, Some(Duration::from_secs(5)));
        assert!(r.only_if_cached);
        assert_eq!(parse(&["max-age=abc"]).max_age, Some(Duration::ZERO));
    }

    #[test]
    fn pragma_no_cache_counts_only_without_cache_control() {
        let mut h = HeaderMap::new();
        h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        assert!(Directives::parse(&h).no_cache);
        h.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        assert!(!Directives::parse(&h).no_cache);
    }
}
