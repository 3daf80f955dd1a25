//! [`CacheLayer`]: the cache as a `tower::Layer` over any HTTP client
//! service, and [`CacheService`], the service it makes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderMap, HeaderName, Method};
use hyper::body::Body;
use respcache_core::{Clock, DynStore, Key};
use url::Url;

use crate::body::{BoxError, ResponseBody};
use crate::builder::Options;
use crate::client::CachedClient;
use crate::error::{Error, ErrorKind, Result};
use crate::origin::{RequestBody, origin_of};
use crate::per_request::RequestOptions;
use crate::request::RequestBuilder;
use crate::response::CachedResponse;
use crate::stats::StoreState;
use crate::streaming;
use crate::target::{Slot, Target};
use crate::transport::{Transport, TransportOptions};

/// The `Cache-Status` response header field (RFC 9211).
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// A `tower::Layer` that puts the cache in front of an HTTP client
/// service: a hyper-util client, an SDK's client stack, anything that takes
/// an `http::Request<`[`RequestBody`]`>` and answers with an
/// `http::Response` whose body is an `http_body::Body<Data = Bytes>`.
///
/// Built with [`CachedClientBuilder::layer`](crate::CachedClientBuilder::layer)
/// from the same options as a [`CachedClient`]. Each service it wraps gets
/// its own counters and in-flight requests; all of them share the stores.
///
/// The [`CacheService`] it makes answers with an
/// `http::Response<`[`ResponseBody`]`>` carrying the cache's account in
/// its extensions ([`CacheStatus`](crate::CacheStatus), and
/// [`FinalUrl`](crate::FinalUrl) when known) and in a `Cache-Status`
/// header. Per-request settings go in the request's extensions as a
/// [`RequestOptions`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use std::sync::Arc;
/// use http_body_util::BodyExt as _;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use respcache_core::MemoryBackend;
/// use respcache_http::{CacheStatus, CachedClient, RequestBody};
/// use tower::{ServiceBuilder, ServiceExt as _};
///
/// let plain: Client<_, RequestBody> = Client::builder(TokioExecutor::new()).build_http();
/// let layer = CachedClient::builder().layer(Arc::new(MemoryBackend::new())).await?;
/// let service = ServiceBuilder::new().layer(layer).service(plain);
/// let request = http::Request::get("http://127.0.0.1:8080/v1/tracks/42").body(http_body_util::Empty::<bytes::Bytes>::new())?;
/// let response = service.oneshot(request).await?;
/// let status = response.extensions().get::<CacheStatus>().copied();
/// let body = response.into_body().collect().await?.to_bytes();
/// println!("{status:?}: {} bytes", body.len());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CacheLayer {
    parts: Arc<Parts>,
}

struct Parts {
    options: Options,
    target: Arc<dyn Target>,
    clock: Arc<dyn Clock>,
    transport: TransportOptions,
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("target", &self.parts.target)
            .field("options", &self.parts.options)
            .finish_non_exhaustive()
    }
}

impl CacheLayer {
    pub(crate) fn new(
        options: Options,
        target: Box<dyn Target>,
        clock: Arc<dyn Clock>,
        transport: TransportOptions,
    ) -> Self {
        CacheLayer {
            parts: Arc::new(Parts {
                options,
                target: Arc::from(target),
                clock,
                transport,
            }),
        }
    }
}

impl<S, B> tower::Layer<S> for CacheLayer
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
    type Service = CacheService;

    fn layer(&self, inner: S) -> CacheService {
        let parts = &self.parts;
        let transport = Transport::over(origin_of(inner), parts.transport.clone());
        CacheService {
            client: CachedClient::from_parts(
                parts.options.clone(),
                Box::new(Shared(Arc::clone(&parts.target))),
                transport,
                Arc::clone(&parts.clock),
            ),
        }
    }
}

/// The cache in front of a client service, made by [`CacheLayer`].
///
/// A `tower::Service<http::Request<B>>` for any request body `B`; errors
/// are this crate's [`Error`] (as [`CachedClient`]'s). Cheap to clone.
#[derive(Clone, Debug)]
pub struct CacheService {
    client: CachedClient,
}

impl CacheService {
    /// The engine under the service, for its counters
    /// ([`stats`](CachedClient::stats)), [`invalidate`](CachedClient::invalidate)
    /// and [`wait_background`](CachedClient::wait_background).
    pub fn client(&self) -> &CachedClient {
        &self.client
    }
}

/// The future a [`CacheService`] returns.
pub type CacheFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<ResponseBody>>> + Send + 'static>>;

impl<B> tower::Service<http::Request<B>> for CacheService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<ResponseBody>;
    type Error = Error;
    type Future = CacheFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        // Each origin request clones the inner service and waits for it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> CacheFuture {
        match self.prepare(request) {
            Ok(builder) => Box::pin(respond(builder)),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}

impl CacheService {
    /// The request as the engine takes it: an absolute URL (from the `Host`
    /// header when the URI has none), its body streaming, its extensions
    /// passed on to the origin service, its [`RequestOptions`] applied.
    pub(crate) fn prepare<B>(&self, request: http::Request<B>) -> Result<RequestBuilder>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let url = absolute_url(&parts.uri, &parts.headers)?;
        let mut builder = self
            .client
            .request(parts.method, &url)
            .headers(parts.headers);
        if !body.is_end_stream() {
            builder = builder.body_stream(body);
        }
        if let Some(options) = parts.extensions.get::<RequestOptions>() {
            builder = options.apply(builder);
        }
        Ok(builder.extensions(parts.extensions))
    }
}

/// Sends a prepared request and answers with an `http::Response` that
/// carries the cache's account in its extensions and `Cache-Status`.
pub(crate) fn respond(
    builder: RequestBuilder,
) -> impl Future<Output = Result<http::Response<ResponseBody>>> + Send + 'static {
    // Straight from the engine's answer to an `http::Response`: no
    // `StreamingResponse` between them, no second state machine holding the
    // first, so a hit's response is moved as few times as it can be.
    builder.send_then(http_response)
}

/// The engine's answer as an `http::Response`, its `Cache-Status` header
/// added.
fn http_response(mut head: CachedResponse, idle: Option<Duration>) -> http::Response<ResponseBody> {
    let body = streaming::body_of(&mut head, idle);
    let value = head.cache_status().header_value();
    let mut response = head.into_http_with(body);
    if let Some(value) = value {
        response.headers_mut().append(CACHE_STATUS, value);
    }
    response
}

fn absolute_url(uri: &http::Uri, headers: &HeaderMap) -> Result<String> {
    if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
        // Pieces pushed, not formatted: this runs on every hit.
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut url =
            String::with_capacity(scheme.len() + 3 + authority.as_str().len() + path.len());
        url.push_str(scheme);
        url.push_str("://");
        url.push_str(authority.as_str());
        url.push_str(path);
        return Ok(url);
    }
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(HOST).and_then(|h| h.to_str().ok()))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidUrl,
                format!("{uri}: neither an absolute URI nor a Host header"),
            )
        })?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Ok(format!("http://{host}{path}"))
}

/// One target shared by every service a layer made.
#[derive(Debug)]
struct Shared(Arc<dyn Target>);

impl Target for Shared {
    fn backend_name(&self) -> &'static str {
        self.0.backend_name()
    }

    fn max_payload(&self) -> Option<usize> {
        self.0.max_payload()
    }

    fn slot(&self, method: &Method, url: &Url, digest: &str, headers: &HeaderMap) -> Option<Slot> {
        self.0.slot(method, url, digest, headers)
    }

    fn variant_key(&self, slot: &Slot, nonce: u64, vary: &[u8; 32]) -> Key {
        self.0.variant_key(slot, nonce, vary)
    }

    fn payload_name(
        &self,
        slot: &Slot,
        body: &Bytes,
    ) -> std::result::Result<Option<String>, String> {
        self.0.payload_name(slot, body)
    }

    fn redirects(&self) -> &Arc<DynStore> {
        self.0.redirects()
    }

    fn repository_expiry(&self, slot: &Slot) -> Option<respcache_core::Expiry> {
        self.0.repository_expiry(slot)
    }

    fn store_state(&self) -> (StoreState, Option<String>) {
        self.0.store_state()
    }

    fn stores(&self) -> Vec<(Arc<str>, Arc<DynStore>)> {
        self.0.stores()
    }

    fn backend(&self) -> Option<Arc<dyn respcache_core::Backend>> {
        self.0.backend()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn relative_uris_take_the_host_header() {
        let mut headers = HeaderMap::new();
        let uri: http::Uri = "/v1/tracks?ids=1".parse().unwrap();
        assert_eq!(
            absolute_url(&uri, &headers).unwrap_err().kind(),
            ErrorKind::InvalidUrl
        );
        headers.insert(HOST, HeaderValue::from_static("api.example:8080"));
        assert_eq!(
            absolute_url(&uri, &headers).unwrap(),
            "http://api.example:8080/v1/tracks?ids=1"
        );
        let abs: http::Uri = "https://a.example/x".parse().unwrap();
        assert_eq!(absolute_url(&abs, &headers).unwrap(), "https://a.example/x");
    }
}
