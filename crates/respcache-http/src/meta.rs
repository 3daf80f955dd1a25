//! [`ResponseMeta`]: what the HTTP layer keeps in an entry's `meta` bytes —
//! status, every header in order (multi-valued headers kept), the final URL
//! and the `http-cache-semantics` policy — encoded with postcard behind a
//! version byte. Bytes that do not decode are a miss, never an error.
//!
//! Version 2 (written now) keeps the policy as bytes of its own inside the
//! meta, so a hit reads what it needs ([`Head`]: status, headers, when the
//! response was received) without decoding the policy; only a `304`
//! decodes it. Version 1 meta (the policy inline) still reads.

use std::time::Duration;

use bytes::Bytes;
use http::header::AGE;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_cache_semantics::CachePolicy;
use respcache_core::Timestamp;
use serde::{Deserialize, Serialize};

/// The first byte of every meta this version writes.
pub const META_VERSION: u8 = 2;

/// The first byte of meta written before version 2 (still read).
const META_VERSION_1: u8 = 1;

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

/// What an entry's meta holds (version 1 is this, postcard-encoded).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum StoredMeta {
    Response(Box<ResponseMeta>),
    VaryIndex(VaryIndex),
}

/// What an entry's meta holds, as version 2 encodes it: read in place
/// (strings and bytes borrow from the meta).
#[derive(Serialize, Deserialize)]
enum WireMeta<'a> {
    #[serde(borrow)]
    Response(WireResponse<'a>),
    VaryIndex(VaryIndex),
}

/// A [`ResponseMeta`] in version 2: the policy is postcard bytes of its
/// own, decoded only when needed.
#[derive(Serialize, Deserialize)]
struct WireResponse<'a> {
    status: u16,
    version: u8,
    response_time: i64,
    #[serde(borrow)]
    headers: Vec<(&'a str, &'a [u8])>,
    vary: Option<VaryMatch>,
    url: &'a str,
    method: &'a str,
    policy: &'a [u8],
}

/// What an entry's meta holds, as a request reads it: a stored response's
/// [`Head`], or a vary index.
#[derive(Debug)]
pub(crate) enum StoredHead {
    Response(Head),
    VaryIndex(VaryIndex),
}

/// What serving a stored response needs: everything but the caching
/// policy (the URL and method stay in the meta too).
#[derive(Clone, Debug)]
pub(crate) struct Head {
    /// The status code, as stored.
    pub(crate) status: u16,
    /// The HTTP version code (see [`ResponseMeta::version`]).
    pub(crate) version: u8,
    /// When the response was received (ms since the Unix epoch).
    pub(crate) response_time: i64,
    /// The stored headers, every value kept.
    pub(crate) headers: HeaderMap,
    /// The `Vary` selection, if the response varies.
    pub(crate) vary: Option<VaryMatch>,
}

/// Why meta bytes could not be decoded.
#[derive(Debug)]
pub(crate) struct MetaError(pub(crate) String);

fn too_many(_: http::header::MaxSizeReached) -> MetaError {
    MetaError("more headers than a HeaderMap holds".to_owned())
}

fn decode_error(e: postcard::Error) -> MetaError {
    MetaError(format!("decode: {e}"))
}

impl StoredMeta {
    /// Encodes in the current version (2).
    pub(crate) fn encode(&self) -> Result<Bytes, MetaError> {
        let encode_error = |e: postcard::Error| MetaError(format!("encode: {e}"));
        let policy_bytes;
        let wire = match self {
            StoredMeta::Response(m) => {
                policy_bytes = postcard::to_stdvec(&m.policy).map_err(encode_error)?;
                WireMeta::Response(WireResponse {
                    status: m.status,
                    version: m.version,
                    response_time: m.response_time,
                    headers: m
                        .headers
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_slice()))
                        .collect(),
                    vary: m.vary.clone(),
                    url: &m.url,
                    method: &m.method,
                    policy: &policy_bytes,
                })
            }
            StoredMeta::VaryIndex(index) => WireMeta::VaryIndex(index.clone()),
        };
        let out = postcard::to_extend(&wire, vec![META_VERSION]).map_err(encode_error)?;
        Ok(Bytes::from(out))
    }

    /// Decodes all of it, the policy included.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, MetaError> {
        match bytes.split_first() {
            Some((&META_VERSION, rest)) => {
                match postcard::from_bytes::<WireMeta<'_>>(rest).map_err(decode_error)? {
                    WireMeta::Response(r) => Ok(StoredMeta::Response(Box::new(ResponseMeta {
                        status: r.status,
                        headers: r
                            .headers
                            .iter()
                            .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
                            .collect(),
                        url: r.url.to_owned(),
                        method: r.method.to_owned(),
                        policy: postcard::from_bytes(r.policy).map_err(decode_error)?,
                        response_time: r.response_time,
                        vary: r.vary,
                        version: r.version,
                    }))),
                    WireMeta::VaryIndex(index) => Ok(StoredMeta::VaryIndex(index)),
                }
            }
            Some((&META_VERSION_1, rest)) => postcard::from_bytes(rest).map_err(decode_error),
            Some((v, _)) => Err(MetaError(format!("unknown meta version {v}"))),
            None => Err(MetaError("empty meta".to_owned())),
        }
    }
}

impl StoredHead {
    /// Decodes what a request needs, leaving the policy encoded (version
    /// 2; version 1 decodes whole). Header values share `bytes`' memory.
    pub(crate) fn decode(bytes: &Bytes) -> Result<Self, MetaError> {
        let Some((&META_VERSION, rest)) = bytes.split_first() else {
            return Ok(match StoredMeta::decode(bytes)? {
                StoredMeta::Response(m) => StoredHead::Response(Head {
                    status: m.status,
                    version: m.version,
                    response_time: m.response_time,
                    headers: m.try_header_map()?,
                    vary: m.vary,
                }),
                StoredMeta::VaryIndex(index) => StoredHead::VaryIndex(index),
            });
        };
        Ok(
            match postcard::from_bytes::<WireMeta<'_>>(rest).map_err(decode_error)? {
                WireMeta::Response(r) => {
                    let mut headers =
                        HeaderMap::try_with_capacity(r.headers.len()).map_err(too_many)?;
                    // `value` borrows from `bytes` (postcard reads in place),
                    // so `slice_ref` shares it without a copy.
                    for (name, value) in r.headers {
                        if let (Ok(n), Ok(v)) = (
                            HeaderName::from_bytes(name.as_bytes()),
                            HeaderValue::from_maybe_shared(bytes.slice_ref(value)),
                        ) {
                            headers.try_append(n, v).map_err(too_many)?;
                        }
                    }
                    StoredHead::Response(Head {
                        status: r.status,
                        version: r.version,
                        response_time: r.response_time,
                        headers,
                        vary: r.vary,
                    })
                }
                WireMeta::VaryIndex(index) => StoredHead::VaryIndex(index),
            },
        )
    }
}

impl Head {
    /// The head of a whole meta.
    pub(crate) fn of(meta: &ResponseMeta) -> Self {
        Head {
            status: meta.status,
            version: meta.version,
            response_time: meta.response_time,
            headers: meta.header_map(),
            vary: meta.vary.clone(),
        }
    }

    /// The status code (a stored code outside 100–999 reads as 500).
    pub(crate) fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The response's age at `now` (see [`age`]).
    pub(crate) fn age(&self, now: Timestamp) -> Duration {
        age(&self.headers, self.response_time, now)
    }
}

/// The age at `now` of a response with stored `headers` received at
/// `response_time` (ms): its `Age` header plus the time since — what
/// `CachePolicy::age` computes from the same stored headers and time (but
/// saturating instead of overflowing).
pub(crate) fn age(headers: &HeaderMap, response_time: i64, now: Timestamp) -> Duration {
    let header = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    Duration::from_secs(header)
        .saturating_add(now.duration_since(Timestamp::from_millis(response_time)))
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
        self.try_header_map().unwrap_or_default()
    }

    /// [`header_map`](Self::header_map), or an error when there are more
    /// headers than a `HeaderMap` holds (hostile meta; it would panic).
    pub(crate) fn try_header_map(&self) -> Result<HeaderMap, MetaError> {
        let mut map = HeaderMap::try_with_capacity(self.headers.len()).map_err(too_many)?;
        for (name, value) in &self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                map.try_append(n, v).map_err(too_many)?;
            }
        }
        Ok(map)
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

    /// Meta as version 1 wrote it: the whole `StoredMeta`, policy inline.
    fn encode_v1(m: &ResponseMeta) -> Bytes {
        let body = postcard::to_stdvec(&StoredMeta::Response(Box::new(m.clone()))).unwrap();
        Bytes::from([&[META_VERSION_1][..], &body].concat())
    }

    fn head(bytes: &Bytes) -> Head {
        match StoredHead::decode(bytes).unwrap() {
            StoredHead::Response(h) => h,
            StoredHead::VaryIndex(_) => panic!("not a response"),
        }
    }

    #[test]
    fn version_1_meta_still_reads() {
        let m = meta();
        let bytes = encode_v1(&m);
        let back = ResponseMeta::decode(&bytes).unwrap();
        assert_eq!(back.headers, m.headers);
        assert_eq!((back.url.as_str(), back.response_time), ("http://h/a", 5));
        let h = head(&bytes);
        assert_eq!((h.status, h.version, h.response_time), (200, 20, 5));
        assert_eq!(h.headers, m.header_map());
        assert_eq!(h.vary, m.vary);
        let index = VaryIndex {
            names: vec!["accept".into()],
            nonce: 9,
        };
        let body = postcard::to_stdvec(&StoredMeta::VaryIndex(index.clone())).unwrap();
        let bytes = Bytes::from([&[META_VERSION_1][..], &body].concat());
        assert!(matches!(StoredHead::decode(&bytes), Ok(StoredHead::VaryIndex(i)) if i == index));
    }

    #[test]
    fn the_head_reads_without_the_policy_and_its_age_is_the_policys() {
        let req = http::Request::get("http://h/a").body(()).unwrap();
        let res = http::Response::builder()
            .header("cache-control", "max-age=60")
            .header("age", "50")
            .header("x-custom", "kept")
            .body(())
            .unwrap();
        let received = Timestamp::from_millis(1_700_000_000_123);
        let policy =
            CachePolicy::new_options(&req, &res, received.to_system_time(), Default::default());
        let m = ResponseMeta {
            response_time: received.as_millis(),
            headers: header_list(res.headers()),
            policy,
            ..meta()
        };
        let bytes = m.encode().unwrap();
        let h = head(&bytes);
        assert_eq!(h.headers, m.header_map());
        assert_eq!(h.vary, m.vary);
        for later_ms in [0, 999, 9_001, 3_600_000] {
            let now = Timestamp::from_millis(received.as_millis() + later_ms);
            assert_eq!(h.age(now), m.policy.age(now.to_system_time()), "{later_ms}");
        }
        // The policy is still there, whole, for a 304.
        let whole = ResponseMeta::decode(&bytes).unwrap();
        assert_eq!(whole.policy.age(received.to_system_time()).as_secs(), 50);
        // A policy that does not decode spoils the whole meta, not the head.
        let mut spoiled = bytes.to_vec();
        let last = spoiled.len() - 1;
        spoiled[last] = 0xff;
        let spoiled = Bytes::from(spoiled);
        assert!(StoredMeta::decode(&spoiled).is_err());
        assert_eq!(head(&spoiled).headers, m.header_map());
    }

    #[test]
    fn a_huge_age_header_saturates_where_the_policy_overflows() {
        let req = http::Request::get("http://h/a").body(()).unwrap();
        let res = http::Response::builder()
            .header("age", u64::MAX.to_string())
            .body(())
            .unwrap();
        let received = Timestamp::from_millis(1_700_000_000_000);
        let policy =
            CachePolicy::new_options(&req, &res, received.to_system_time(), Default::default());
        let later = Timestamp::from_millis(received.as_millis() + 1000);
        let overflow = std::panic::catch_unwind(|| policy.age(later.to_system_time()));
        assert!(overflow.is_err(), "CachePolicy::age panics here");
        let m = ResponseMeta {
            response_time: received.as_millis(),
            headers: header_list(res.headers()),
            policy,
            ..meta()
        };
        let h = head(&m.encode().unwrap());
        assert!(h.age(later) >= Duration::from_secs(u64::MAX));
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn decode_all(bytes: Bytes) {
        let _ = StoredHead::decode(&bytes);
        let _ = StoredMeta::decode(&bytes);
        if let Ok(StoredHead::Response(h)) = StoredHead::decode(&bytes) {
            let _ = h.age(Timestamp::from_millis(i64::MAX));
            let _ = h.age(Timestamp::from_millis(i64::MIN));
            let _ = h.status_code();
        }
    }

    /// Random bytes, and valid meta with bytes flipped or cut, never panic.
    #[test]
    fn random_and_mutated_meta_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let v2 = meta().encode().unwrap().to_vec();
        let v1 = encode_v1(&meta()).to_vec();
        for i in 0..200_000 {
            let r = xorshift(&mut seed);
            let bytes: Vec<u8> = match i % 3 {
                0 => {
                    let len = (r % 300) as usize;
                    let mut b: Vec<u8> = (0..len).map(|_| xorshift(&mut seed) as u8).collect();
                    if let Some(first) = b.first_mut() {
                        *first = 1 + (r >> 32) as u8 % 2;
                    }
                    b
                }
                1 => {
                    let mut b = if r & 1 == 0 { v2.clone() } else { v1.clone() };
                    for _ in 0..1 + (r >> 8) % 4 {
                        let at = 1 + (xorshift(&mut seed) as usize) % (b.len() - 1);
                        b[at] = xorshift(&mut seed) as u8;
                    }
                    b
                }
                _ => {
                    let b = if r & 1 == 0 { &v2 } else { &v1 };
                    b[..(r as usize >> 3) % b.len()].to_vec()
                }
            };
            decode_all(Bytes::from(bytes));
        }
    }

    /// Hostile stored meta with many (tiny) headers: a hit must be a
    /// counted miss, not a panic in `HeaderMap::with_capacity`.
    #[test]
    fn meta_with_very_many_headers_does_not_panic() {
        let m = ResponseMeta {
            headers: vec![("a".to_owned(), b"b".to_vec()); 25_000],
            ..meta()
        };
        let v2 = m.encode().unwrap();
        assert!(v2.len() < 200_000, "{} bytes", v2.len());
        let head = std::panic::catch_unwind(|| StoredHead::decode(&v2).is_ok());
        assert!(
            head.is_ok(),
            "StoredHead::decode panicked on {} bytes of meta",
            v2.len()
        );
        let whole = std::panic::catch_unwind(|| ResponseMeta::decode(&v2).map(|m| m.header_map()));
        assert!(whole.is_ok(), "ResponseMeta::header_map panicked");
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
