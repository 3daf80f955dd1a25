//! Building from a [`CachedClientBuilder`]: opening the stores (or
//! starting degraded) and putting the engine over a transport — a
//! [`CachedClient`], a [`CacheLayer`] or a [`ServerCacheLayer`].

use std::sync::Arc;
use std::time::Duration;

use respcache_core::{
    Backend, Clock, ErrorKind as CoreErrorKind, Name, ResponseCache, SystemClock,
};

use super::{CachedClientBuilder, Options};
use crate::client::CachedClient;
use crate::error::Result;
use crate::layer::CacheLayer;
use crate::opening::{Opener, OpeningTarget};
use crate::server_layer::ServerCacheLayer;
use crate::target::{self, BackendTarget, CacheTarget, Target};
use crate::transport::Transport;

impl CachedClientBuilder {
    /// Builds a client that caches plain HTTP in `backend`: one store named
    /// `http` (key: a digest of the normalised request) and one named
    /// `http_redirects`, in the cache [`cache_name`](Self::cache_name).
    ///
    /// # Errors
    ///
    /// [`Configuration`](crate::ErrorKind::Configuration) for a bad option or name.
    /// When the backend cannot open the stores (it is down, the file is
    /// damaged), the client is built anyway and opens them in the
    /// background (see [`degraded_start`](Self::degraded_start)); with
    /// `degraded_start(false)` that is an error too.
    pub async fn build(self, backend: Arc<dyn Backend>) -> Result<CachedClient> {
        let options = self.options()?;
        let (target, clock) = self.open_backend(backend).await?;
        self.finish(options, target, clock)
    }

    /// Opens the stores in `backend` (or starts degraded), and the clock.
    async fn open_backend(
        &self,
        backend: Arc<dyn Backend>,
    ) -> Result<(Box<dyn Target>, Arc<dyn Clock>)> {
        let cache = Name::new(self.cache_name.as_str())?;
        let name = backend.name();
        let retention = self.retention;
        let opener: Opener = Arc::new(move || {
            let (backend, cache) = (Arc::clone(&backend), cache.clone());
            Box::pin(async move {
                let target = open_backend_target(backend, &cache, retention).await?;
                Ok(Box::new(target) as Box<dyn Target>)
            })
        });
        let target = self.open(name, opener).await?;
        let clock = self.clock.clone().unwrap_or_else(|| Arc::new(SystemClock));
        Ok((target, clock))
    }

    /// As [`build`](Self::build), with a backend `connect` makes: when it
    /// fails (the server is down at start), the client is built degraded
    /// (unless [`degraded_start`](Self::degraded_start) is `false`) and
    /// `connect` is called again in the background, with back-off, until
    /// the backend connects and its stores open.
    ///
    /// ```no_run
    /// # async fn demo() -> respcache_http::Result<()> {
    /// use std::sync::Arc;
    /// use respcache_core::{Backend, MemoryBackend};
    /// use respcache_http::CachedClient;
    ///
    /// let client = CachedClient::builder()
    ///     .build_connecting(|| async { Ok(Arc::new(MemoryBackend::new()) as Arc<dyn Backend>) })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Configuration`](crate::ErrorKind::Configuration) for a bad option or
    /// name; with `degraded_start(false)`, the error of the first attempt.
    pub async fn build_connecting<F, Fut>(self, connect: F) -> Result<CachedClient>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut:
            std::future::Future<Output = respcache_core::Result<Arc<dyn Backend>>> + Send + 'static,
    {
        let options = self.options()?;
        let cache = Name::new(self.cache_name.as_str())?;
        let retention = self.retention;
        let connect = Arc::new(connect);
        let opener: Opener = Arc::new(move || {
            let (connect, cache) = (Arc::clone(&connect), cache.clone());
            Box::pin(async move {
                let backend = connect().await?;
                let target = open_backend_target(backend, &cache, retention).await?;
                Ok(Box::new(target) as Box<dyn Target>)
            })
        });
        let target = self.open("cache", opener).await?;
        let clock = self.clock.clone().unwrap_or_else(|| Arc::new(SystemClock));
        self.finish(options, target, clock)
    }

    /// Opens the target, or starts a degraded client that opens it in the
    /// background.
    async fn open(&self, name: &'static str, opener: Opener) -> Result<Box<dyn Target>> {
        match opener().await {
            Ok(target) => Ok(target),
            Err(e) if !self.degraded_start || fails_the_build(e.kind()) => Err(e.into()),
            Err(e) => {
                let name = e.backend().unwrap_or(name);
                Ok(Box::new(OpeningTarget::start(
                    name,
                    opener,
                    self.reopen,
                    &e,
                )))
            }
        }
    }

    /// Builds a client that stores answers in the repositories of `cache`:
    /// its router picks the repository, the repository's settings the key,
    /// and the raw body is the payload (so `Repository::get_response` reads
    /// it with the repository's codec). Requests no repository takes are
    /// not cached. Redirect pointers go to a store named `http_redirects`
    /// in the same cache. A repository's own expiry counts as its per-URL
    /// expiry.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub async fn build_with_cache<P: Send + Sync + 'static>(
        self,
        cache: Arc<ResponseCache<P>>,
    ) -> Result<CachedClient> {
        let options = self.options()?;
        let name = Name::new(cache.cache_name())?;
        let clock = self.clock.clone().unwrap_or_else(|| {
            cache.repositories().first().map_or_else(
                || Arc::new(SystemClock) as Arc<dyn Clock>,
                |r| Arc::clone(r.clock()),
            )
        });
        let backend_name = cache.backend().name();
        let retention = self.retention;
        let opener: Opener = Arc::new(move || {
            let (cache, name) = (Arc::clone(&cache), name.clone());
            Box::pin(async move {
                let redirects = target::open_digest_store(
                    cache.backend().as_ref(),
                    &name,
                    target::REDIRECTS_REPOSITORY,
                    retention,
                )
                .await?;
                Ok(Box::new(CacheTarget { cache, redirects }) as Box<dyn Target>)
            })
        });
        let target = self.open(backend_name, opener).await?;
        self.finish(options, target, clock)
    }

    /// A [`CacheLayer`] over `backend` with these options: the cache in
    /// front of any HTTP client service (see [`CacheLayer`]). The stores
    /// are opened as [`build`](Self::build) opens them; the connection
    /// options (`connect_timeout`, `pool_idle_timeout`, `tls_config`) are
    /// the wrapped service's business and do not apply. Redirects are
    /// followed as configured ([`follow_redirects`](Self::follow_redirects)).
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub async fn layer(self, backend: Arc<dyn Backend>) -> Result<CacheLayer> {
        let options = self.options()?;
        let (target, clock) = self.open_backend(backend).await?;
        Ok(CacheLayer::new(options, target, clock, self.transport))
    }

    /// A [`ServerCacheLayer`] over `backend` with these options: a shared
    /// cache in front of a server's service (an axum `Router`, a hyper
    /// service; see [`ServerCacheLayer`]). It is always a shared cache
    /// ([`shared`](Self::shared) is set), never follows redirects, and
    /// hands the service requests as a server receives them.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub async fn server_layer(mut self, backend: Arc<dyn Backend>) -> Result<ServerCacheLayer> {
        self.shared = true;
        self.transport.follow_redirects = false;
        self.transport.origin_form = true;
        Ok(ServerCacheLayer::new(self.layer(backend).await?))
    }

    fn finish(
        self,
        options: Options,
        target: Box<dyn Target>,
        clock: Arc<dyn Clock>,
    ) -> Result<CachedClient> {
        let transport = Transport::new(self.transport)?;
        Ok(CachedClient::from_parts(options, target, transport, clock))
    }
}

/// Errors that trying again cannot mend: they fail the build even when
/// a degraded start is allowed.
fn fails_the_build(kind: CoreErrorKind) -> bool {
    matches!(
        kind,
        CoreErrorKind::InvalidName | CoreErrorKind::Configuration | CoreErrorKind::InvalidKey
    )
}

/// Opens the `http` and `http_redirects` stores of `cache` in `backend`.
async fn open_backend_target(
    backend: Arc<dyn Backend>,
    cache: &Name,
    retention: Option<Duration>,
) -> respcache_core::Result<BackendTarget> {
    let store =
        target::open_digest_store(backend.as_ref(), cache, target::HTTP_REPOSITORY, retention)
            .await?;
    let redirects = target::open_digest_store(
        backend.as_ref(),
        cache,
        target::REDIRECTS_REPOSITORY,
        retention,
    )
    .await?;
    Ok(BackendTarget {
        backend,
        store,
        redirects,
        repository: Arc::from(target::HTTP_REPOSITORY),
    })
}
