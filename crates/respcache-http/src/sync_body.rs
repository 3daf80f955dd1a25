//! [`SyncBody`]: a body that is `Sync` whatever it wraps, for the places
//! that ask for `Sync` bodies (reqwest's `Body::wrap`, boxed bodies) when
//! the body at hand is only `Send` (axum's, for one).

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, SizeHint};

/// A body made `Sync` by a lock that polling never takes: a body is only
/// polled through `&mut`, which reaches the inside without locking. Only
/// [`is_end_stream`](Body::is_end_stream) and
/// [`size_hint`](Body::size_hint), which take `&self`, lock (uncontended).
#[derive(Debug)]
pub struct SyncBody<B>(Mutex<B>);

impl<B> SyncBody<B> {
    /// Wraps `body`.
    pub fn new(body: B) -> Self {
        SyncBody(Mutex::new(body))
    }
}

impl<B> Body for SyncBody<B>
where
    B: Body + Unpin,
    B::Error: From<&'static str>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        match self.get_mut().0.get_mut() {
            Ok(body) => Pin::new(body).poll_frame(cx),
            // Only a panic inside `is_end_stream` or `size_hint` poisons it.
            Err(_) => Poll::Ready(Some(Err(B::Error::from("the body's lock was poisoned")))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.lock().map_or(true, |b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .lock()
            .map_or_else(|_| SizeHint::default(), |b| b.size_hint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::BoxError;
    use http_body_util::BodyExt as _;
    use http_body_util::combinators::UnsyncBoxBody;

    fn is_sync<T: Sync>(_: &T) {}

    #[tokio::test]
    async fn a_send_only_body_reads_the_same_through_it() {
        let unsync: UnsyncBoxBody<bytes::Bytes, BoxError> =
            http_body_util::Full::new(bytes::Bytes::from_static(b"abc"))
                .map_err(|e| -> BoxError { match e {} })
                .boxed_unsync();
        let body = SyncBody::new(unsync);
        is_sync(&body);
        assert_eq!(body.size_hint().exact(), Some(3));
        assert!(!body.is_end_stream());
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"abc");
    }
}
