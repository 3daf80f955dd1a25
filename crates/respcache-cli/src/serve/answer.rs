//! The answers the proxy sends: the cache's or upstream's, relayed, and its
//! own (errors and refusals).

use bytes::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use respcache_http::{ResponseBody, StreamingResponse};

use super::hop::drop_hop_by_hop;

/// The RFC 9211 response header.
pub(crate) const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// An answer to a client.
pub(crate) type Answer = Response<ResponseBody>;

/// The answer as the cache or the upstream gave it, with `Cache-Status`;
/// an upstream `101 Switching Protocols` is a `502`: the proxy never
/// forwards `Upgrade`, so no client of it asked to switch.
pub(crate) fn relay(response: StreamingResponse, head: bool) -> Answer {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        return own_answer(
            StatusCode::BAD_GATEWAY,
            "the upstream switched protocols, which was not asked for",
        );
    }
    let cache_status = response.cache_status().to_string();
    let status = response.status();
    let mut headers = response.headers().clone();
    let body = response.into_body();
    drop_hop_by_hop(&mut headers);
    if !head {
        // hyper sets the length from the body (whole, or streaming with
        // the upstream's exact length), else sends it chunked.
        headers.remove(header::CONTENT_LENGTH);
    }
    if let Ok(v) = HeaderValue::from_str(&cache_status) {
        headers.append(CACHE_STATUS, v);
    }
    let mut answer = Response::new(body);
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    answer
}

/// An answer the proxy makes itself (an error), never cached.
pub(crate) fn own_answer(status: StatusCode, text: &str) -> Answer {
    let mut answer = Response::new(ResponseBody::full(Bytes::from(format!(
        "respcache: {text}\n"
    ))));
    *answer.status_mut() = status;
    let h = answer.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        CACHE_STATUS,
        HeaderValue::from_static("respcache; detail=proxy-error"),
    );
    answer
}
