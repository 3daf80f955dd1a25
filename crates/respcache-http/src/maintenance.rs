//! The maintenance calls of a [`CachedClient`] (aiohttp-client-cache's
//! `CacheBackend` API): what is stored, and removing it — without knowing
//! store names, key schemas or the meta format. Every front-end reaches
//! them through its engine (`CacheService::client`, the reqwest
//! middleware's `Cache::client`, `ServerCacheService::client`).

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt as _;
use futures::stream::{self, BoxStream};
use http::{HeaderMap, Method};
use respcache_core::{Backend, DynStore, Select};
use url::Url;

use crate::client::CachedClient;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::StoredMeta;
use crate::stats::StoreState;
use crate::target::{REDIRECTS_REPOSITORY, digest_key};

/// A failed cache call of a maintenance method.
fn cache_error(op: &str, e: respcache_core::Error) -> Error {
    Error::new(ErrorKind::Cache, format!("{op}: {e}")).with_source(e)
}

impl CachedClient {
    /// The stores are open, else why not (an [`ErrorKind::Cache`] error).
    fn open_stores(&self) -> Result<()> {
        match self.inner.target.store_state() {
            (StoreState::Ready, _) => Ok(()),
            (_, why) => Err(Error::new(
                ErrorKind::Cache,
                format!(
                    "the cache is not open yet: {}",
                    why.unwrap_or_else(|| "opening".to_owned())
                ),
            )),
        }
    }

    /// Whether an answer to a GET for `url` is stored, fresh or stale (a
    /// `Vary` variant of it, or the answer its redirect led to, counts).
    ///
    /// # Errors
    ///
    /// [`InvalidUrl`](ErrorKind::InvalidUrl) for a bad URL;
    /// [`Cache`](ErrorKind::Cache) when the backend fails or is not open.
    pub async fn has_url(&self, url: &str) -> Result<bool> {
        self.open_stores()?;
        let url = parse(url)?;
        let engine = &self.inner;
        let (digest, slot) = engine.digest_and_slot(&Method::GET, &url, &HeaderMap::new());
        let Some(slot) = slot else {
            return Ok(false);
        };
        if slot
            .store
            .get(&slot.key)
            .await
            .map_err(|e| cache_error("has_url", e))?
            .is_some()
        {
            return Ok(true);
        }
        let pointer = digest_key(&Method::GET, &digest);
        Ok(engine
            .target
            .redirects()
            .get(&pointer)
            .await
            .map_err(|e| cache_error("has_url", e))?
            .is_some())
    }

    /// The URLs with a stored answer (fresh or stale), each once, as a
    /// stream; ignored query parameters appear redacted, as stored.
    /// Entries a `Repository` wrote without HTTP metadata have no URL and
    /// are left out.
    pub fn urls(&self) -> BoxStream<'static, Result<String>> {
        if let Err(e) = self.open_stores() {
            return stream::iter([Err(e)]).boxed();
        }
        let now = self.inner.now();
        let entries = stream::iter(self.inner.target.stores())
            .flat_map(move |(_, store)| store.scan(Select::All, now));
        let mut seen = HashSet::new();
        entries
            .filter_map(move |entry| {
                let url = match entry {
                    Err(e) => Some(Err(cache_error("urls", e))),
                    Ok(entry) => match entry.meta.as_deref().map(StoredMeta::decode) {
                        Some(Ok(StoredMeta::Response(meta))) => {
                            seen.insert(meta.url.clone()).then_some(Ok(meta.url))
                        }
                        // Vary indexes, raw entries, undecodable meta.
                        _ => None,
                    },
                };
                std::future::ready(url)
            })
            .boxed()
    }

    /// Removes every stored answer that is stale now (expired), with the
    /// redirect pointers that expired; returns how many entries went.
    ///
    /// # Errors
    ///
    /// [`Cache`](ErrorKind::Cache) when the backend fails or is not open.
    pub async fn delete_expired(&self) -> Result<u64> {
        self.clear_where(Select::Expired, "delete_expired").await
    }

    /// Removes every stored answer and redirect pointer of this client's
    /// cache; returns how many entries went.
    ///
    /// # Errors
    ///
    /// [`Cache`](ErrorKind::Cache) when the backend fails or is not open.
    pub async fn clear(&self) -> Result<u64> {
        self.clear_where(Select::All, "clear").await
    }

    async fn clear_where(&self, select: Select, op: &str) -> Result<u64> {
        self.open_stores()?;
        let now = self.inner.now();
        let mut removed = 0;
        for (_, store) in self.stores_with_redirects() {
            removed += store
                .clear(select, now)
                .await
                .map_err(|e| cache_error(op, e))?;
        }
        Ok(removed)
    }

    /// Removes the stored answers to GET and HEAD requests for `url` and
    /// its redirect pointer; returns how many entries went. The same as
    /// [`invalidate`](Self::invalidate).
    ///
    /// # Errors
    ///
    /// [`InvalidUrl`](ErrorKind::InvalidUrl) for a bad URL.
    pub async fn delete_url(&self, url: &str) -> Result<u64> {
        self.invalidate(url).await
    }

    /// [`delete_url`](Self::delete_url) for each of `urls`; returns how
    /// many entries went in all.
    ///
    /// # Errors
    ///
    /// [`InvalidUrl`](ErrorKind::InvalidUrl) for the first bad URL (the
    /// ones before it are deleted).
    pub async fn delete_urls<I, S>(&self, urls: I) -> Result<u64>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut removed = 0;
        for url in urls {
            removed += self.delete_url(url.as_ref()).await?;
        }
        Ok(removed)
    }

    /// Removes every stored answer tagged `tag` (by a tag header of the
    /// response: `Cache-Tag`, `Surrogate-Key`, see
    /// [`tag_headers`](crate::CachedClientBuilder::tag_headers)), fresh or
    /// stale, on every backend through its tag index; returns how many went.
    ///
    /// # Errors
    ///
    /// [`InvalidRequest`](ErrorKind::InvalidRequest) for a tag no response
    /// could carry (empty, over 256 bytes, a control character);
    /// [`Cache`](ErrorKind::Cache) when the backend fails or is not open.
    pub async fn purge_tag(&self, tag: &str) -> Result<u64> {
        respcache_core::tags::validate_tag(tag)
            .map_err(|e| Error::new(ErrorKind::InvalidRequest, e.message().to_owned()))?;
        self.open_stores()?;
        let mut removed = 0;
        for (_, store) in self.inner.target.stores() {
            removed += store
                .purge_tag(tag)
                .await
                .map_err(|e| cache_error("purge_tag", e))?;
        }
        Ok(removed)
    }

    /// The backend the client stores in, once its stores are open.
    pub fn backend(&self) -> Option<Arc<dyn Backend>> {
        self.inner.target.backend()
    }

    /// The stores answers live in, by repository name (`http` over a plain
    /// backend, one per repository over a `ResponseCache`), then the
    /// redirect pointers (`http_redirects`); empty while not open.
    pub fn stores(&self) -> Vec<(String, Arc<DynStore>)> {
        self.stores_with_redirects()
            .into_iter()
            .map(|(name, store)| (name.to_string(), store))
            .collect()
    }

    fn stores_with_redirects(&self) -> Vec<(Arc<str>, Arc<DynStore>)> {
        let target = &self.inner.target;
        let mut stores = target.stores();
        if !stores.is_empty() {
            stores.push((
                Arc::from(REDIRECTS_REPOSITORY),
                Arc::clone(target.redirects()),
            ));
        }
        stores
    }
}

/// `url` parsed, or an [`InvalidUrl`](ErrorKind::InvalidUrl) error.
pub(crate) fn parse(url: &str) -> Result<Url> {
    Url::parse(url).map_err(|e| Error::new(ErrorKind::InvalidUrl, format!("{url:?}: {e}")))
}
