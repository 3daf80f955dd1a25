//! How to write your own respcache backend, in one small file.
//!
//! [`BlobBackend`] maps the core [`Store`] contract onto the simplest
//! storage there is: a map from string keys to opaque byte blobs (think of
//! an in-house key/value service, memcached, or an object store). It shows
//! the three things every byte-oriented backend does:
//!
//! 1. **Namespacing**: every blob key is `<cache>/<repository>/<encoded key>`;
//!    cache and repository names never contain `/`, so namespaces never mix.
//! 2. **The envelope**: each entry is stored as
//!    [`respcache_core::envelope::encode`]; a blob that does not decode is a
//!    miss reported through [`respcache_core::stats::record_undecodable`].
//! 3. **Freshness from the caller's `now`**, with the one rule in
//!    [`Select::matches`].
//!
//! And one thing every backend does the same way: it wraps each store it
//! opens with its [`BackendGuard`], which fails every call after
//! [`close`](Backend::close) with `Closed` and names the backend, the
//! repository and the operation in every error, so the store's own code
//! does neither.
//!
//! It is proven by the same conformance suite as the built-in backends, with
//! one line in `tests/conformance.rs`:
//!
//! ```no_run
//! respcache_conformance::main!(respcache_conformance::Factory::new("blob", || async {
//!     Ok(respcache_example_custom_backend::BlobBackend::new())
//! })
//! .not_persistent()); // each `new()` is its own map
//! ```
//!
//! and this stanza in `Cargo.toml`:
//!
//! ```toml
//! [[test]]
//! name = "conformance"
//! harness = false
//! ```
//!
//! Using it is the same as any backend:
//!
//! ```
//! # async fn demo() -> respcache_core::Result<()> {
//! use std::sync::Arc;
//! use respcache_core::{Request, ResponseCache, TemplateSettings, TextCodec};
//! use respcache_example_custom_backend::BlobBackend;
//!
//! let cache = ResponseCache::<String>::builder("demo")
//!     .create_repository(TemplateSettings::new("pages", "/pages/{id}", TextCodec)?)
//!     .connect(Arc::new(BlobBackend::new()))
//!     .await?;
//! let req = Request::get("https://example.com/pages/1")?;
//! cache.save(&req, &"hello".to_owned()).await?;
//! assert_eq!(cache.get(&req).await?.as_deref(), Some("hello"));
//! # Ok(()) }
//! # futures::executor::block_on(demo()).unwrap();
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::stream::{self, BoxStream, StreamExt};
use respcache_core::{
    Backend, BackendGuard, DynStore, Entry, Key, Name, Operation, Result, Select, Store, StoreSpec,
    Timestamp, async_trait, envelope, stats,
};

const NAME: &str = "blob";

/// The "service": opaque blobs under string keys, ordered so a prefix can
/// be listed. Shared by every handle made with [`BlobBackend::with_service`].
pub type BlobService = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

/// A backend over a [`BlobService`].
#[derive(Debug)]
pub struct BlobBackend {
    service: BlobService,
    guard: BackendGuard,
}

impl Default for BlobBackend {
    fn default() -> Self {
        BlobBackend::with_service(BlobService::default())
    }
}

impl BlobBackend {
    /// A backend over a new, empty service.
    pub fn new() -> Self {
        BlobBackend::default()
    }

    /// A backend over an existing service (so two handles share data).
    pub fn with_service(service: BlobService) -> Self {
        BlobBackend {
            service,
            guard: BackendGuard::new(NAME),
        }
    }

    /// The service this backend talks to.
    pub fn service(&self) -> BlobService {
        Arc::clone(&self.service)
    }
}

fn prefix(cache: &Name, repository: &Name) -> String {
    format!("{cache}/{repository}/")
}

fn lock(service: &BlobService) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
    service.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keys under `prefix`, in order.
fn keys_under(map: &BTreeMap<String, Vec<u8>>, prefix: &str) -> Vec<String> {
    map.range(prefix.to_owned()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(k, _)| k.clone())
        .collect()
}

#[async_trait]
impl Backend for BlobBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn open_store(&self, spec: &StoreSpec) -> Result<Arc<DynStore>> {
        self.guard
            .check_store(&spec.repository, Operation::OpenStore)?;
        // A marker blob makes an empty repository visible to list_stores.
        let prefix = prefix(&spec.cache, &spec.repository);
        lock(&self.service).entry(prefix.clone()).or_default();
        let store = Arc::new(BlobStore {
            service: Arc::clone(&self.service),
            repository: spec.repository.to_string(),
            prefix,
        });
        Ok(self.guard.wrap(spec, store))
    }

    async fn drop_store(&self, cache: &Name, repository: &Name) -> Result<()> {
        self.guard.check_store(repository, Operation::DropStore)?;
        let prefix = prefix(cache, repository);
        let mut map = lock(&self.service);
        for key in keys_under(&map, &prefix) {
            map.remove(&key);
        }
        Ok(())
    }

    async fn list_stores(&self, cache: &Name) -> Result<Vec<Name>> {
        self.guard.check(Operation::ListStores)?;
        let cache_prefix = format!("{cache}/");
        let map = lock(&self.service);
        let mut names = Vec::new();
        for key in keys_under(&map, &cache_prefix) {
            // Only marker blobs: "<cache>/<repository>/" with nothing after.
            if let Some(repo) = key[cache_prefix.len()..].strip_suffix('/')
                && !repo.contains('/')
            {
                names.push(Name::new(repo)?);
            }
        }
        Ok(names)
    }

    async fn close(&self) -> Result<()> {
        self.guard.close();
        Ok(())
    }
}

/// One repository's blobs.
#[derive(Debug)]
pub struct BlobStore {
    service: BlobService,
    repository: String,
    prefix: String,
}

impl BlobStore {
    fn blob_key(&self, key: &Key) -> String {
        format!("{}{}", self.prefix, key.encode())
    }

    fn decode(&self, blob: &[u8]) -> Option<Entry> {
        match envelope::decode(blob) {
            Ok(entry) => Some(entry),
            Err(e) => {
                stats::record_undecodable(NAME, &self.repository, &e);
                None
            }
        }
    }

    /// The entry keys (not the marker) of this repository.
    fn entry_keys(&self) -> Vec<String> {
        let map = lock(&self.service);
        let mut keys = keys_under(&map, &self.prefix);
        keys.retain(|k| k.len() > self.prefix.len());
        keys
    }
}

#[async_trait]
impl Store for BlobStore {
    async fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let blob = lock(&self.service).get(&self.blob_key(key)).cloned();
        Ok(blob.and_then(|b| self.decode(&b)))
    }

    async fn put(&self, entry: Entry) -> Result<()> {
        let blob = envelope::encode(&entry);
        lock(&self.service).insert(self.blob_key(&entry.key), blob);
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        Ok(lock(&self.service).remove(&self.blob_key(key)).is_some())
    }

    async fn count(&self, select: Select, now: Timestamp) -> Result<u64> {
        let map = lock(&self.service);
        let n = keys_under(&map, &self.prefix)
            .iter()
            .filter(|k| k.len() > self.prefix.len())
            .filter_map(|k| map.get(k))
            // The fixed header is enough to judge freshness.
            .filter_map(|blob| envelope::decode_header(blob).ok())
            .filter(|h| select.matches(h.expires_at, now))
            .count();
        Ok(n as u64)
    }

    async fn clear(&self, select: Select, now: Timestamp) -> Result<u64> {
        let keys = self.entry_keys();
        let mut map = lock(&self.service);
        let mut removed = 0;
        for key in keys {
            let selected = map
                .get(&key)
                .and_then(|blob| envelope::decode_header(blob).ok())
                .is_some_and(|h| select.matches(h.expires_at, now));
            if selected && map.remove(&key).is_some() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn scan(&self, select: Select, now: Timestamp) -> BoxStream<'static, Result<Entry>> {
        // List the keys once (small), then fetch each blob lazily as the
        // caller pulls: the payloads are never all in memory at once.
        let keys = self.entry_keys();
        let service = Arc::clone(&self.service);
        let repository = self.repository.clone();
        stream::iter(keys)
            .filter_map(move |key| {
                let blob = lock(&service).get(&key).cloned();
                let item = blob.and_then(|b| match envelope::decode(&b) {
                    Ok(e) if select.matches(e.expires_at, now) => Some(Ok(e)),
                    Ok(_) => None,
                    Err(err) => {
                        stats::record_undecodable(NAME, &repository, &err);
                        None
                    }
                });
                futures::future::ready(item)
            })
            .boxed()
    }

    async fn set_expiry(&self, key: &Key, expires_at: Option<Timestamp>) -> Result<bool> {
        let blob_key = self.blob_key(key);
        let mut map = lock(&self.service);
        let Some(entry) = map.get(&blob_key).and_then(|b| self.decode(b)) else {
            return Ok(false);
        };
        map.insert(
            blob_key,
            envelope::encode(&entry.with_expires_at(expires_at)),
        );
        Ok(true)
    }
}
