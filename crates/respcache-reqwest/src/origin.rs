//! The origin side of the middleware: the caller's `reqwest::Client` as
//! the `tower::Service` the cache engine sends through.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use respcache_http::hyper::body::Body as _;
use respcache_http::{FinalUrl, RequestBody, SyncBody};

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
                    // reqwest asks for a `Sync` body.
                    reqwest::Body::wrap(SyncBody::new(body))
                }
            });
            let request = reqwest::Request::try_from(request)?;
            let response = client.execute(request).await?;
            // The client follows redirects itself: the engine learns the
            // URL that answered (and stores the answer under it, with a
            // pointer from the URL asked).
            let url = FinalUrl(response.url().clone());
            let mut response = http::Response::from(response);
            response.extensions_mut().insert(url);
            Ok(response)
        })
    }
}
