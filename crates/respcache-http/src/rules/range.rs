//! Answering a `Range` request from a stored complete response (RFC 9110
//! §14, RFC 9111 §3.3): one satisfiable byte range gives a `206` with
//! `Content-Range`; a range that cannot be satisfied gives `416`; anything
//! this cache does not serve from storage — several ranges, another unit, a
//! malformed header, an `If-Range` that does not match — gives the whole
//! `200`, which RFC 9110 §14.2 allows. A stored partial answer (`206`)
//! answers the ranges [`within`] what it [`held`].

use http::HeaderMap;
use http::header::{CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};

use super::conditional::{strong_match, tag_text};

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
    let num = |s: &str| byte_pos(s.trim());
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
    let Some(cond) = request.get(IF_RANGE).map(tag_text) else {
        return true;
    };
    let cond = cond.trim();
    if cond.starts_with('"') || cond.starts_with("W/") {
        return stored
            .get(ETAG)
            .map(tag_text)
            .is_some_and(|e| strong_match(cond, &e));
    }
    stored
        .get(LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|lm| lm.trim() == cond)
}

/// A byte position or length: ASCII digits only (no sign, no space), and
/// within `u64`.
fn byte_pos(s: &str) -> Option<u64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// The bytes a stored partial answer (`206`) holds: one range of a
/// representation of known length (RFC 9111 §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) first: u64,
    pub(crate) last: u64,
    /// The complete representation's length.
    pub(crate) complete: u64,
}

/// What a `206` with `headers` and a body of `len` bytes holds: its one
/// `Content-Range: bytes first-last/complete`, when that is well formed and
/// matches the body. `None` for anything else (several parts, an unknown
/// complete length, a body of another size), which is not stored.
pub(crate) fn held(headers: &HeaderMap, len: u64) -> Option<Held> {
    content_range(headers).filter(|h| h.last - h.first + 1 == len)
}

/// A `206`'s one well-formed `Content-Range: bytes first-last/complete`
/// (its body not yet looked at).
pub(crate) fn content_range(headers: &HeaderMap) -> Option<Held> {
    let mut values = headers.get_all(CONTENT_RANGE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let (unit, rest) = value.to_str().ok()?.trim().split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (span, complete) = rest.trim().split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let held = Held {
        first: byte_pos(first)?,
        last: byte_pos(last)?,
        complete: byte_pos(complete)?,
    };
    (held.first <= held.last && held.last < held.complete).then_some(held)
}

/// The range `request` asks for, when it lies within what a stored partial
/// answer (`stored` headers) holds: bytes `first..=last` of the complete
/// representation. `None` when the request asks for more, for the whole,
/// for several ranges, or its `If-Range` does not hold.
pub(crate) fn within(request: &HeaderMap, stored: &HeaderMap, held: Held) -> Option<(u64, u64)> {
    match answer(request, stored, held.complete) {
        Answer::Partial { first, last } if held.first <= first && last <= held.last => {
            Some((first, last))
        }
        _ => None,
    }
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

    /// Entity tags may hold obs-text: an `If-Range` naming the stored tag
    /// gets its range; another one (the same letter in another encoding)
    /// gets the whole answer, never an unchecked range.
    #[test]
    fn if_range_with_obs_text() {
        let mut stored = HeaderMap::new();
        stored.insert(ETAG, HeaderValue::from_bytes("\"vü\"".as_bytes()).unwrap());
        let mut req = HeaderMap::new();
        req.insert(RANGE, HeaderValue::from_static("bytes=0-1"));
        req.insert(
            IF_RANGE,
            HeaderValue::from_bytes("\"vü\"".as_bytes()).unwrap(),
        );
        assert_eq!(
            answer(&req, &stored, 10),
            Answer::Partial { first: 0, last: 1 }
        );
        req.insert(IF_RANGE, HeaderValue::from_bytes(b"\"v\xfc\"").unwrap());
        assert_eq!(answer(&req, &stored, 10), Answer::Whole);
    }

    fn content_range(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_RANGE, HeaderValue::from_static(value));
        h
    }

    /// A stored `206` holds its one `Content-Range` when the body is that
    /// range; anything else is not kept.
    #[test]
    fn a_partial_answer_holds_its_one_well_formed_range() {
        let held = |v, len| super::held(&content_range(v), len);
        let want = Held {
            first: 2,
            last: 6,
            complete: 10,
        };
        assert_eq!(held("bytes 2-6/10", 5), Some(want));
        assert_eq!(held("BYTES 2-6/10", 5), Some(want));
        assert_eq!(held("bytes 2-6/10", 4), None, "a body of another size");
        assert_eq!(held("bytes 2-6/*", 5), None, "an unknown complete length");
        assert_eq!(held("bytes 6-2/10", 5), None);
        assert_eq!(held("bytes 2-10/10", 9), None, "past the end");
        assert_eq!(held("items 2-6/10", 5), None);
        assert_eq!(held("bytes */10", 0), None);
        let mut two = content_range("bytes 2-6/10");
        two.append(CONTENT_RANGE, HeaderValue::from_static("bytes 2-6/10"));
        assert_eq!(super::held(&two, 5), None);
    }

    /// A stored partial answers the ranges inside it, resolved against the
    /// complete length.
    #[test]
    fn ranges_within_a_partial_answer() {
        let held = Held {
            first: 2,
            last: 6,
            complete: 10,
        };
        let within = |range: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(RANGE, HeaderValue::from_static(range));
            super::within(&h, &HeaderMap::new(), held)
        };
        assert_eq!(within("bytes=2-6"), Some((2, 6)));
        assert_eq!(within("bytes=3-4"), Some((3, 4)));
        assert_eq!(within("bytes=1-4"), None);
        assert_eq!(within("bytes=5-"), None, "up to the complete end");
        assert_eq!(within("bytes=-4"), None, "the last 4 of 10");
        assert_eq!(within("bytes=2-3,5-6"), None);
        assert_eq!(
            super::within(&HeaderMap::new(), &HeaderMap::new(), held),
            None
        );
    }
}
