//! Answering a `Range` request from a stored complete response (RFC 9110
//! §14, RFC 9111 §3.3): one satisfiable byte range gives a `206` with
//! `Content-Range`; a range that cannot be satisfied gives `416`; anything
//! this cache does not serve from storage — several ranges, another unit, a
//! malformed header, an `If-Range` that does not match — gives the whole
//! `200`, which RFC 9110 §14.2 allows.

use http::HeaderMap;
use http::header::{ETAG, IF_RANGE, LAST_MODIFIED, RANGE};

use super::conditional::strong_match;

/// What to send for a request's `Range` against a body of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The whole representation (no range, or one not served from here).
    Whole,
    /// Bytes `first..=last`.
    Partial { first: u64, last: u64 },
    /// No byte of the range exists: `416` with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// The answer to `request`'s `Range` (if any) for a stored response with
/// `stored` headers and a body of `len` bytes.
pub(crate) fn answer(request: &HeaderMap, stored: &HeaderMap, len: u64) -> Answer {
    let mut lines = request.get_all(RANGE).iter();
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return Answer::Whole;
    };
    if !if_range_holds(request, stored) {
        return Answer::Whole;
    }
    let Some(spec) = line.to_str().ok().and_then(|v| {
        let (unit, set) = v.trim().split_once('=')?;
        unit.trim().eq_ignore_ascii_case("bytes").then_some(set)
    }) else {
        return Answer::Whole;
    };
    if spec.contains(',') {
        return Answer::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Answer::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), num(first), num(last)) {
        // suffix-range: the last N bytes.
        (true, _, Some(n)) => {
            if n == 0 || len == 0 {
                Answer::Unsatisfiable
            } else {
                Answer::Partial {
                    first: len.saturating_sub(n),
                    last: len - 1,
                }
            }
        }
        (false, Some(f), l) if last.trim().is_empty() || l.is_some() => {
            if l.is_some_and(|l| l < f) {
                return Answer::Whole;
            }
            if f >= len {
                return Answer::Unsatisfiable;
            }
            Answer::Partial {
                first: f,
                last: l.map_or(len - 1, |l| l.min(len - 1)),
            }
        }
        _ => Answer::Whole,
    }
}

/// `If-Range` (RFC 9110 §13.1.5): the range is served only when the
/// validator is a strong match of the stored `ETag`, or equals its
/// `Last-Modified`.
fn if_range_holds(request: &HeaderMap, stored: &HeaderMap) -> bool {
    let Some(cond) = request.get(IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let cond = cond.trim();
    if cond.starts_with('"') || cond.starts_with("W/") {
        return stored
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|e| strong_match(cond, e));
    }
    stored
        .get(LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|lm| lm.trim() == cond)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ask(range: &'static str, len: u64) -> Answer {
        let mut h = HeaderMap::new();
        h.insert(RANGE, HeaderValue::from_static(range));
        answer(&h, &HeaderMap::new(), len)
    }

    #[test]
    fn byte_ranges_rfc9110_14_1_2_examples() {
        assert_eq!(
            ask("bytes=0-499", 10_000),
            Answer::Partial {
                first: 0,
                last: 499
            }
        );
        assert_eq!(
            ask("bytes=500-999", 10_000),
            Answer::Partial {
                first: 500,
                last: 999
            }
        );
        assert_eq!(
            ask("bytes=-500", 10_000),
            Answer::Partial {
                first: 9500,
                last: 9999
            }
        );
        assert_eq!(
            ask("bytes=9500-", 10_000),
            Answer::Partial {
                first: 9500,
                last: 9999
            }
        );
        assert_eq!(
            ask("bytes=0-0", 10_000),
            Answer::Partial { first: 0, last: 0 }
        );
        assert_eq!(
            ask("bytes=0-20000", 10),
            Answer::Partial { first: 0, last: 9 }
        );
        assert_eq!(ask("bytes=-20", 10), Answer::Partial { first: 0, last: 9 });
        assert_eq!(ask("bytes=10-", 10), Answer::Unsatisfiable);
        assert_eq!(ask("bytes=0-1, 3-4", 10), Answer::Whole);
        assert_eq!(ask("items=0-1", 10), Answer::Whole);
        assert_eq!(ask("bytes=5-1", 10), Answer::Whole);
        assert_eq!(ask("bytes=x-1", 10), Answer::Whole);
    }

    #[test]
    fn if_range_must_match_strongly() {
        let mut stored = HeaderMap::new();
        stored.insert(ETAG, HeaderValue::from_static("\"v1\""));
        let mut req = HeaderMap::new();
        req.insert(RANGE, HeaderValue::from_static("bytes=0-1"));
        req.insert(IF_RANGE, HeaderValue::from_static("\"v1\""));
        assert_eq!(
            answer(&req, &stored, 10),
            Answer::Partial { first: 0, last: 1 }
        );
        req.insert(IF_RANGE, HeaderValue::from_static("\"v2\""));
        assert_eq!(answer(&req, &stored, 10), Answer::Whole);
    }
}
