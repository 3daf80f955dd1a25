//! How a request becomes a cache key, and what is redacted before anything
//! is stored: method + normalised URL + body digest + matched headers.
//!
//! The URL is normalised by lowercasing scheme and host, dropping the
//! default port and the fragment, removing ignored query parameters and
//! sorting the rest. Every part is length-prefixed before it is hashed, so
//! two different requests never share an input to the digest.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, Method};
use url::Url;

use crate::meta::WireHeaders;

/// The value that replaces an ignored parameter or header in what is stored.
pub const REDACTED: &str = "REDACTED";

/// Parameters and headers left out of keys and redacted in stored data,
/// plus the headers that join the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyRules {
    /// Query parameter names, exactly as written.
    ignored_params: Vec<String>,
    /// The same names, lowercased, for header matching.
    ignored_headers: Vec<String>,
    /// Headers whose values join the key, sorted, ignored ones removed.
    match_headers: Vec<HeaderName>,
}

impl KeyRules {
    pub(crate) fn new(ignored: &[String], match_headers: &[HeaderName]) -> Self {
        let ignored_headers: Vec<String> = ignored.iter().map(|s| s.to_ascii_lowercase()).collect();
        let mut matched: Vec<HeaderName> = match_headers
            .iter()
            .filter(|h| !ignored_headers.iter().any(|i| i == h.as_str()))
            .cloned()
            .collect();
        matched.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        matched.dedup();
        KeyRules {
            ignored_params: ignored.to_vec(),
            ignored_headers,
            match_headers: matched,
        }
    }

    fn is_ignored_param(&self, name: &str) -> bool {
        self.ignored_params.iter().any(|p| p == name)
    }

    pub(crate) fn is_ignored_header(&self, name: &str) -> bool {
        self.ignored_headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
    }

    /// `url` normalised for a key: fragment dropped, ignored parameters
    /// removed, the others sorted (by name, then value). The `url` crate
    /// already lowercases scheme and host and drops default ports.
    pub(crate) fn normalize_url<'u>(&self, url: &'u Url) -> Cow<'u, Url> {
        // Most URLs are their own normal form: no copy for them.
        if url.fragment().is_none() && url.query().is_none() {
            return Cow::Borrowed(url);
        }
        let mut out = url.clone();
        out.set_fragment(None);
        if url.query().is_some() {
            let mut pairs: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| !self.is_ignored_param(k))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            pairs.sort();
            if pairs.is_empty() {
                out.set_query(None);
            } else {
                out.query_pairs_mut().clear().extend_pairs(pairs);
            }
        }
        Cow::Owned(out)
    }

    /// `url` with the values of ignored query parameters replaced by
    /// [`REDACTED`] and the fragment dropped: what is stored and logged.
    pub(crate) fn redact_url(&self, url: &Url) -> Url {
        let mut out = url.clone();
        out.set_fragment(None);
        if url.query_pairs().any(|(k, _)| self.is_ignored_param(&k)) {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if self.is_ignored_param(&k) {
                        REDACTED.to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            out.query_pairs_mut().clear().extend_pairs(pairs);
        }
        out
    }

    /// `headers` as they are stored: (name, value) pairs in order, the
    /// values of ignored headers replaced by [`REDACTED`], without the
    /// hop-by-hop ones (`Connection` and the fields it names, `Keep-Alive`,
    /// `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`: they
    /// describe the connection the answer came on, RFC 9111 §3.1);
    /// borrowed, no header copied.
    pub(crate) fn stored_headers<'h>(&self, headers: &'h HeaderMap) -> WireHeaders<'h> {
        let named = crate::hop::connection_names(headers);
        headers
            .iter()
            .filter(|(name, _)| !crate::hop::is_hop_by_hop(name) && !named.contains(name))
            .map(|(name, value)| {
                let value = if self.is_ignored_header(name.as_str()) {
                    REDACTED.as_bytes()
                } else {
                    value.as_bytes()
                };
                (name.as_str().as_bytes(), value)
            })
            .collect()
    }

    /// The hex digest that names a request in the cache: method, normalised
    /// URL, body digest (when there is a body) and the matched headers.
    pub(crate) fn digest(
        &self,
        method: &Method,
        url: &Url,
        body: &[u8],
        headers: &HeaderMap,
    ) -> String {
        self.digest_normalized(method, &self.normalize_url(url), body, headers)
    }

    /// [`digest`](Self::digest) of a URL already normalised (by
    /// [`normalize_url`](Self::normalize_url)).
    pub(crate) fn digest_normalized(
        &self,
        method: &Method,
        normalized: &Url,
        body: &[u8],
        headers: &HeaderMap,
    ) -> String {
        if *method == Method::GET && body.is_empty() && self.match_headers.is_empty() {
            // A function of the URL alone: from this thread's memo.
            return crate::key_digests::of_get(normalized.as_str(), || {
                self.compute_digest(method, normalized, body, headers)
            });
        }
        self.compute_digest(method, normalized, body, headers)
    }

    /// [`digest_normalized`](Self::digest_normalized), computed.
    fn compute_digest(
        &self,
        method: &Method,
        normalized: &Url,
        body: &[u8],
        headers: &HeaderMap,
    ) -> String {
        // The parts go into one buffer hashed at once: the same digest as
        // hashing them one by one, with one hasher call instead of a dozen.
        let url = normalized.as_str().as_bytes();
        let mut input = Vec::with_capacity(128 + url.len());
        push(&mut input, b"respcache-http/key/1");
        push(&mut input, method.as_str().as_bytes());
        push(&mut input, url);
        if body.is_empty() {
            push(&mut input, b"");
        } else {
            push(&mut input, blake3::hash(body).as_bytes());
        }
        for name in &self.match_headers {
            push(&mut input, name.as_str().as_bytes());
            let values = headers.get_all(name);
            push(&mut input, &(values.iter().count() as u64).to_le_bytes());
            for v in values {
                push(&mut input, v.as_bytes());
            }
        }
        digest_hex(&blake3::hash(&input))
    }

    /// Appends to `out` a digest of every header that is not ignored
    /// (requests coalesce only when they are identical); nothing when there
    /// is no such header.
    pub(crate) fn push_headers_digest(&self, headers: &HeaderMap, out: &mut String) {
        let pairs = self.header_pairs(headers, false);
        if pairs.is_empty() {
            return;
        }
        let mut h = blake3::Hasher::new();
        for (n, v) in pairs {
            put(&mut h, n.as_bytes());
            put(&mut h, v);
        }
        out.push_str(&h.finalize().to_hex());
    }

    /// Whether the request carries credentials: `Authorization` (whatever
    /// the ignored names), or a header (`X-API-Key`...) or query parameter
    /// (`api_key`, `access_token`...) the key leaves out.
    pub(crate) fn carries_credentials(&self, headers: &HeaderMap, url: &Url) -> bool {
        headers.contains_key(http::header::AUTHORIZATION)
            || headers.keys().any(|n| self.is_ignored_header(n.as_str()))
            || (url.query().is_some() && url.query_pairs().any(|(k, _)| self.is_ignored_param(&k)))
    }

    /// Appends to `out` a digest of the credentials the key leaves out (the
    /// ignored headers and query parameters); nothing when there are none.
    pub(crate) fn push_credentials_digest(&self, headers: &HeaderMap, url: &Url, out: &mut String) {
        if !self.carries_credentials(headers, url) {
            return;
        }
        let mut h = blake3::Hasher::new();
        for (n, v) in self.header_pairs(headers, true) {
            put(&mut h, n.as_bytes());
            put(&mut h, v);
        }
        for (k, v) in url.query_pairs().filter(|(k, _)| self.is_ignored_param(k)) {
            put(&mut h, k.as_bytes());
            put(&mut h, v.as_bytes());
        }
        out.push_str(&h.finalize().to_hex());
    }

    /// The headers that are (`ignored`) or are not ignored, sorted.
    fn header_pairs<'h>(&self, headers: &'h HeaderMap, ignored: bool) -> Vec<(&'h str, &'h [u8])> {
        let mut pairs: Vec<(&str, &[u8])> = headers
            .iter()
            .filter(|(n, _)| self.is_ignored_header(n.as_str()) == ignored)
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        pairs.sort();
        pairs
    }
}

/// Appends `bytes`, length-prefixed as [`put`] hashes them.
/// A digest in lowercase hex, in one allocation of its size (a `to_hex`
/// then `to_string` writes it twice and grows the string).
pub(crate) fn digest_hex(hash: &blake3::Hash) -> String {
    let mut out = [0u8; 2 * blake3::OUT_LEN];
    for (i, byte) in hash.as_bytes().iter().enumerate() {
        let [high, low] = HEX_PAIRS[usize::from(*byte)];
        out[2 * i] = high;
        out[2 * i + 1] = low;
    }
    // Hex digits are ASCII: the check cannot fail.
    std::str::from_utf8(&out).unwrap_or_default().to_owned()
}

/// Each byte's two lowercase hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        pairs[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
        i += 1;
    }
    pairs
};

fn push(input: &mut Vec<u8>, bytes: &[u8]) {
    input.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    input.extend_from_slice(bytes);
}

fn put(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// The header names a response varies on, lowercased, sorted and
/// deduplicated; `None` for `Vary: *` (never served from a cache).
pub(crate) fn vary_names(headers: &HeaderMap) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for value in headers.get_all(http::header::VARY) {
        let Ok(text) = value.to_str() else {
            return None;
        };
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if name == "*" {
                return None;
            }
            names.push(name.to_ascii_lowercase());
        }
    }
    names.sort();
    names.dedup();
    Some(names)
}

/// A digest of the request's values of the `names` headers: two requests
/// are the same variant exactly when their digests are equal. Only the
/// digest is stored, so the values (which may be secret) never are.
pub(crate) fn vary_digest(names: &[String], headers: &HeaderMap) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    put(&mut h, b"respcache-http/vary/2");
    for name in names {
        put(&mut h, name.as_bytes());
        // Normalised (RFC 9111 §4.1); an absent field differs from an
        // empty one.
        match crate::rules::vary::selecting_value(name, headers) {
            Some(v) => {
                put(&mut h, b"1");
                put(&mut h, v.as_bytes());
            }
            None => put(&mut h, b"0"),
        }
    }
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn rules() -> KeyRules {
        KeyRules::new(
            &["api_key".to_owned(), "Authorization".to_owned()],
            &[HeaderName::from_static("accept")],
        )
    }

    fn digest(url: &str) -> String {
        rules().digest(
            &Method::GET,
            &Url::parse(url).unwrap(),
            b"",
            &HeaderMap::new(),
        )
    }

    #[test]
    fn equivalent_urls_share_a_key() {
        let base = digest("http://example.com/a?x=1&y=2");
        for same in [
            "HTTP://EXAMPLE.com:80/a?y=2&x=1",
            "http://example.com/a?x=1&y=2#frag",
            "http://example.com/a?api_key=secret&y=2&x=1",
            "http://Example.COM/a?y=2&api_key=other&x=1",
        ] {
            assert_eq!(digest(same), base, "{same}");
        }
    }

    #[test]
    fn different_requests_never_share_a_key() {
        let urls = [
            "http://example.com/a?x=1&y=2",
            "https://example.com/a?x=1&y=2",
            "http://example.com:8080/a?x=1&y=2",
            "http://example.com/A?x=1&y=2",
            "http://example.com/a?x=1&y=3",
            "http://example.com/a?x=1",
            "http://example.com/a?x=1&y=2&y=2",
            "http://example.org/a?x=1&y=2",
            "http://example.com/a/?x=1&y=2",
        ];
        let digests: Vec<String> = urls.iter().map(|u| digest(u)).collect();
        for (i, a) in digests.iter().enumerate() {
            for (j, b) in digests.iter().enumerate() {
                assert!(i == j || a != b, "{} and {} collide", urls[i], urls[j]);
            }
        }
        let r = rules();
        let url = Url::parse("http://example.com/a").unwrap();
        let mut accept = HeaderMap::new();
        accept.insert("accept", HeaderValue::from_static("text/html"));
        let mut auth = HeaderMap::new();
        auth.insert("authorization", HeaderValue::from_static("Bearer x"));
        let plain = r.digest(&Method::GET, &url, b"", &HeaderMap::new());
        assert_ne!(r.digest(&Method::POST, &url, b"", &HeaderMap::new()), plain);
        assert_ne!(
            r.digest(&Method::GET, &url, b"{}", &HeaderMap::new()),
            plain
        );
        assert_ne!(r.digest(&Method::GET, &url, b"", &accept), plain);
        assert_eq!(
            r.digest(&Method::GET, &url, b"", &auth),
            plain,
            "ignored header"
        );
    }

    /// The digest before 0b51dc6 (incremental hashing), verbatim.
    fn digest_v_before(
        r: &KeyRules,
        method: &Method,
        url: &Url,
        body: &[u8],
        headers: &HeaderMap,
    ) -> String {
        let normalized = r.normalize_url(url);
        let mut h = blake3::Hasher::new();
        put(&mut h, b"respcache-http/key/1");
        put(&mut h, method.as_str().as_bytes());
        put(&mut h, normalized.as_str().as_bytes());
        if body.is_empty() {
            put(&mut h, b"");
        } else {
            put(&mut h, blake3::hash(body).as_bytes());
        }
        for name in &r.match_headers {
            put(&mut h, name.as_str().as_bytes());
            let values: Vec<&HeaderValue> = headers.get_all(name).iter().collect();
            put(&mut h, &(values.len() as u64).to_le_bytes());
            for v in values {
                put(&mut h, v.as_bytes());
            }
        }
        h.finalize().to_hex().to_string()
    }

    #[test]
    fn a_get_digest_from_the_memo_is_the_computed_one() {
        let plain = KeyRules::new(&[], &[]);
        let matching = rules();
        let mut accept = HeaderMap::new();
        accept.insert("accept", HeaderValue::from_static("text/html"));
        for u in ["http://example.com/a?y=2&x=1", "https://h/p#f", "http://h/"] {
            let parsed = Url::parse(u).unwrap();
            let url = plain.normalize_url(&parsed);
            let computed = plain.compute_digest(&Method::GET, &url, b"", &HeaderMap::new());
            for _ in 0..2 {
                assert_eq!(
                    plain.digest_normalized(&Method::GET, &url, b"", &accept),
                    computed,
                    "{u}"
                );
            }
            // Another client's rules on the same thread, its header matched.
            assert_eq!(
                matching.digest_normalized(&Method::GET, &url, b"", &accept),
                matching.compute_digest(&Method::GET, &url, b"", &accept)
            );
            assert_ne!(
                matching.digest_normalized(&Method::GET, &url, b"", &accept),
                computed
            );
        }
    }

    #[test]
    fn digest_hex_is_blake3s_hex() {
        for input in [&b""[..], b"a", &[0xff; 100]] {
            let hash = blake3::hash(input);
            assert_eq!(digest_hex(&hash), hash.to_hex().as_str());
        }
    }

    #[test]
    fn digest_equals_the_incremental_one() {
        let r = KeyRules::new(
            &["api_key".to_owned()],
            &[
                HeaderName::from_static("accept"),
                HeaderName::from_static("x-b"),
            ],
        );
        let long = "x".repeat(5000);
        let urls = [
            "http://example.com/a?y=2&x=1".to_owned(),
            "https://h/p?api_key=s&q=1#f".to_owned(),
            format!("http://h/{long}"),
        ];
        let bodies: [&[u8]; 3] = [b"", b"{}", &[7u8; 70_000]];
        let mut hs = vec![HeaderMap::new()];
        let mut h = HeaderMap::new();
        h.append("accept", HeaderValue::from_static("text/html"));
        h.append("accept", HeaderValue::from_static("*/*"));
        h.append("x-b", HeaderValue::from_bytes(long.as_bytes()).unwrap());
        hs.push(h);
        for u in &urls {
            let url = Url::parse(u).unwrap();
            for b in bodies {
                for h in &hs {
                    for m in [
                        Method::GET,
                        Method::POST,
                        Method::from_bytes(b"PURGE").unwrap(),
                    ] {
                        assert_eq!(
                            r.digest(&m, &url, b, h),
                            digest_v_before(&r, &m, &url, b, h)
                        );
                    }
                }
            }
        }
    }

    /// Stored entries are found by these digests: they must never change
    /// by accident (the vary digest changed on purpose with its
    /// normalisation, version 2: older variants are misses once).
    #[test]
    fn digests_are_stable() {
        let r = rules();
        let url = Url::parse("http://example.com/a?y=2&x=1").unwrap();
        let mut h = HeaderMap::new();
        h.append("accept", HeaderValue::from_static("text/html"));
        h.append("accept", HeaderValue::from_static("*/*"));
        assert_eq!(
            r.digest(&Method::GET, &url, b"", &h),
            "13ce5a898aa74f992c7519f97b74ea4b261555d78b8be4062eba7057abf6396c"
        );
        assert_eq!(
            r.digest(&Method::POST, &url, b"{}", &HeaderMap::new()),
            "9f9dd9de532880ab3b1a1d056fd9e0c6836bcb134747c55dbf8f0632e60795a9"
        );
        let plain = KeyRules::new(&[], &[]);
        let want = plain.compute_digest(&Method::GET, &plain.normalize_url(&url), b"", &h);
        assert_eq!(plain.digest(&Method::GET, &url, b"", &h), want);
        assert_eq!(want, digest_v_before(&plain, &Method::GET, &url, b"", &h));
        assert_eq!(
            plain.digest(&Method::GET, &url, b"", &h),
            "a23fa3b3be9ef4b74ed07e3c976a2e6c575702de9f3e84ba53eab3a8e7480f28"
        );
        let names = ["accept".to_owned(), "accept-language".to_owned()];
        assert_eq!(
            blake3::Hash::from(vary_digest(&names, &h))
                .to_hex()
                .as_str(),
            "438f249c2b855f9ebc5b4a93cab8eefb542f6d6a4e4c8c7118db66993e5f273b"
        );
    }

    #[test]
    fn redaction_hides_ignored_values() {
        let r = rules();
        let url = Url::parse("http://h/p?api_key=s3cret&q=1#f").unwrap();
        assert_eq!(
            r.redact_url(&url).as_str(),
            "http://h/p?api_key=REDACTED&q=1"
        );
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer s3cret"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        let red = r.stored_headers(&h);
        assert!(red.contains(&(b"authorization".as_slice(), REDACTED.as_bytes())));
        assert!(red.contains(&(b"accept".as_slice(), b"*/*".as_slice())));
    }

    #[test]
    fn vary_names_are_normalised_and_star_is_none() {
        let mut h = HeaderMap::new();
        h.append("vary", HeaderValue::from_static("Accept-Language, accept"));
        h.append("vary", HeaderValue::from_static("Accept"));
        assert_eq!(
            vary_names(&h),
            Some(vec!["accept".into(), "accept-language".into()])
        );
        h.append("vary", HeaderValue::from_static("*"));
        assert_eq!(vary_names(&h), None);
    }
}
