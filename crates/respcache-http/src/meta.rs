//! [`ResponseMeta`]: what the HTTP layer keeps in an entry's `meta` bytes —
//! status, every header in order (multi-valued headers kept), the final URL
//! and the `http-cache-semantics` policy — encoded with postcard behind a
//! version byte. Bytes that do not decode are a miss, never an error.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_cache_semantics::CachePolicy;
use serde::{Deserialize, Serialize};

/// The first byte of every meta this version writes.
pub const META_VERSION: u8 = 1;

/// The response part of a stored answer: the body is the entry's payload.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResponseMeta {
    /// The status code.
    pub status: u16,
    /// Every header, in the order received; a name may repeat.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The final URL (after redirects), ignored parameters redacted.
    pub url: String,
    /// The request method the answer belongs to.
    pub method: String,
    /// The HTTP caching policy (request and response as seen at store time,
    /// ignored parameters and headers redacted).
    pub policy: CachePolicy,
    /// When the response was received (ms since the Unix epoch).
    pub response_time: i64,
    /// The headers the response varies on and a digest of the request's
    /// values of them (never the values themselves).
    pub vary: Option<VaryMatch>,
    /// The HTTP version the origin answered with: 9, 10, 11, 20 or 30.
    pub version: u8,
}

/// The `Vary` selection of a stored response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaryMatch {
    /// Lowercased header names.
    pub names: Vec<String>,
    /// A digest of the request's values of those headers.
    pub digest: [u8; 32],
}

/// Stored under a request's primary key when its response varies: which
/// headers select the variant, and a nonce that makes this generation's
/// variant keys unique (a new index orphans older variants).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VaryIndex {
    pub(crate) names: Vec<String>,
    pub(crate) nonce: u64,
}

/// What an entry's meta holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum StoredMeta {
    Response(Box<ResponseMeta>),
    VaryIndex(VaryIndex),
}

/// Why meta bytes could not be decoded.
#[derive(Debug)]
pub(crate) struct MetaError(pub(crate) String);

impl StoredMeta {
    pub(crate) fn encode(&self) -> Result<Bytes, MetaError> {
        let mut out = vec![META_VERSION];
        let body = postcard::to_stdvec(self).map_err(|e| MetaError(format!("encode: {e}")))?;
        out.extend_from_slice(&body);
        Ok(Bytes::from(out))
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, MetaError> {
        match bytes.split_first() {
            Some((&META_VERSION, rest)) => {
                postcard::from_bytes(rest).map_err(|e| MetaError(format!("decode: {e}")))
            }
            Some((v, _)) => Err(MetaError(format!("unknown meta version {v}"))),
            None => Err(MetaError("empty meta".to_owned())),
        }
    }
}

impl ResponseMeta {
    /// Encodes this meta as the HTTP layer stores it (version byte + postcard).
    pub fn encode(&self) -> Option<Bytes> {
        StoredMeta::Response(Box::new(self.clone())).encode().ok()
    }

    /// Decodes meta bytes written by the HTTP layer; `None` for anything
    /// else (another version, a vary index, corrupt bytes).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        match StoredMeta::decode(bytes) {
            Ok(StoredMeta::Response(m)) => Some(*m),
            _ => None,
        }
    }

    /// The status code (a stored code outside 100–999 reads as 500).
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The headers as a map, every value kept (invalid stored pairs are
    /// skipped).
    pub fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                map.append(n, v);
            }
        }
        map
    }
}

/// Headers as an ordered list of pairs, every value kept.
pub(crate) fn header_list(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn meta() -> ResponseMeta {
        let req = http::Request::get("http://h/a").body(()).unwrap();
        let res = http::Response::builder()
            .header("cache-control", "max-age=60")
            .header("link", "<a>; rel=a")
            .header("link", "<b>; rel=b")
            .body(())
            .unwrap();
        let policy = CachePolicy::new_options(&req, &res, SystemTime::now(), Default::default());
        ResponseMeta {
            status: 200,
            headers: header_list(res.headers()),
            url: "http://h/a".into(),
            method: "GET".into(),
            policy,
            response_time: 5,
            vary: Some(VaryMatch {
                names: vec!["accept".into()],
                digest: [7; 32],
            }),
            version: 20,
        }
    }

    #[test]
    fn round_trips_with_multi_valued_headers() {
        let m = meta();
        let bytes = m.encode().unwrap();
        assert_eq!(bytes[0], META_VERSION);
        let back = ResponseMeta::decode(&bytes).unwrap();
        assert_eq!(back.headers, m.headers);
        assert_eq!(back.header_map().get_all("link").iter().count(), 2);
        assert_eq!(back.vary, m.vary);
        assert_eq!(back.url, "http://h/a");
    }

    #[test]
    fn foreign_or_corrupt_bytes_do_not_decode() {
        let mut bytes = meta().encode().unwrap().to_vec();
        assert!(ResponseMeta::decode(&[]).is_none());
        bytes[0] = 99;
        assert!(StoredMeta::decode(&bytes).is_err());
        bytes[0] = META_VERSION;
        bytes.truncate(bytes.len() / 2);
        assert!(StoredMeta::decode(&bytes).is_err());
    }
}
