//! The same 1 KiB hit through each front-end a program puts the cache
//! behind (issue 15): [`CacheLayer`](respcache_http::CacheLayer) over a
//! plain hyper-util client, the reqwest middleware of `respcache-reqwest`,
//! and the closest Rust peer, http-cache-reqwest, with its in-memory (moka)
//! manager and its default (redb) manager. Every client primes its own
//! URLs on the local [`Origin`]; a hit that reaches the origin is a failed
//! row (the table checks the origin's request count).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use reqwest_middleware::ClientWithMiddleware;
use respcache_core::{Backend, Name};
use respcache_http::{CacheOutcome, CacheService, CacheStatus, CachedClient, RequestBody};
use tower::ServiceExt as _;

use crate::Result;
use crate::origin::Origin;
use crate::session::{HIT_URLS, body_len};

fn hit_urls(origin: &Origin, tag: &str) -> Vec<String> {
    (0..HIT_URLS)
        .map(|i| origin.url(&format!("/front/{tag}/{i}")))
        .collect()
}

/// `CacheLayer` over a plain pooled hyper-util client, as a
/// `tower::Service`.
#[derive(Debug)]
pub struct LayerHits {
    service: CacheService,
    urls: Vec<String>,
}

impl LayerHits {
    /// The layer caching in `cache` of `backend` (the options of a default
    /// `CachedClient`) over a hyper-util client set up as `CachedClient`'s
    /// (HTTP/1.1, `TCP_NODELAY`), with its URLs primed.
    pub async fn new(backend: Arc<dyn Backend>, cache: &Name, origin: &Origin) -> Result<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let plain: Client<_, RequestBody> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(32)
            .build(connector);
        let layer = CachedClient::builder()
            .cache_name(cache.as_str())
            .layer(backend)
            .await?;
        let service = tower::Layer::layer(&layer, plain);
        let hits = LayerHits {
            service,
            urls: hit_urls(origin, "layer"),
        };
        for i in 0..HIT_URLS {
            hits.get(i, CacheOutcome::Miss).await?;
        }
        Ok(hits)
    }

    /// One hit (1 KiB body, answered from the cache).
    pub async fn hit(&self, i: u64) -> Result<()> {
        self.get(i, CacheOutcome::Hit).await
    }

    async fn get(&self, i: u64, want: CacheOutcome) -> Result<()> {
        let url = &self.urls[(i % HIT_URLS) as usize];
        let request = http::Request::get(url.as_str()).body(Empty::<Bytes>::new())?;
        let response = self.service.clone().oneshot(request).await?;
        let got = response
            .extensions()
            .get::<CacheStatus>()
            .map(CacheStatus::outcome);
        if got != Some(want) {
            return Err(format!("GET {url}: {got:?}, wanted {}", want.as_str()).into());
        }
        let body = response.into_body().collect().await?.to_bytes();
        body_len(body.len())
    }
}

/// Which cache a [`ReqwestHits`] client goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReqwestCache {
    /// `respcache_reqwest::Cache`.
    Respcache,
    /// http-cache-reqwest with `MokaManager` (in memory).
    PeerMoka,
    /// http-cache-reqwest with its default manager, `RedbManager` (a file).
    PeerRedb,
}

/// A reqwest client with caching middleware, and its primed URLs.
pub struct ReqwestHits {
    client: ClientWithMiddleware,
    urls: Vec<String>,
    which: ReqwestCache,
}

impl std::fmt::Debug for ReqwestHits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReqwestHits")
            .field("which", &self.which)
            .field("urls", &self.urls.len())
            .finish_non_exhaustive()
    }
}

impl ReqwestHits {
    /// respcache's middleware caching in `cache` of `backend`.
    pub async fn respcache(
        backend: Arc<dyn Backend>,
        cache: &Name,
        origin: &Origin,
    ) -> Result<Self> {
        let plain = plain_reqwest()?;
        let layer = CachedClient::builder()
            .cache_name(cache.as_str())
            .layer(backend)
            .await?;
        let client = reqwest_middleware::ClientBuilder::new(plain.clone())
            .with(respcache_reqwest::Cache::new(&layer, plain))
            .build();
        Self::primed(client, origin, "reqwest", ReqwestCache::Respcache).await
    }

    /// http-cache-reqwest with an in-memory moka cache of 10,000 entries.
    pub async fn peer_moka(origin: &Origin) -> Result<Self> {
        use http_cache_reqwest::{Cache, CacheMode, HttpCache, HttpCacheOptions};
        use http_cache_reqwest::{MokaCache, MokaManager};
        let cache = Cache(HttpCache {
            mode: CacheMode::Default,
            manager: MokaManager::new(MokaCache::new(10_000)),
            options: HttpCacheOptions::default(),
        });
        let client = reqwest_middleware::ClientBuilder::new(plain_reqwest()?)
            .with(cache)
            .build();
        Self::primed(client, origin, "peer-moka", ReqwestCache::PeerMoka).await
    }

    /// http-cache-reqwest with its default manager, redb, in a file at
    /// `path`.
    pub async fn peer_redb(origin: &Origin, path: &Path) -> Result<Self> {
        use http_cache_reqwest::{Cache, CacheMode, HttpCache, HttpCacheOptions, RedbManager};
        let cache = Cache(HttpCache {
            mode: CacheMode::Default,
            manager: RedbManager::new(path)?,
            options: HttpCacheOptions::default(),
        });
        let client = reqwest_middleware::ClientBuilder::new(plain_reqwest()?)
            .with(cache)
            .build();
        Self::primed(client, origin, "peer-redb", ReqwestCache::PeerRedb).await
    }

    async fn primed(
        client: ClientWithMiddleware,
        origin: &Origin,
        tag: &str,
        which: ReqwestCache,
    ) -> Result<Self> {
        let hits = ReqwestHits {
            client,
            urls: hit_urls(origin, tag),
            which,
        };
        let before = origin.requests();
        for i in 0..HIT_URLS {
            hits.get(i, false).await?;
        }
        let sent = origin.requests() - before;
        if sent != HIT_URLS {
            return Err(format!("{tag}: priming sent {sent} requests, wanted {HIT_URLS}").into());
        }
        Ok(hits)
    }

    /// One hit (1 KiB body, answered from the cache; the caller checks the
    /// origin saw no request).
    pub async fn hit(&self, i: u64) -> Result<()> {
        self.get(i, true).await
    }

    async fn get(&self, i: u64, hit: bool) -> Result<()> {
        let url = &self.urls[(i % HIT_URLS) as usize];
        let response = self.client.get(url.as_str()).send().await?;
        if self.which == ReqwestCache::Respcache && hit {
            let got = response
                .extensions()
                .get::<CacheStatus>()
                .map(CacheStatus::outcome);
            if got != Some(CacheOutcome::Hit) {
                return Err(format!("GET {url}: {got:?}, wanted a hit").into());
            }
        }
        let body = response.bytes().await?;
        body_len(body.len())
    }
}

/// The reqwest client every middleware sends through: HTTP/1.1 to the
/// loopback origin, no proxy lookup.
fn plain_reqwest() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .build()?)
}
