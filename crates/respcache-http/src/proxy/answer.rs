//! The answers the proxy sends: the cache's or upstream's, relayed, and its
//! own (errors and refusals).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::body::ResponseBody;
use crate::error::{Error, ErrorKind};
use crate::hop::drop_hop_by_hop;
use crate::layer::CACHE_STATUS;
use crate::streaming::StreamingResponse;

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
    let (stored, body) = response.into_parts();
    let mut headers = stored.headers;
    drop_hop_by_hop(&mut headers);
    if !head {
        // hyper sets the length from the body (whole, or streaming with
        // the upstream's exact length), else sends it chunked.
        headers.remove(header::CONTENT_LENGTH);
    }
    if let Some(v) = stored.cache_status.header_value() {
        headers.append(CACHE_STATUS, v);
    }
    let mut answer = Response::new(body);
    *answer.status_mut() = stored.status;
    *answer.headers_mut() = headers;
    answer
}

/// An answer the proxy (or the server layer) makes itself (an error or a
/// refusal), never cached.
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
        HeaderValue::from_static("respcache; detail=error"),
    );
    answer
}

/// Why the upstream request failed, in the extensions of the proxy's own
/// answer to it (`502`, `504`, or `400` for a request the upstream could
/// not be sent): a program embedding [`Proxy`](super::Proxy) reads it to
/// log or count the failure.
///
/// ```
/// use respcache_http::proxy::UpstreamError;
///
/// fn report(answer: &http::Response<respcache_http::ResponseBody>) {
///     if let Some(failure) = answer.extensions().get::<UpstreamError>() {
///         eprintln!("upstream: {}", failure.error());
///     }
/// }
/// # report(&http::Response::new(respcache_http::ResponseBody::full("")));
/// ```
#[derive(Clone, Debug)]
pub struct UpstreamError(Arc<Error>);

impl UpstreamError {
    /// The failure, as the client reported it (its URL redacted).
    pub fn error(&self) -> &Error {
        &self.0
    }
}

/// The answer to a failed request, for the proxy and the server layer:
/// `504` after the time limit, `400` for a request that could not be sent,
/// `500` for a fault of the cache's own (a panic caught in its work), `502`
/// otherwise (the upstream or the wrapped service failed), with the error
/// in its extensions and only its kind in the body.
pub(crate) fn upstream_failed(error: Error) -> Answer {
    let status = match error.kind() {
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::InvalidUrl | ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Internal | ErrorKind::Configuration | ErrorKind::Cache => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::BAD_GATEWAY,
    };
    let mut answer = own_answer(status, &format!("upstream {}", error.kind()));
    answer
        .extensions_mut()
        .insert(UpstreamError(Arc::new(error)));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_failures_map_to_gateway_statuses_with_the_error_attached() {
        for (kind, status) in [
            (ErrorKind::Connection, 502),
            (ErrorKind::Timeout, 504),
            (ErrorKind::InvalidRequest, 400),
            (ErrorKind::Internal, 500),
        ] {
            let answer = upstream_failed(Error::new(kind, "why"));
            assert_eq!(answer.status(), status, "{kind:?}");
            let attached = answer.extensions().get::<UpstreamError>().unwrap();
            assert_eq!(attached.error().kind(), kind);
            assert_eq!(answer.headers()[header::CACHE_CONTROL], "no-store");
        }
    }
}
