//! One behaviour test, several front-ends: the same test body drives a
//! `CachedClient`, a `CacheLayer` over a plain hyper-util client, or the
//! reqwest middleware (`respcache-reqwest`) over a `reqwest::Client`.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use respcache_core::ManualClock;
use respcache_http::{
    CACHE_STATUS, CacheService, CacheStatus, CachedClient, CachedClientBuilder, CachedResponse,
    RequestBody, RequestOptions,
};
use tower::{ServiceBuilder, ServiceExt as _};

use crate::B;

/// Which front-end a test drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Client,
    Layer,
    Reqwest,
}

/// The cache as a test drives it.
#[derive(Clone)]
pub(crate) enum Front {
    Client(CachedClient),
    Layer(CacheService),
    Reqwest(
        respcache_reqwest::Cache,
        reqwest_middleware::ClientWithMiddleware,
    ),
}

/// A front-end of `kind` over `backend` on `clock`, configured by `f`.
pub(crate) async fn front(
    kind: Kind,
    backend: B,
    clock: &Arc<ManualClock>,
    f: impl FnOnce(CachedClientBuilder) -> CachedClientBuilder,
) -> Front {
    match kind {
        Kind::Client => Front::Client(crate::client(backend, clock, f).await),
        Kind::Layer => {
            let layer = f(CachedClient::builder().clock(clock.clone()))
                .layer(backend)
                .await
                .expect("layer builds");
            let plain: Client<_, RequestBody> = Client::builder(TokioExecutor::new()).build_http();
            Front::Layer(ServiceBuilder::new().layer(layer).service(plain))
        }
        Kind::Reqwest => {
            let layer = f(CachedClient::builder().clock(clock.clone()))
                .layer(backend)
                .await
                .expect("layer builds");
            // No proxy from the environment: test traffic stays on loopback.
            let plain = reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("reqwest client");
            let cache = respcache_reqwest::Cache::new(&layer, plain.clone());
            let client = reqwest_middleware::ClientBuilder::new(plain)
                .with(cache.clone())
                .build();
            Front::Reqwest(cache, client)
        }
    }
}

impl Front {
    /// The engine: counters, invalidation, in-flight requests.
    pub(crate) fn engine(&self) -> &CachedClient {
        match self {
            Front::Client(c) => c,
            Front::Layer(s) => s.client(),
            Front::Reqwest(cache, _) => cache.client(),
        }
    }

    pub(crate) fn request(&self, method: Method, url: &str) -> Request {
        Request {
            front: self.clone(),
            method,
            url: url.to_owned(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            options: RequestOptions::new(),
        }
    }

    pub(crate) fn get(&self, url: &str) -> Request {
        self.request(Method::GET, url)
    }

    pub(crate) fn head(&self, url: &str) -> Request {
        self.request(Method::HEAD, url)
    }

    pub(crate) fn post(&self, url: &str) -> Request {
        self.request(Method::POST, url)
    }

    pub(crate) fn stats(&self) -> respcache_http::CacheStats {
        self.engine().stats()
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.engine().in_flight()
    }

    pub(crate) async fn invalidate(&self, url: &str) -> respcache_http::Result<u64> {
        self.engine().invalidate(url).await
    }

    pub(crate) async fn wait_background(&self) {
        self.engine().wait_background().await;
    }

    pub(crate) fn put(&self, url: &str) -> Request {
        self.request(Method::PUT, url)
    }
}

/// One request through a [`Front`].
pub(crate) struct Request {
    front: Front,
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Bytes,
    options: RequestOptions,
}

impl Request {
    pub(crate) fn header(mut self, name: &'static str, value: impl AsRef<str>) -> Self {
        self.headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_str(value.as_ref()).unwrap(),
        );
        self
    }

    pub(crate) fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub(crate) fn json(self, value: &serde_json::Value) -> Self {
        self.header("content-type", "application/json")
            .body(serde_json::to_vec(value).unwrap())
    }

    pub(crate) fn refresh(mut self) -> Self {
        self.options = self.options.refresh();
        self
    }

    pub(crate) fn force_refresh(mut self) -> Self {
        self.options = self.options.force_refresh();
        self
    }

    pub(crate) fn mode(mut self, mode: respcache_http::CacheMode) -> Self {
        self.options = self.options.mode(mode);
        self
    }

    pub(crate) fn only_if_cached(mut self) -> Self {
        self.options = self.options.only_if_cached();
        self
    }

    pub(crate) fn expire_after(mut self, expiry: impl Into<respcache_core::Expiry>) -> Self {
        self.options = self.options.expire_after(expiry);
        self
    }

    pub(crate) async fn send(self) -> respcache_http::Result<CachedResponse> {
        match self.front {
            Front::Client(c) => {
                self.options
                    .apply(c.request(self.method, &self.url))
                    .headers(self.headers)
                    .body(self.body)
                    .send()
                    .await
            }
            Front::Layer(s) => {
                let mut request = http::Request::builder()
                    .method(self.method)
                    .uri(&self.url)
                    .body(Full::new(self.body))
                    .unwrap();
                *request.headers_mut() = self.headers;
                request.extensions_mut().insert(self.options);
                let response = s.oneshot(request).await?;
                // The layer's own account: in the extensions and the header.
                let status = *response.extensions().get::<CacheStatus>().unwrap();
                let header = response.headers().get_all(CACHE_STATUS).iter().next_back();
                assert_eq!(header.unwrap().to_str().unwrap(), status.to_string());
                let (mut parts, body) = response.into_parts();
                parts.headers.remove(CACHE_STATUS);
                let bytes = body.collect().await?.to_bytes();
                Ok(CachedResponse::from(http::Response::from_parts(
                    parts, bytes,
                )))
            }
            Front::Reqwest(_, client) => {
                let mut request = client
                    .request(self.method, &self.url)
                    .headers(self.headers)
                    .with_extension(self.options);
                if !self.body.is_empty() {
                    request = request.body(self.body);
                }
                let response = request.send().await.map_err(|e| match e {
                    reqwest_middleware::Error::Middleware(e) => e
                        .downcast::<respcache_http::Error>()
                        .expect("the cache's own error"),
                    reqwest_middleware::Error::Reqwest(e) => panic!("reqwest: {e}"),
                })?;
                // The middleware's account: in the extensions and the header.
                let status = *response.extensions().get::<CacheStatus>().unwrap();
                let header = response.headers().get_all(CACHE_STATUS).iter().next_back();
                assert_eq!(header.unwrap().to_str().unwrap(), status.to_string());
                let response = http::Response::from(response);
                let (mut parts, body) = response.into_parts();
                parts.headers.remove(CACHE_STATUS);
                let bytes = body.collect().await.unwrap().to_bytes();
                Ok(CachedResponse::from(http::Response::from_parts(
                    parts, bytes,
                )))
            }
        }
    }
}
