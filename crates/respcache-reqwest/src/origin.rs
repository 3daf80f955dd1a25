//! The origin side of the middleware: the caller's `reqwest::Client` as
//! the `tower::Service` the cache engine sends through.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use respcache_http::RequestBody;
use respcache_http::hyper::body::{Body, Frame, SizeHint};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A `reqwest::Client` taking the cache engine's requests.
#[derive(Clone, Debug)]
pub(crate) struct ReqwestOrigin(pub(crate) reqwest::Client);

type Answer = Result<http::Response<reqwest::Body>, reqwest::Error>;

impl tower::Service<http::Request<RequestBody>> for ReqwestOrigin {
    type Response = http::Response<reqwest::Body>;
    type Error = reqwest::Error;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), reqwest::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let client = self.0.clone();
        Box::pin(async move {
            let request = request.map(|body| {
                // An empty body stays empty (no chunked GET).
                if body.is_end_stream() {
                    reqwest::Body::from(Bytes::new())
                } else {
                    reqwest::Body::wrap(Shareable(Mutex::new(body)))
                }
            });
            let request = reqwest::Request::try_from(request)?;
            let response = client.execute(request).await?;
            Ok(http::Response::from(response))
        })
    }
}

/// A request body reqwest can take (it asks for `Sync`): the body is only
/// ever polled through `&mut`, so the lock is never taken.
struct Shareable(Mutex<RequestBody>);

impl Body for Shareable {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut().0.get_mut() {
            Ok(body) => Pin::new(body).poll_frame(cx),
            Err(_) => Poll::Ready(Some(Err("the request body's lock was poisoned".into()))),
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
