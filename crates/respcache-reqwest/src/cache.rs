//! [`Cache`]: the `reqwest_middleware::Middleware`.

use std::fmt;

use reqwest_middleware::{Middleware, Next};
use respcache_http::{CacheLayer, CacheService, CachedClient, RequestOptions};
use tower::ServiceExt as _;

use crate::origin::ReqwestOrigin;

/// The cache as reqwest middleware.
///
/// Requests the cache can answer are answered from the stores; the others
/// (misses, revalidations, refreshes, requests the cache does not take) go
/// to the origin through the `reqwest::Client` given to [`Cache::new`], with
/// its proxies, TLS settings, timeouts and default headers. Middleware
/// registered *before* `Cache` runs on every request; middleware after it
/// does not run (the cache sends through the client itself, so a
/// background `stale-while-revalidate` refresh can outlive the request).
///
/// Per-request settings: a [`RequestOptions`] in the request's extensions
/// (`RequestBuilder::with_extension`). A `reqwest` per-request timeout
/// applies to the origin requests too. What the cache did is in the
/// response's extensions ([`CacheStatus`](respcache_http::CacheStatus),
/// [`CacheFacts`](respcache_http::CacheFacts)) and in its `Cache-Status`
/// header.
#[derive(Clone)]
pub struct Cache {
    service: CacheService,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("service", &self.service)
            .finish()
    }
}

impl Cache {
    /// The cache of `layer` (see
    /// [`CachedClientBuilder::layer`](respcache_http::CachedClientBuilder::layer)),
    /// sending to the origin through `client`.
    pub fn new(layer: &CacheLayer, client: reqwest::Client) -> Self {
        Cache {
            service: tower::Layer::layer(layer, ReqwestOrigin(client)),
        }
    }

    /// The engine under the middleware: its counters
    /// ([`stats`](CachedClient::stats)), [`invalidate`](CachedClient::invalidate),
    /// [`wait_background`](CachedClient::wait_background).
    pub fn client(&self) -> &CachedClient {
        self.service.client()
    }
}

#[async_trait::async_trait]
impl Middleware for Cache {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut http::Extensions,
        _next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let timeout = request.timeout().copied();
        let asked = request.url().clone();
        let mut request = http::Request::<reqwest::Body>::try_from(request)?;
        let mut options = extensions
            .get::<RequestOptions>()
            .or_else(|| request.extensions().get::<RequestOptions>())
            .copied()
            .unwrap_or_default();
        if let Some(t) = timeout.filter(|_| options.time_limit().is_none()) {
            options = options.timeout(t);
        }
        request.extensions_mut().insert(options);
        let response = self
            .service
            .clone()
            .oneshot(request)
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let (mut parts, body) = response.into_parts();
        // reqwest reads the response's URL from an extension only its
        // response builder can set.
        let url = parts
            .extensions
            .get::<respcache_http::FinalUrl>()
            .map_or(asked, |u| u.0.clone());
        let mut builder = reqwest::ResponseBuilderExt::url(http::Response::builder(), url);
        if let Some(ext) = builder.extensions_mut() {
            parts.extensions.extend(std::mem::take(ext));
        }
        let response = http::Response::from_parts(parts, reqwest::Body::wrap(body));
        Ok(reqwest::Response::from(response))
    }
}
