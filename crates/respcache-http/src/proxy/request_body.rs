//! Request bodies of the methods the cache answers (GET, HEAD), read whole
//! (they are part of the cache key) within the proxy's body size limit,
//! body time limit and shared buffer budget: each body reserves the memory
//! it holds from the budget as it grows (its whole `Content-Length` at once
//! when it has one), and keeps it until the request is done.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http::header::{self, HeaderValue};
use http_body_util::BodyExt;
use hyper::body::Body;

use super::answer::{Answer, own_answer};
use crate::budget::BufferBudget;

/// What a client is told to wait before retrying over budget, in seconds.
const RETRY_AFTER: &str = "1";

/// Why a request body was not read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Larger than the body size limit.
    TooLarge,
    /// The budget cannot hold it now.
    OverBudget,
    /// Not all sent within the body time limit.
    TimedOut,
    /// The connection failed mid-body.
    Failed,
}

impl BodyError {
    /// The proxy's answer.
    pub(crate) fn answer(&self) -> Answer {
        match self {
            BodyError::TooLarge => own_answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is larger than the proxy's body size limit",
            ),
            BodyError::OverBudget => {
                let mut a = own_answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many request bodies held at once (the proxy's buffer budget); retry later",
                );
                a.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
                a
            }
            BodyError::TimedOut => own_answer(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive within the proxy's body time limit",
            ),
            BodyError::Failed => {
                own_answer(StatusCode::BAD_REQUEST, "reading the request body failed")
            }
        }
    }
}

/// Reads `body` whole: at most `max` bytes, within `deadline`, its memory
/// reserved from `budget` (held by the returned bytes until dropped).
pub(crate) async fn read_whole<B>(
    body: B,
    max: usize,
    budget: &BufferBudget,
    deadline: Duration,
) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
{
    if body.is_end_stream() {
        // Most GETs: no body, nothing to hold or wait for.
        return Ok(Bytes::new());
    }
    let hint = body.size_hint();
    let mut body = std::pin::pin!(body);
    if hint.lower() > max as u64 {
        return Err(BodyError::TooLarge);
    }
    let exact = hint
        .exact()
        .map_or(0, |n| usize::try_from(n).unwrap_or(max).min(max));
    let mut held = budget.try_reserve(exact).ok_or(BodyError::OverBudget)?;
    let mut buf = BytesMut::with_capacity(exact);
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| BodyError::Failed)?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if buf.len() + data.len() > max {
                return Err(BodyError::TooLarge);
            }
            buf.reserve(data.len());
            let grown = buf.capacity().saturating_sub(held.bytes());
            if grown > 0 && !held.try_grow(grown) {
                return Err(BodyError::OverBudget);
            }
            buf.extend_from_slice(&data);
        }
        Ok(())
    };
    tokio::time::timeout(deadline, read)
        .await
        .map_err(|_| BodyError::TimedOut)??;
    Ok(held.attach(buf.freeze()))
}
