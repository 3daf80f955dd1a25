//! A client's preconditions and ranges, answered from a complete `200`
//! (RFC 9111 §4.3.2, RFC 9110 §13–14): `If-None-Match` / `If-Modified-Since`
//! that the stored response satisfies give a `304 Not Modified`; a single
//! byte `Range` gives a `206` with `Content-Range`, or `416` when no byte of
//! it exists; a partial answer (`206`) is cut to the range asked for within
//! it.

use bytes::Bytes;
use http::header::{
    CONTENT_LENGTH, CONTENT_RANGE, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, RANGE,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use respcache_core::Timestamp;

use crate::response::CachedResponse;
use crate::rules::{conditional, range};

/// The headers a `304` carries from the stored response (RFC 9110
/// §15.4.5, plus `Age` and `Last-Modified`, which let a client's own cache
/// update its copy).
const KEPT_BY_304: [&str; 8] = [
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "vary",
    "age",
    "last-modified",
];

/// The request's preconditions and range, when it has any.
#[derive(Clone, Debug)]
pub(crate) struct Asks {
    headers: HeaderMap,
    method: Method,
}

impl Asks {
    /// `None` (nothing copied) for a request without preconditions or a
    /// range: the common case.
    pub(crate) fn of(method: &Method, request: &HeaderMap) -> Option<Self> {
        let names = [IF_NONE_MATCH, IF_MODIFIED_SINCE, RANGE, IF_RANGE];
        if !names.iter().any(|n| request.contains_key(n)) {
            return None;
        }
        let mut headers = HeaderMap::new();
        for n in names {
            for v in request.get_all(&n) {
                headers.append(n.clone(), v.clone());
            }
        }
        Some(Asks {
            headers,
            method: method.clone(),
        })
    }

    /// `r` as the request asks for it: a whole `200` to a GET or HEAD
    /// answers its preconditions and range, a partial answer (`206`) to a
    /// GET is cut to the range asked within it; anything else is unchanged.
    pub(crate) fn apply(&self, mut r: CachedResponse, now: Timestamp) -> CachedResponse {
        let get = self.method == Method::GET;
        if r.status == StatusCode::PARTIAL_CONTENT && get && !r.tail.is_streaming() {
            return self.cut_partial(r);
        }
        if r.status != StatusCode::OK
            || r.tail.is_streaming()
            || !(get || self.method == Method::HEAD)
        {
            return r;
        }
        if conditional::is_conditional(&self.headers) {
            let received = r.created_at.unwrap_or(now);
            if conditional::not_modified(&self.headers, &r.headers, received) {
                r.status = StatusCode::NOT_MODIFIED;
                let kept: HeaderMap = r
                    .headers
                    .iter()
                    .filter(|(n, _)| KEPT_BY_304.contains(&n.as_str()))
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect();
                r.headers = kept;
                r.body = Bytes::new();
            }
            return r;
        }
        if !get {
            return r;
        }
        let len = r.body.len() as u64;
        match range::answer(&self.headers, &r.headers, len) {
            range::Answer::Whole => {}
            range::Answer::Partial { first, last } => {
                let (Ok(from), Ok(to)) = (usize::try_from(first), usize::try_from(last)) else {
                    return r;
                };
                r.status = StatusCode::PARTIAL_CONTENT;
                r.body = r.body.slice(from..=to);
                set(
                    &mut r.headers,
                    CONTENT_RANGE,
                    format!("bytes {first}-{last}/{len}"),
                );
                set(&mut r.headers, CONTENT_LENGTH, r.body.len().to_string());
            }
            range::Answer::Unsatisfiable => {
                r.status = StatusCode::RANGE_NOT_SATISFIABLE;
                r.body = Bytes::new();
                set(&mut r.headers, CONTENT_RANGE, format!("bytes */{len}"));
                set(&mut r.headers, CONTENT_LENGTH, "0".to_owned());
            }
        }
        r
    }

    /// A partial answer (a stored `206`, or the origin's) cut to the range
    /// the request asks for, when it holds it (RFC 9111 §3.3); unchanged
    /// otherwise.
    fn cut_partial(&self, mut r: CachedResponse) -> CachedResponse {
        let Some(held) = range::held(&r.headers, r.body.len() as u64) else {
            return r;
        };
        let Some((first, last)) = range::within(&self.headers, &r.headers, held) else {
            return r;
        };
        let (Ok(from), Ok(to)) = (
            usize::try_from(first - held.first),
            usize::try_from(last - held.first),
        ) else {
            return r;
        };
        r.body = r.body.slice(from..=to);
        set(
            &mut r.headers,
            CONTENT_RANGE,
            format!("bytes {first}-{last}/{}", held.complete),
        );
        set(&mut r.headers, CONTENT_LENGTH, r.body.len().to_string());
        r
    }
}

fn set(headers: &mut HeaderMap, name: http::HeaderName, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(name, v);
    }
}
