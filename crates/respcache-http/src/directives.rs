//! `Cache-Control` directives (RFC 9111 §5.2, RFC 5861) as this crate reads
//! them, for requests and responses. `http-cache-semantics` parses the ones
//! it implements internally but does not expose them, and it has no
//! `stale-while-revalidate` / `stale-if-error` at all.

use std::cell::RefCell;
use std::convert::Infallible;
use std::time::Duration;

use http::HeaderMap;
use http::header::{CACHE_CONTROL, PRAGMA};

use crate::text_memo::{TextMemo, memoized};

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
    /// `must-understand` (RFC 9111 §5.2.2.3).
    pub(crate) must_understand: bool,
    /// Read from a targeted field (RFC 9213, `CDN-Cache-Control`), which
    /// overrides `Cache-Control` and `Expires`.
    pub(crate) targeted: bool,
}

/// The members of a comma-separated list (RFC 9110 §5.6.1), trimmed and
/// non-empty; commas inside quoted strings do not split. Scans bytes: the
/// delimiters are ASCII, so every cut is at a character boundary.
pub(crate) fn list_members(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < bytes.len() {
            let start = at;
            let mut end = bytes.len();
            let (mut quoted, mut escaped) = (false, false);
            for (i, &b) in bytes[start..].iter().enumerate() {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' if quoted => escaped = true,
                    b'"' => quoted = !quoted,
                    b',' if !quoted => {
                        end = start + i;
                        break;
                    }
                    _ => {}
                }
            }
            at = end + 1;
            let member = text.get(start..end).unwrap_or("").trim_matches([' ', '\t']);
            if !member.is_empty() {
                return Some(member);
            }
        }
        None
    })
}

fn seconds(value: Option<&str>) -> Option<Duration> {
    let v = value?.trim();
    // The quoted form is accepted too (RFC 9111 §5.2).
    let v = v
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v);
    // Delta-seconds: a non-negative integer; a value too large to parse is
    // "practically forever" (RFC 9111 §1.2.2).
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Duration::from_secs(
        v.parse().unwrap_or(u64::from(u32::MAX)),
    ))
}

/// The most memory one thread's memo of field values takes.
const MEMO_BYTES: usize = 64 * 1024;

/// The longest field value kept in the memo.
const MEMO_LEN: usize = 256;

thread_local! {
    /// One `Cache-Control` value's directives, by its text: a hit reads the
    /// stored response's (the same few values, over and over).
    static PARSED: RefCell<TextMemo<(Directives, bool)>> =
        RefCell::new(TextMemo::new(MEMO_BYTES, MEMO_LEN));
}

/// The directives of one field value and whether it held any, from this
/// thread's memo when it was read here before.
fn of_text(text: &str) -> (Directives, bool) {
    let read = || {
        let mut d = Directives::default();
        let any = d.read(text);
        Ok::<_, Infallible>((d, any))
    };
    let cost = |_: &_| text.len() + std::mem::size_of::<(Directives, bool)>() + 32;
    let Ok(read) = memoized(&PARSED, text, read, cost);
    read
}

impl Directives {
    /// Parses every `Cache-Control` header of `headers`; for requests, a
    /// `Pragma: no-cache` without `Cache-Control` counts as `no-cache`.
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        if headers.is_empty() {
            // Most requests: no field to look up.
            return Directives::default();
        }
        let mut values = headers.get_all(CACHE_CONTROL).iter();
        let (mut d, any) = match (values.next(), values.next()) {
            // The common case, one field: its directives from the memo.
            (Some(one), None) => one.to_str().map_or((Directives::default(), false), of_text),
            _ => {
                let mut d = Directives::default();
                let mut any = false;
                for value in headers.get_all(CACHE_CONTROL) {
                    if let Ok(text) = value.to_str() {
                        any |= d.read(text);
                    }
                }
                (d, any)
            }
        };
        if !any
            && headers
                .get_all(PRAGMA)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(list_members)
                .any(|v| v.eq_ignore_ascii_case("no-cache"))
        {
            d.no_cache = true;
        }
        d
    }

    /// Adds the directives of one field value; whether it held any.
    fn read(&mut self, text: &str) -> bool {
        let d = self;
        let mut any = false;
        for part in list_members(text) {
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
            } else if is("must-understand") {
                d.must_understand = true;
            } else if is("max-age") {
                // A malformed max-age means "stale" (RFC 9111 §5.2.2.1);
                // of two, the first counts (§4.2.1).
                d.max_age
                    .get_or_insert(seconds(value).unwrap_or(Duration::ZERO));
            } else if is("s-maxage") {
                d.s_maxage
                    .get_or_insert(seconds(value).unwrap_or(Duration::ZERO));
            } else if is("max-stale") {
                d.max_stale.get_or_insert(seconds(value));
            } else if is("min-fresh") {
                d.min_fresh = d.min_fresh.or(seconds(value));
            } else if is("stale-while-revalidate") {
                d.stale_while_revalidate = d.stale_while_revalidate.or(seconds(value));
            } else if is("stale-if-error") {
                d.stale_if_error = d.stale_if_error.or(seconds(value));
            }
        }
        any
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

    /// A value read again comes from the memo, equal to a fresh read;
    /// several fields still add up.
    #[test]
    fn a_value_from_the_memo_reads_as_parsed() {
        for text in [
            "max-age=60, stale-while-revalidate=30",
            "No-Store, private",
            ",",
            "max-age=\"10\", max-age=20",
        ] {
            let mut fresh = Directives::default();
            let any = fresh.read(text);
            for _ in 0..2 {
                assert_eq!(of_text(text), (fresh.clone(), any), "{text}");
                assert_eq!(parse(&[text]), fresh, "{text}");
            }
        }
        let both = parse(&["max-age=60", "no-cache"]);
        assert_eq!(both.max_age, Some(Duration::from_secs(60)));
        assert!(both.no_cache);
    }

    /// RFC 9111 §5.2: directive names are case-insensitive — a security
    /// matter in a shared cache (`Private`, `No-Store`).
    #[test]
    fn directive_names_are_case_insensitive() {
        let d = parse(&["No-Store, PRIVATE, Must-Understand, MAX-AGE=60, No-CaChE"]);
        assert!(d.no_store && d.private && d.must_understand && d.no_cache);
        assert_eq!(d.max_age, Some(Duration::from_secs(60)));
        let mut h = HeaderMap::new();
        h.insert(PRAGMA, HeaderValue::from_static("No-Cache"));
        assert!(Directives::parse(&h).no_cache);
    }

    /// A comma inside a quoted value does not split it, and the first of two
    /// `max-age`s counts (§4.2.1).
    #[test]
    fn quoted_values_and_repeated_directives() {
        let d = parse(&["extension=\"max-age=3600, public\", max-age=1"]);
        assert_eq!(d.max_age, Some(Duration::from_secs(1)));
        assert!(!d.public);
        let d = parse(&["max-age=1, extension=\"max-age=3600\""]);
        assert_eq!(d.max_age, Some(Duration::from_secs(1)));
        assert_eq!(
            parse(&["max-age=1800, max-age=1"]).max_age,
            Some(Duration::from_secs(1800))
        );
        assert_eq!(
            parse(&["max-age=\"60\""]).max_age,
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse(&["max-age='60'"]).max_age, Some(Duration::ZERO));
        assert_eq!(
            parse(&["max-age=003600"]).max_age,
            Some(Duration::from_secs(3600))
        );
        let p = parse(&["private=\"set-cookie, x-user\", max-age=5"]);
        assert!(p.private);
        assert_eq!(p.max_age, Some(Duration::from_secs(5)));
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
