//! Every request header as one key field: the canonical form of a
//! [`HeaderMap`] and its BLAKE3 digest (the seed's `include_headers=True`).
//!
//! Canonical form: one line `<name>:<values>\n` per header name, names
//! lowercased (as [`HeaderName`] keeps them) and sorted, the values of a
//! repeated header joined with `", "` in the order they were added, each
//! trimmed of spaces and tabs — so `Accept: a` + `Accept: b` and
//! `Accept: a, b` mean the same, as RFC 9110 §5.3 says they do. A name
//! holds no `:` and a value no newline, so two different header sets never
//! share a canonical form.
//!
//! The key field is the digest (64 hex characters), not the text: header
//! values can be long or secret (`Authorization`, `Cookie`), and a key is
//! stored in plain sight (SQLite columns, file names, Redis keys).
//!
//! Some headers never enter it ([`EXCLUDED_HEADERS`]): they describe the
//! connection or the caching, not the answer asked for, and the HTTP layer
//! or a proxy adds, changes or removes them between two sends of the same
//! request — with them a revalidation (`If-None-Match`) or a `refresh`
//! (`Cache-Control: no-cache`) could never find the entry it refreshes.
//!
//! [`TemplateSettings::with_all_headers`](crate::TemplateSettings::with_all_headers)
//! uses it; a hand-written [`RepositorySettings`](crate::RepositorySettings)
//! puts the headers in its key the same way with
//! `KeyPart::Text(headers_digest(request.headers(), &[]))`.

use http::{HeaderMap, HeaderName};

/// Header names left out of [`canonical_headers`], with why:
///
/// - hop-by-hop (RFC 9110 §7.6.1): `connection`, `keep-alive`,
///   `proxy-connection`, `te`, `trailer`, `transfer-encoding`, `upgrade` —
///   and every header the request's `Connection` header names;
/// - `host`: the URL's authority, which front-ends add or not (a server
///   sees it, a client adds it only when sending);
/// - `content-length`: framing, not the answer asked for;
/// - `cache-control`, `pragma`, `if-none-match`, `if-modified-since`: what
///   the cache itself sends to refresh or revalidate an entry.
pub const EXCLUDED_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "cache-control",
    "pragma",
    "if-none-match",
    "if-modified-since",
];

/// The canonical form of `headers` (see the [module](self) docs), without
/// the [`EXCLUDED_HEADERS`], the headers `Connection` names, and `except`.
pub fn canonical_headers(headers: &HeaderMap, except: &[HeaderName]) -> Vec<u8> {
    let nominated = connection_nominated(headers);
    let mut names: Vec<&HeaderName> = headers
        .keys()
        .filter(|name| {
            let n = name.as_str();
            !EXCLUDED_HEADERS.contains(&n)
                && !except.contains(name)
                && !nominated.iter().any(|c| c == n)
        })
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut out = Vec::new();
    for name in names {
        out.extend_from_slice(name.as_str().as_bytes());
        out.push(b':');
        for (i, value) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(trim(value.as_bytes()));
        }
        out.push(b'\n');
    }
    out
}

/// The BLAKE3 digest of [`canonical_headers`], as 64 lowercase hex
/// characters: the text of a key's headers field.
///
/// ```
/// use respcache_core::header_digest::headers_digest;
/// use respcache_core::http::{HeaderMap, HeaderValue, header};
///
/// let mut one = HeaderMap::new();
/// one.append(header::ACCEPT, HeaderValue::from_static("a"));
/// one.append(header::ACCEPT, HeaderValue::from_static("b"));
/// let mut other = HeaderMap::new();
/// other.insert(header::ACCEPT, HeaderValue::from_static("a, b"));
/// other.insert(header::CONNECTION, HeaderValue::from_static("close"));
/// assert_eq!(headers_digest(&one, &[]), headers_digest(&other, &[]));
/// assert_eq!(headers_digest(&one, &[]).len(), 64);
/// ```
pub fn headers_digest(headers: &HeaderMap, except: &[HeaderName]) -> String {
    blake3::hash(&canonical_headers(headers, except))
        .to_hex()
        .to_string()
}

/// The lowercased names listed in the request's `Connection` headers.
fn connection_nominated(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// `bytes` without leading or trailing spaces and tabs.
fn trim(bytes: &[u8]) -> &[u8] {
    let ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !ws(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !ws(b)).map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        m
    }

    fn text(m: &HeaderMap) -> String {
        String::from_utf8(canonical_headers(m, &[])).unwrap()
    }

    #[test]
    fn names_sorted_values_combined_in_order() {
        let m = map(&[
            ("x-b", "2"),
            ("accept", " text/html "),
            ("x-b", "1"),
            ("accept-language", "sv"),
        ]);
        assert_eq!(text(&m), "accept:text/html\naccept-language:sv\nx-b:2, 1\n");
        // Insertion order of different names does not matter; of one name it does.
        let same = map(&[
            ("accept-language", "sv"),
            ("x-b", "2"),
            ("x-b", "1"),
            ("accept", "text/html"),
        ]);
        assert_eq!(headers_digest(&m, &[]), headers_digest(&same, &[]));
        let swapped = map(&[
            ("x-b", "1"),
            ("x-b", "2"),
            ("accept", "text/html"),
            ("accept-language", "sv"),
        ]);
        assert_ne!(headers_digest(&m, &[]), headers_digest(&swapped, &[]));
    }

    #[test]
    fn excluded_and_connection_named_headers_do_not_count() {
        let plain = map(&[("accept", "a")]);
        let noisy = map(&[
            ("accept", "a"),
            ("host", "example.com"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("cache-control", "no-cache"),
            ("if-none-match", "\"v1\""),
            ("if-modified-since", "Mon, 07 Dec 2026 00:00:00 GMT"),
            ("pragma", "no-cache"),
            ("te", "trailers"),
            ("content-length", "0"),
        ]);
        assert_eq!(text(&noisy), "accept:a\n");
        assert_eq!(headers_digest(&plain, &[]), headers_digest(&noisy, &[]));
    }

    #[test]
    fn any_other_difference_changes_the_digest() {
        let base = map(&[("accept", "a"), ("authorization", "Bearer 1")]);
        for other in [
            map(&[("accept", "a"), ("authorization", "Bearer 2")]),
            map(&[("accept", "a")]),
            map(&[("accept", "a"), ("authorization", "Bearer 1"), ("x-a", "")]),
            map(&[("accept", "a, b"), ("authorization", "Bearer 1")]),
        ] {
            assert_ne!(
                headers_digest(&base, &[]),
                headers_digest(&other, &[]),
                "{other:?}"
            );
        }
        // The digest never shows a value.
        assert!(!headers_digest(&base, &[]).contains("Bearer"));
    }

    #[test]
    fn except_leaves_named_headers_out() {
        let a = map(&[("accept", "a"), ("x-request-id", "1")]);
        let b = map(&[("accept", "a"), ("x-request-id", "2")]);
        let except = [HeaderName::from_static("x-request-id")];
        assert_ne!(headers_digest(&a, &[]), headers_digest(&b, &[]));
        assert_eq!(headers_digest(&a, &except), headers_digest(&b, &except));
    }

    #[test]
    fn empty_and_whitespace_only_values() {
        assert_eq!(text(&HeaderMap::new()), "");
        assert_eq!(text(&map(&[("x-a", "  \t ")])), "x-a:\n");
        assert_eq!(trim(b" a b\t"), b"a b");
    }
}
