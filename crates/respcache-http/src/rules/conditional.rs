//! Validators (RFC 9110 §8.8, §13): answering a client's conditional
//! request from a stored response (RFC 9111 §4.3.2), and whether a `304`
//! freshens the stored response it answers (RFC 9111 §4.3.4).

use std::borrow::Cow;

use http::HeaderMap;
use http::header::{DATE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use respcache_core::Timestamp;

use super::date;
use crate::directives::list_members;

/// An entity tag split into its weakness and opaque part.
fn parse_etag(text: &str) -> Option<(bool, &str)> {
    let t = text.trim();
    let (weak, rest) = match t.strip_prefix("W/") {
        Some(r) => (true, r),
        None => (false, t),
    };
    let opaque = rest.strip_prefix('"')?.strip_suffix('"')?;
    Some((weak, opaque))
}

/// Weak comparison (RFC 9110 §8.8.3.2): opaque parts equal. A tag that is
/// not well formed (unquoted, `w/`) matches only the very same text: a
/// client sending back exactly the tag it was given still gets its `304`,
/// as from the origin that minted it.
fn weak_match(a: &str, b: &str) -> bool {
    match (parse_etag(a), parse_etag(b)) {
        (Some((_, x)), Some((_, y))) => x == y,
        _ => a.trim() == b.trim(),
    }
}

/// Strong comparison: both strong and equal.
pub(crate) fn strong_match(a: &str, b: &str) -> bool {
    matches!((parse_etag(a), parse_etag(b)), (Some((false, x)), Some((false, y))) if x == y)
}

fn etag_of(headers: &HeaderMap) -> Option<Cow<'_, str>> {
    headers.get(ETAG).map(tag_text)
}

/// An `ETag`, `If-None-Match` or `If-Range` value as text. Entity tags may
/// hold obs-text (RFC 9110 §8.8.3: bytes 0x80–0xFF), which
/// `HeaderValue::to_str` refuses; such a value is read byte for byte as
/// ISO-8859-1, which maps every byte to one character, so two values are
/// equal as text exactly when their bytes are (whatever encoding the client
/// meant). Visible ASCII, nearly every value, is borrowed as it is.
pub(crate) fn tag_text(value: &http::HeaderValue) -> Cow<'_, str> {
    match value.to_str() {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => Cow::Owned(value.as_bytes().iter().map(|&b| char::from(b)).collect()),
    }
}

/// When the stored response last changed: its `Last-Modified`, else its
/// `Date`, else when it was received (RFC 9111 §4.3.2).
fn last_modified(stored: &HeaderMap, received: Timestamp) -> Timestamp {
    let at = |name| {
        stored
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .and_then(date::parse)
    };
    at(LAST_MODIFIED).or_else(|| at(DATE)).unwrap_or(received)
}

/// Whether the request carries a precondition this cache evaluates.
pub(crate) fn is_conditional(request: &HeaderMap) -> bool {
    request.contains_key(IF_NONE_MATCH) || request.contains_key(IF_MODIFIED_SINCE)
}

/// Whether a client's conditional GET/HEAD is answered `304 Not Modified`
/// by a stored response (RFC 9110 §13.1.2–13.1.3, §13.2.2):
/// `If-None-Match` (weak comparison, `*` matches any stored response) takes
/// precedence over `If-Modified-Since`, which counts only when it is a
/// valid date.
pub(crate) fn not_modified(request: &HeaderMap, stored: &HeaderMap, received: Timestamp) -> bool {
    if request.contains_key(IF_NONE_MATCH) {
        let stored_tag = etag_of(stored);
        return request.get_all(IF_NONE_MATCH).iter().any(|value| {
            list_members(&tag_text(value))
                .any(|tag| tag == "*" || stored_tag.as_deref().is_some_and(|s| weak_match(tag, s)))
        });
    }
    let Some(since) = request
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(date::parse)
    else {
        return false;
    };
    last_modified(stored, received) <= since
}

/// Whether a `304` to a conditional request made for the stored response
/// selects it (RFC 9111 §4.3.4): a strong `ETag` in the 304 must match the
/// stored one; else a `Last-Modified` in the 304 must equal the stored one;
/// a 304 with no validator selects the one response it was asked about.
pub(crate) fn selects(stored: &HeaderMap, not_modified: &HeaderMap) -> bool {
    if let Some(tag) = etag_of(not_modified) {
        return etag_of(stored).is_some_and(|s| weak_match(&tag, &s));
    }
    if let Some(lm) = not_modified.get(LAST_MODIFIED) {
        return stored.get(LAST_MODIFIED).is_some_and(|s| s == lm);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(*n, HeaderValue::from_static(v));
        }
        m
    }

    const T: Timestamp = Timestamp::from_millis(784_111_777_000);

    #[test]
    fn if_none_match_uses_weak_comparison_and_wins_over_ims() {
        let stored = h(&[
            ("etag", "W/\"abc\""),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        assert!(not_modified(
            &h(&[("if-none-match", "\"abc\"")]),
            &stored,
            T
        ));
        assert!(not_modified(
            &h(&[("if-none-match", "\"x\", W/\"abc\"")]),
            &stored,
            T
        ));
        assert!(not_modified(&h(&[("if-none-match", "*")]), &stored, T));
        // If-None-Match present and not matching: IMS is not looked at.
        assert!(!not_modified(
            &h(&[
                ("if-none-match", "\"x\""),
                ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")
            ]),
            &stored,
            T
        ));
    }

    #[test]
    fn if_modified_since_compares_last_modified_then_date() {
        let stored = h(&[("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        let ims = |v: &'static str| h(&[("if-modified-since", v)]);
        assert!(not_modified(
            &ims("Sun, 06 Nov 1994 08:49:37 GMT"),
            &stored,
            T
        ));
        assert!(!not_modified(
            &ims("Sat, 05 Nov 1994 08:49:37 GMT"),
            &stored,
            T
        ));
        assert!(!not_modified(&ims("not a date"), &stored, T));
        let dated = h(&[("date", "Mon, 07 Nov 1994 08:49:37 GMT")]);
        assert!(!not_modified(
            &ims("Sun, 06 Nov 1994 08:49:37 GMT"),
            &dated,
            T
        ));
    }

    #[test]
    fn a_304_selects_the_stored_response_by_its_validators() {
        let stored = h(&[
            ("etag", "\"v1\""),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        assert!(selects(&stored, &h(&[("etag", "\"v1\"")])));
        assert!(!selects(&stored, &h(&[("etag", "\"v2\"")])));
        assert!(selects(
            &stored,
            &h(&[("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")])
        ));
        assert!(!selects(
            &stored,
            &h(&[("last-modified", "Mon, 07 Nov 1994 08:49:37 GMT")])
        ));
        assert!(selects(&stored, &HeaderMap::new()));
        assert!(strong_match("\"a\"", "\"a\"") && !strong_match("W/\"a\"", "\"a\""));
    }

    /// Malformed tags (unquoted, a lower-case `w/`, a backslash) match only
    /// their very same text; a well-formed one never matches a malformed one.
    #[test]
    fn malformed_entity_tags_match_only_themselves() {
        for tag in ["abcdef", "w/\"abcdef\"", "W\\\"abcdef\"", "W\"abcdef\""] {
            assert!(weak_match(tag, tag), "{tag}");
        }
        assert!(!weak_match("abcdef", "\"abcdef\""));
        assert!(!weak_match("w/\"abcdef\"", "W/\"abcdef\""));
        assert!(!weak_match("abcdef", "abcdeg"));
        assert!(
            !strong_match("abcdef", "abcdef"),
            "strong comparison stays strict"
        );
    }

    /// An entity tag may hold obs-text (RFC 9110 §8.8.3: `etagc` includes
    /// bytes 0x80–0xFF), which `HeaderValue::to_str` refuses: a client
    /// sending back a tag with `ü` in it gets its 304.
    #[test]
    fn entity_tags_with_obs_text_match() {
        let tag = || HeaderValue::from_bytes("\"abcdefü\"".as_bytes()).unwrap();
        let mut stored = HeaderMap::new();
        stored.insert(ETAG, tag());
        let mut request = HeaderMap::new();
        request.insert(IF_NONE_MATCH, tag());
        assert!(not_modified(&request, &stored, T));
        let mut other = HeaderMap::new();
        other.insert(
            IF_NONE_MATCH,
            HeaderValue::from_bytes("\"abcdefö\"".as_bytes()).unwrap(),
        );
        assert!(!not_modified(&other, &stored, T));
        let mut answer = HeaderMap::new();
        answer.insert(ETAG, tag());
        assert!(selects(&stored, &answer));
        // The same tag in ISO-8859-1 (as a browser or Node sends `ü`).
        let latin1 = || HeaderValue::from_bytes(b"\"abcdef\xfc\"").unwrap();
        stored.insert(ETAG, latin1());
        request.insert(IF_NONE_MATCH, latin1());
        assert!(not_modified(&request, &stored, T));
        assert!(!not_modified(&other, &stored, T));
    }
}
