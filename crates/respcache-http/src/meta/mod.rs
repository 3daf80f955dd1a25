//! [`ResponseMeta`]: what the HTTP layer keeps in an entry's `meta` bytes —
//! status, every header in order (multi-valued headers kept), the final URL,
//! the response's age on arrival and a checksum of its body — encoded with
//! postcard behind a version byte. Bytes that do not decode are a miss,
//! never an error.
//!
//! Version 4 (written now) holds what this crate's own RFC 9111 rules need:
//! the corrected initial age (§4.2.3), and the body's length and XXH3-128
//! hash, checked on every read, so a payload replaced or damaged behind the
//! meta's back is a counted miss. Version 3 is the same with a BLAKE3 hash
//! (still read and checked). The check guards against damage, not an
//! attacker — whoever can rewrite a payload can rewrite its meta too — so
//! it needs a checksum, not a cryptographic hash: XXH3 (RocksDB's block
//! checksum) hashes a 1 KiB body in a few hundred instructions where BLAKE3
//! took ~9,000, a quarter of a memory hit. Version 2 (an
//! `http-cache-semantics` policy beside the head) still reads: its policy
//! is skipped, its initial age is its `Age` header, and its body is not
//! checked. Version 1 (the policy inline, unreadable without that crate) is
//! a counted miss.
//! Header values borrow from the meta bytes, so a hit copies none.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use respcache_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::rules::age;

/// The first byte of every meta this version writes.
pub const META_VERSION: u8 = 4;

/// The first byte of version 3 meta (BLAKE3 body hashes; still read).
const META_VERSION_3: u8 = 3;

/// The first byte of version 2 meta (still read).
const META_VERSION_2: u8 = 2;

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
    /// When the response was received (ms since the Unix epoch).
    pub response_time: i64,
    /// Its corrected initial age in seconds (RFC 9111 §4.2.3): how old it
    /// already was when it arrived.
    pub initial_age: u64,
    /// The stored body's length and hash, when recorded (versions 3 and 4).
    pub body: Option<BodyCheck>,
    /// The headers the response varies on and a digest of the request's
    /// values of them (never the values themselves).
    pub vary: Option<VaryMatch>,
    /// The HTTP version the origin answered with: 9, 10, 11, 20 or 30.
    pub version: u8,
}

/// The length and hash of a stored body: a payload that does not match is
/// not served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyCheck {
    /// The body's length in bytes.
    pub len: u64,
    /// Its hash.
    pub hash: BodyHash,
}

/// The hash in a [`BodyCheck`]. (The variants' order is part of meta
/// version 4's wire form.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyHash {
    /// XXH3-128 (little-endian), what meta version 4 writes.
    Xxh3([u8; 16]),
    /// BLAKE3, what meta version 3 wrote (kept when such an entry is
    /// rewritten without its body, after a `304`).
    Blake3([u8; 32]),
}

impl BodyCheck {
    /// The check of `body`.
    pub fn of(body: &[u8]) -> Self {
        BodyCheck {
            len: body.len() as u64,
            hash: BodyHash::Xxh3(xxh3(body)),
        }
    }

    /// Whether `body` is the body this check was made of.
    pub fn matches(&self, body: &[u8]) -> bool {
        self.len == body.len() as u64
            && match &self.hash {
                BodyHash::Xxh3(h) => xxh3(body) == *h,
                BodyHash::Blake3(h) => blake3::hash(body).as_bytes() == h,
            }
    }
}

fn xxh3(body: &[u8]) -> [u8; 16] {
    xxhash_rust::xxh3::xxh3_128(body).to_le_bytes()
}

/// A [`BodyCheck`] as version 3 wrote it.
#[derive(Deserialize)]
struct BodyCheckV3 {
    len: u64,
    blake3: [u8; 32],
}

impl From<BodyCheckV3> for BodyCheck {
    fn from(v3: BodyCheckV3) -> Self {
        BodyCheck {
            len: v3.len,
            hash: BodyHash::Blake3(v3.blake3),
        }
    }
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
#[derive(Clone, Debug)]
pub(crate) enum StoredMeta {
    Response(Box<ResponseMeta>),
    VaryIndex(VaryIndex),
}

/// What an entry's meta holds, as version 4 encodes it (version 3 is the
/// same with `C` = [`BodyCheckV3`]): read in place (strings and bytes
/// borrow from the meta).
#[derive(Serialize, Deserialize)]
enum WireMeta<'a, C = BodyCheck> {
    #[serde(borrow)]
    Response(WireResponse<'a, C>),
    VaryIndex(VaryIndex),
}

/// A [`ResponseMeta`] in versions 3 and 4; what the store stage encodes
/// straight from a response it holds ([`WireResponse::encode`]).
#[derive(Serialize, Deserialize)]
pub(crate) struct WireResponse<'a, C = BodyCheck> {
    pub(crate) status: u16,
    pub(crate) version: u8,
    pub(crate) response_time: i64,
    pub(crate) initial_age: u64,
    pub(crate) body: Option<C>,
    #[serde(borrow)]
    pub(crate) headers: WireHeaders<'a>,
    pub(crate) vary: Option<VaryMatch>,
    pub(crate) url: &'a [u8],
    pub(crate) method: &'a [u8],
}

/// Header names and values as the wire holds them. Names, the URL and the
/// method were written as strings; postcard writes a string and a byte
/// slice alike (a length, then the bytes), so they read back as bytes:
/// a hit does not check UTF-8 that `HeaderName::from_bytes` checks anyway,
/// nor that of a URL and method it does not use.
pub(crate) type WireHeaders<'a> = Vec<(&'a [u8], &'a [u8])>;

/// Version 2's wire form (its policy bytes are skipped).
#[derive(Deserialize)]
enum WireMetaV2<'a> {
    #[serde(borrow)]
    Response(WireResponseV2<'a>),
    VaryIndex(VaryIndex),
}

#[derive(Deserialize)]
struct WireResponseV2<'a> {
    status: u16,
    version: u8,
    response_time: i64,
    #[serde(borrow)]
    headers: WireHeaders<'a>,
    vary: Option<VaryMatch>,
    url: &'a [u8],
    method: &'a [u8],
    #[allow(dead_code)]
    policy: &'a [u8],
}

impl<'a> From<WireMetaV2<'a>> for WireMeta<'a> {
    fn from(v2: WireMetaV2<'a>) -> Self {
        match v2 {
            WireMetaV2::VaryIndex(i) => WireMeta::VaryIndex(i),
            WireMetaV2::Response(r) => {
                let mut w = WireResponse {
                    status: r.status,
                    version: r.version,
                    response_time: r.response_time,
                    initial_age: 0,
                    body: None,
                    headers: r.headers,
                    vary: r.vary,
                    url: r.url,
                    method: r.method,
                };
                // Version 2 counted the stored `Age` header as the age on
                // arrival.
                w.initial_age = w
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(b"age"))
                    .and_then(|(_, v)| std::str::from_utf8(v).ok())
                    .and_then(|v| age::delta_seconds(v.split(',').next().unwrap_or("").trim()))
                    .unwrap_or(0);
                WireMeta::Response(w)
            }
        }
    }
}

/// What an entry's meta holds, as a request reads it: a stored response's
/// [`Head`], or a vary index.
#[derive(Clone, Debug)]
pub(crate) enum StoredHead {
    Response(Head),
    VaryIndex(VaryIndex),
}

/// What serving a stored response needs (the URL and method stay in the
/// meta too).
#[derive(Debug)]
pub(crate) struct Head {
    /// The status code, as stored.
    pub(crate) status: u16,
    /// The HTTP version code (see [`ResponseMeta::version`]).
    pub(crate) version: u8,
    /// When the response was received (ms since the Unix epoch).
    pub(crate) response_time: i64,
    /// Its corrected initial age in seconds.
    pub(crate) initial_age: u64,
    /// The body's check, when recorded.
    pub(crate) body: Option<BodyCheck>,
    /// The stored headers, every value kept.
    pub(crate) headers: HeaderMap,
    /// The `Vary` selection, if the response varies.
    pub(crate) vary: Option<VaryMatch>,
}

impl Clone for Head {
    /// A copy whose header map has room for one more field: a hit's head is
    /// a clone of the one decoded before (`stored_heads.rs`), and serving
    /// it adds `Age` — a derived clone holds no spare room, so that insert
    /// reallocated the map's entries on every hit.
    fn clone(&self) -> Self {
        Head {
            status: self.status,
            version: self.version,
            response_time: self.response_time,
            initial_age: self.initial_age,
            body: self.body,
            headers: with_room(&self.headers).unwrap_or_else(|_| self.headers.clone()),
            vary: self.vary.clone(),
        }
    }
}

/// A copy of `headers`, every value in order, with room for one more field
/// (the `try_` forms: a map at the size limit is cloned as it is).
fn with_room(headers: &HeaderMap) -> Result<HeaderMap, http::header::MaxSizeReached> {
    let mut copy = HeaderMap::try_with_capacity(headers.keys_len() + 1)?;
    for (name, value) in headers {
        copy.try_append(name.clone(), value.clone())?;
    }
    Ok(copy)
}

/// Why meta bytes could not be decoded.
#[derive(Debug)]
pub(crate) struct MetaError(pub(crate) String);

fn too_many(_: http::header::MaxSizeReached) -> MetaError {
    MetaError("more headers than a HeaderMap holds".to_owned())
}

/// `bytes` as text, or the error naming `what` was not.
fn text(bytes: &[u8], what: &str) -> Result<String, MetaError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| MetaError(format!("{what} is not UTF-8")))
}

fn decode_error(e: postcard::Error) -> MetaError {
    MetaError(format!("decode: {e}"))
}

impl WireResponse<'_> {
    /// Encodes in the current version, into a buffer sized for it once
    /// (a miss does not grow it through reallocations).
    pub(crate) fn encode(self) -> Result<Bytes, MetaError> {
        let strings: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum();
        let vary: usize = self.vary.as_ref().map_or(0, |v| {
            40 + v.names.iter().map(|n| n.len() + 2).sum::<usize>()
        });
        let size = 64 + strings + vary + self.url.len() + self.method.len();
        encode_wire(&WireMeta::Response(self), size)
    }
}

/// The version byte and the postcard encoding of `wire`.
fn encode_wire(wire: &WireMeta<'_>, size: usize) -> Result<Bytes, MetaError> {
    let mut out = Vec::with_capacity(size);
    out.push(META_VERSION);
    let out = postcard::to_extend(wire, out).map_err(|e| MetaError(format!("encode: {e}")))?;
    Ok(Bytes::from(out))
}

impl<'a, C> WireResponse<'a, C> {
    /// `m` in wire form, with `body` as its body check.
    fn of(m: &'a ResponseMeta, body: Option<C>) -> Self {
        WireResponse {
            status: m.status,
            version: m.version,
            response_time: m.response_time,
            initial_age: m.initial_age,
            body,
            headers: m.header_pairs(),
            vary: m.vary.clone(),
            url: m.url.as_bytes(),
            method: m.method.as_bytes(),
        }
    }
}

impl<'a> From<WireMeta<'a, BodyCheckV3>> for WireMeta<'a> {
    fn from(v3: WireMeta<'a, BodyCheckV3>) -> Self {
        match v3 {
            WireMeta::VaryIndex(i) => WireMeta::VaryIndex(i),
            WireMeta::Response(r) => WireMeta::Response(WireResponse {
                status: r.status,
                version: r.version,
                response_time: r.response_time,
                initial_age: r.initial_age,
                body: r.body.map(BodyCheck::from),
                headers: r.headers,
                vary: r.vary,
                url: r.url,
                method: r.method,
            }),
        }
    }
}

/// The wire form of any readable version.
fn wire(bytes: &[u8]) -> Result<WireMeta<'_>, MetaError> {
    match bytes.split_first() {
        Some((&META_VERSION, rest)) => postcard::from_bytes(rest).map_err(decode_error),
        Some((&META_VERSION_3, rest)) => postcard::from_bytes::<WireMeta<'_, BodyCheckV3>>(rest)
            .map(WireMeta::from)
            .map_err(decode_error),
        Some((&META_VERSION_2, rest)) => postcard::from_bytes::<WireMetaV2<'_>>(rest)
            .map(WireMeta::from)
            .map_err(decode_error),
        Some((v, _)) => Err(MetaError(format!(
            "meta version {v} is not read by this version"
        ))),
        None => Err(MetaError("empty meta".to_owned())),
    }
}

impl StoredMeta {
    /// Encodes in the current version.
    pub(crate) fn encode(&self) -> Result<Bytes, MetaError> {
        match self {
            StoredMeta::Response(m) => WireResponse::of(m, m.body).encode(),
            StoredMeta::VaryIndex(index) => encode_wire(&WireMeta::VaryIndex(index.clone()), 64),
        }
    }

    /// Decodes all of it.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, MetaError> {
        Ok(match wire(bytes)? {
            WireMeta::Response(r) => StoredMeta::Response(Box::new(ResponseMeta {
                status: r.status,
                headers: r
                    .headers
                    .iter()
                    .map(|(n, v)| Ok((text(n, "a header name")?, v.to_vec())))
                    .collect::<Result<_, MetaError>>()?,
                url: text(r.url, "the URL")?,
                method: text(r.method, "the method")?,
                response_time: r.response_time,
                initial_age: r.initial_age,
                body: r.body,
                vary: r.vary,
                version: r.version,
            })),
            WireMeta::VaryIndex(index) => StoredMeta::VaryIndex(index),
        })
    }
}

impl StoredHead {
    /// Decodes what a request needs. Header values share `bytes`' memory.
    pub(crate) fn decode(bytes: &Bytes) -> Result<Self, MetaError> {
        Ok(match wire(bytes)? {
            WireMeta::Response(r) => {
                let mut headers =
                    HeaderMap::try_with_capacity(r.headers.len()).map_err(too_many)?;
                // `value` borrows from `bytes` (postcard reads in place),
                // so `slice_ref` shares it without a copy.
                for (name, value) in r.headers {
                    if let (Ok(n), Ok(v)) = (
                        HeaderName::from_bytes(name),
                        HeaderValue::from_maybe_shared(bytes.slice_ref(value)),
                    ) {
                        headers.try_append(n, v).map_err(too_many)?;
                    }
                }
                StoredHead::Response(Head {
                    status: r.status,
                    version: r.version,
                    response_time: r.response_time,
                    initial_age: r.initial_age,
                    body: r.body,
                    headers,
                    vary: r.vary,
                })
            }
            WireMeta::VaryIndex(index) => StoredHead::VaryIndex(index),
        })
    }
}

impl Head {
    /// The head of a whole meta.
    pub(crate) fn of(meta: &ResponseMeta) -> Self {
        Head {
            status: meta.status,
            version: meta.version,
            response_time: meta.response_time,
            initial_age: meta.initial_age,
            body: meta.body,
            headers: meta.header_map(),
            vary: meta.vary.clone(),
        }
    }

    /// The status code (a stored code outside 100–999 reads as 500).
    pub(crate) fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The response's current age at `now` (RFC 9111 §4.2.3).
    pub(crate) fn age(&self, now: Timestamp) -> Duration {
        age::current(
            self.initial_age,
            Timestamp::from_millis(self.response_time),
            now,
        )
    }
}

impl ResponseMeta {
    /// The headers as borrowed (name, value) pairs: the wire form's.
    fn header_pairs(&self) -> WireHeaders<'_> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_slice()))
            .collect()
    }

    /// Encodes this meta as the HTTP layer stores it (version byte + postcard).
    pub fn encode(&self) -> Option<Bytes> {
        StoredMeta::Response(Box::new(self.clone())).encode().ok()
    }

    /// Decodes meta bytes written by the HTTP layer; `None` for anything
    /// else (an unread version, a vary index, corrupt bytes).
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

/// Owned copies of header pairs, every value kept.
pub(crate) fn header_list(pairs: &[(&[u8], &[u8])]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), v.to_vec()))
        .collect()
}

#[cfg(test)]
mod tests;
