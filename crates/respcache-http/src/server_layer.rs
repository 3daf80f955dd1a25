//! [`ServerCacheLayer`]: the cache in front of a server — an axum `Router`,
//! a hyper `service_fn`, any `tower::Service` that answers requests — as a
//! shared cache, and [`ServerCacheService`], the service it makes.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::Body;

use crate::body::{BoxError, ResponseBody};
use crate::layer::{CacheLayer, CacheService, respond};
use crate::origin::RequestBody;
use crate::proxy::answer::upstream_failed;

/// A `tower::Layer` that puts a shared cache in front of a server's
/// service: identical requests are answered once by the service and then
/// from the stores, by the HTTP caching rules of a shared cache (RFC 9111:
/// `private` answers and answers to requests with `Authorization` are not
/// reused unless the answer allows it, `no-store` is never stored, `Vary`
/// keeps each variant apart; identical requests that arrive together make
/// one call to the service). Every answer carries a `Cache-Status` header
/// (RFC 9211).
///
/// Built with [`CachedClientBuilder::server_layer`](crate::CachedClientBuilder::server_layer).
/// The wrapped service sees each request as a server does (a path-and-query
/// target, the `Host` header, the request's extensions); a redirect it
/// answers is passed back, never followed. The service it makes never
/// fails: a service error becomes `502`, a request the cache cannot read
/// `400`, a timeout `504` (the proxy's answers, with the error as a
/// [`UpstreamError`](crate::proxy::UpstreamError) in the extensions) — so
/// it fits where axum and hyper want infallible services.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use std::{convert::Infallible, sync::Arc};
/// use respcache_core::MemoryBackend;
/// use respcache_http::{CachedClient, RequestBody};
/// use tower::ServiceExt as _;
///
/// // The server's own service: here a function; an axum `Router` works the same.
/// let app = tower::service_fn(|_request: http::Request<RequestBody>| async {
///     let answer = http::Response::builder()
///         .header("cache-control", "public, max-age=60")
///         .body(http_body_util::Full::new(bytes::Bytes::from("slow answer")))?;
///     Ok::<_, http::Error>(answer)
/// });
/// let layer = CachedClient::builder().server_layer(Arc::new(MemoryBackend::new())).await?;
/// let cached = tower::Layer::layer(&layer, app);
/// let request = http::Request::get("/report").header("host", "example.test").body(http_body_util::Empty::<bytes::Bytes>::new())?;
/// let response = cached.oneshot(request).await?;
/// assert!(response.headers().contains_key("cache-status"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServerCacheLayer {
    layer: CacheLayer,
}

impl fmt::Debug for ServerCacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCacheLayer")
            .field("layer", &self.layer)
            .finish()
    }
}

impl ServerCacheLayer {
    pub(crate) fn new(layer: CacheLayer) -> Self {
        ServerCacheLayer { layer }
    }
}

impl<S, B> tower::Layer<S> for ServerCacheLayer
where
    S: tower::Service<http::Request<RequestBody>, Response = http::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Service = ServerCacheService;

    fn layer(&self, inner: S) -> ServerCacheService {
        ServerCacheService {
            cache: tower::Layer::layer(&self.layer, inner),
        }
    }
}

/// A server's service with the shared cache in front, made by
/// [`ServerCacheLayer`]; never fails (see there). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ServerCacheService {
    cache: CacheService,
}

impl ServerCacheService {
    /// The engine under the service: its counters
    /// ([`stats`](crate::CachedClient::stats)),
    /// [`invalidate`](crate::CachedClient::invalidate),
    /// [`wait_background`](crate::CachedClient::wait_background).
    pub fn client(&self) -> &crate::CachedClient {
        self.cache.client()
    }
}

/// The future a [`ServerCacheService`] returns.
pub type ServerCacheFuture = Pin<
    Box<dyn Future<Output = Result<http::Response<ResponseBody>, Infallible>> + Send + 'static>,
>;

impl<B> tower::Service<http::Request<B>> for ServerCacheService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = ServerCacheFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> ServerCacheFuture {
        let prepared = self.cache.prepare(request);
        Box::pin(async move {
            let answer = match prepared {
                Ok(builder) => respond(builder).await,
                Err(e) => Err(e),
            };
            Ok(answer.unwrap_or_else(|e| {
                tracing::debug!(error = %e, "respcache-http: answering with an error");
                upstream_failed(e)
            }))
        })
    }
}
