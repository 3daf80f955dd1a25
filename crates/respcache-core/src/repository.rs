//! [`Repository`]: one endpoint family's cached answers — settings, a
//! [`Store`](crate::Store) and expiry, written once for every backend.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;

use crate::backend::{Backend, DynStore, StoreSpec};
use crate::entry::{Entry, Select};
use crate::error::{Error, ErrorKind, Operation, Result};
use crate::key::Key;
use crate::name::Name;
use crate::request::Request;
use crate::settings::RepositorySettings;
use crate::stats;
use crate::tags::Tags;
use crate::time::{Clock, Expiry, SystemClock, Timestamp};

/// How a repository is opened: the clock, the default expiry and the
/// retention of stale entries.
#[derive(Clone, Debug)]
pub struct RepositoryOptions {
    /// Where the current time comes from.
    pub clock: Arc<dyn Clock>,
    /// Expiry when the settings give none.
    pub default_expiry: Expiry,
    /// How long stale entries are kept by backends with native expiry.
    pub retention: Option<Duration>,
}

impl Default for RepositoryOptions {
    fn default() -> Self {
        RepositoryOptions {
            clock: Arc::new(SystemClock),
            default_expiry: Expiry::Never,
            retention: None,
        }
    }
}

/// What a repository call names an answer by: a [`Request`] (the
/// repository's settings make its key; a request they do not cache has
/// none) or a [`Key`] itself, as the seed's `get_response(key)` and
/// `save_response((key, payload))` take it (checked against the
/// repository's key schema: a key of another shape is an
/// [`InvalidKey`](ErrorKind::InvalidKey) error).
///
/// ```
/// # async fn demo() -> respcache_core::Result<()> {
/// use respcache_core::{JsonCodec, Key, KeyPart, MemoryBackend, Request, ResponseCache, TemplateSettings};
///
/// let cache = ResponseCache::<serde_json::Value>::builder("music")
///     .create_repository(TemplateSettings::new("tracks", "/v1/tracks/{id}", JsonCodec)?)
///     .connect(std::sync::Arc::new(MemoryBackend::new()))
///     .await?;
/// let tracks = cache.repository("tracks").unwrap();
/// let by_request = Request::get("https://api.example/v1/tracks/7")?;
/// let key = tracks.key(&by_request).unwrap();
/// tracks.save_response(&key, &serde_json::json!({"name": "seven"})).await?;
/// assert!(tracks.contains(&by_request).await?);
/// assert_eq!(tracks.get_response(&key).await?, tracks.get_response(&by_request).await?);
/// // A key of another shape than the repository's schema is refused.
/// let wrong = Key::new("GET", [KeyPart::Int(7), KeyPart::Int(8)]);
/// let e = tracks.save_response(&wrong, &serde_json::json!({})).await.unwrap_err();
/// assert_eq!(e.kind(), respcache_core::ErrorKind::InvalidKey);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub trait KeyOf: Send + Sync {
    /// The key in `repo`: `None` when `repo` does not cache it; `checked`
    /// asks that a request's key be checked against the key schema too
    /// (before a write).
    ///
    /// # Errors
    ///
    /// [`InvalidKey`](ErrorKind::InvalidKey) for a key that does not fit.
    fn key_in<P: Send + Sync + 'static>(
        &self,
        repo: &Repository<P>,
        checked: bool,
    ) -> Result<Option<Key>>;
}

impl KeyOf for Request {
    fn key_in<P: Send + Sync + 'static>(
        &self,
        repo: &Repository<P>,
        checked: bool,
    ) -> Result<Option<Key>> {
        let Some(key) = repo.key(self) else {
            return Ok(None);
        };
        if checked {
            repo.settings().fields().validate(&key)?;
        }
        Ok(Some(key))
    }
}

impl KeyOf for Key {
    fn key_in<P: Send + Sync + 'static>(
        &self,
        repo: &Repository<P>,
        _checked: bool,
    ) -> Result<Option<Key>> {
        repo.settings().fields().validate(self)?;
        Ok(Some(self.clone()))
    }
}

/// A payload read from a repository, with what the cache knows about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Cached<P> {
    /// The key it is stored under.
    pub key: Key,
    /// The name taken from the payload when it was saved.
    pub name: Option<String>,
    /// When it was saved.
    pub cached_at: Timestamp,
    /// When it goes stale (`None`: never).
    pub expires_at: Option<Timestamp>,
    /// The decoded payload.
    pub payload: P,
    /// The tags it was saved with ([`Repository::save_tagged`]).
    pub tags: Tags,
}

struct Inner<P> {
    settings: Arc<dyn RepositorySettings<P>>,
    name: Name,
    store: Arc<DynStore>,
    backend: &'static str,
    options: RepositoryOptions,
    closed: AtomicBool,
    decode_failures: AtomicU64,
}

/// One endpoint family's cached answers over any backend.
///
/// Cheap to clone (an `Arc` inside); clones share the store.
///
/// ```
/// # async fn demo() -> respcache_core::Result<()> {
/// use respcache_core::{MemoryBackend, Repository, RepositoryOptions, Request, TemplateSettings, TextCodec};
///
/// let backend = MemoryBackend::new();
/// let settings = TemplateSettings::new("tracks", "/v1/tracks/{id}", TextCodec)?;
/// let tracks = Repository::create(&backend, "demo", settings, RepositoryOptions::default()).await?;
/// let req = Request::get("https://api.example.com/v1/tracks/42")?;
/// assert!(tracks.save_response(&req, &"Hey Jude".to_string()).await?);
/// assert_eq!(tracks.get_response(&req).await?.as_deref(), Some("Hey Jude"));
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub struct Repository<P> {
    inner: Arc<Inner<P>>,
}

impl<P> Clone for Repository<P> {
    fn clone(&self) -> Self {
        Repository {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P> fmt::Debug for Repository<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("name", &self.inner.name)
            .field("backend", &self.inner.backend)
            .field("store", &self.inner.store)
            .finish()
    }
}

impl<P: Send + Sync + 'static> Repository<P> {
    /// Creates the repository's store in `backend` (idempotent) under the
    /// cache `cache` and returns the repository.
    pub async fn create(
        backend: &dyn Backend,
        cache: &str,
        settings: impl RepositorySettings<P>,
        options: RepositoryOptions,
    ) -> Result<Self> {
        Self::create_shared(backend, &Name::new(cache)?, Arc::new(settings), options).await
    }

    pub(crate) async fn create_shared(
        backend: &dyn Backend,
        cache: &Name,
        settings: Arc<dyn RepositorySettings<P>>,
        options: RepositoryOptions,
    ) -> Result<Self> {
        let name = Name::new(settings.name())?;
        let spec = StoreSpec::new(cache.clone(), name.clone(), settings.fields().clone())
            .with_retention(options.retention);
        let store = backend
            .open_store(&spec)
            .await
            .map_err(|e| e.in_context(backend.name(), name.as_str(), Operation::OpenStore))?;
        Ok(Repository {
            inner: Arc::new(Inner {
                settings,
                name,
                store,
                backend: backend.name(),
                options,
                closed: AtomicBool::new(false),
                decode_failures: AtomicU64::new(0),
            }),
        })
    }

    /// The repository's name.
    pub fn name(&self) -> &str {
        self.inner.name.as_str()
    }

    /// The settings.
    pub fn settings(&self) -> &dyn RepositorySettings<P> {
        self.inner.settings.as_ref()
    }

    /// The expiry this repository gives what it stores: its settings'
    /// expiry, else the cache's
    /// [`default_expiry`](crate::ResponseCacheBuilder::default_expiry);
    /// `None` when neither is set (the cache's default is then
    /// [`Expiry::Never`]). The HTTP layer uses it when the origin says
    /// nothing about freshness.
    pub fn expiry(&self) -> Option<Expiry> {
        self.inner.settings.expiry().or_else(|| {
            let default = self.inner.options.default_expiry;
            (default != Expiry::Never).then_some(default)
        })
    }

    /// The underlying store, for layers that manage entries themselves (the
    /// HTTP layer reads stale entries and their metadata through it).
    pub fn store(&self) -> &Arc<DynStore> {
        &self.inner.store
    }

    /// The clock this repository stamps entries with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.options.clock
    }

    /// How many payloads failed to decode and were treated as misses.
    pub fn decode_failures(&self) -> u64 {
        self.inner.decode_failures.load(Ordering::Relaxed)
    }

    /// The key for `request`, or `None` when it is not cached (the seed's
    /// `get_key_from_request`).
    pub fn key(&self, request: &Request) -> Option<Key> {
        self.inner.settings.key(request)
    }

    fn check_open(&self, op: Operation) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(
                Error::new(ErrorKind::Closed, "the repository was closed").in_context(
                    self.inner.backend,
                    self.name(),
                    op,
                ),
            );
        }
        Ok(())
    }

    fn ctx(&self, op: Operation) -> impl Fn(Error) -> Error + '_ {
        move |e| e.in_context(self.inner.backend, self.name(), op)
    }

    fn now(&self) -> Timestamp {
        self.inner.options.clock.now()
    }

    /// How many entries are stored: all of them, or only the fresh ones.
    pub async fn count(&self, include_expired: bool) -> Result<u64> {
        self.check_open(Operation::Count)?;
        let select = if include_expired {
            Select::All
        } else {
            Select::Fresh
        };
        self.inner
            .store
            .count(select, self.now())
            .await
            .map_err(self.ctx(Operation::Count))
    }

    /// Whether a fresh answer for `what` (a [`Request`] or a [`Key`]) is
    /// stored.
    pub async fn contains(&self, what: &impl KeyOf) -> Result<bool> {
        self.check_open(Operation::Contains)?;
        let Some(key) = what
            .key_in(self, false)
            .map_err(self.ctx(Operation::Contains))?
        else {
            return Ok(false);
        };
        self.inner
            .store
            .contains(&key, self.now())
            .await
            .map_err(self.ctx(Operation::Contains))
    }

    /// Removes every entry, or only the stale ones; returns how many.
    pub async fn clear(&self, expired_only: bool) -> Result<u64> {
        self.check_open(Operation::Clear)?;
        let select = if expired_only {
            Select::Expired
        } else {
            Select::All
        };
        self.inner
            .store
            .clear(select, self.now())
            .await
            .map_err(self.ctx(Operation::Clear))
    }

    /// The fresh payload stored for `what` (a [`Request`] or a [`Key`]),
    /// if any. A stale entry, or one whose payload no longer decodes, is a
    /// miss.
    pub async fn get_response(&self, what: &impl KeyOf) -> Result<Option<P>> {
        Ok(self.get_cached(what).await?.map(|c| c.payload))
    }

    /// Like [`get_response`](Self::get_response), with the entry's name and
    /// timestamps.
    pub async fn get_cached(&self, what: &impl KeyOf) -> Result<Option<Cached<P>>> {
        self.check_open(Operation::Get)?;
        let Some(key) = what.key_in(self, false).map_err(self.ctx(Operation::Get))? else {
            return Ok(None);
        };
        let entry = self
            .inner
            .store
            .get(&key)
            .await
            .map_err(self.ctx(Operation::Get))?;
        let now = self.now();
        Ok(entry
            .filter(|e| e.is_fresh(now))
            .and_then(|e| self.decode(e)))
    }

    /// The fresh payloads for `requests`, one slot per request in order.
    pub async fn get_responses(&self, requests: &[Request]) -> Result<Vec<Option<P>>> {
        self.check_open(Operation::GetMany)?;
        let keys: Vec<Option<Key>> = requests.iter().map(|r| self.key(r)).collect();
        let wanted: Vec<Key> = keys.iter().flatten().cloned().collect();
        let found = self
            .inner
            .store
            .get_many(&wanted)
            .await
            .map_err(self.ctx(Operation::GetMany))?;
        let now = self.now();
        let mut found = found.into_iter();
        Ok(keys
            .iter()
            .map(|k| {
                k.as_ref()
                    .and_then(|_| found.next().flatten())
                    .filter(|e| e.is_fresh(now))
                    .and_then(|e| self.decode(e))
                    .map(|c| c.payload)
            })
            .collect())
    }

    fn decode(&self, entry: Entry) -> Option<Cached<P>> {
        match self.inner.settings.codec().decode(&entry.payload) {
            Ok(payload) => Some(Cached {
                key: entry.key,
                name: entry.name,
                cached_at: entry.cached_at,
                expires_at: entry.expires_at,
                payload,
                tags: entry.tags,
            }),
            Err(e) => {
                self.inner.decode_failures.fetch_add(1, Ordering::Relaxed);
                stats::record_undecodable(self.inner.backend, self.name(), &e);
                None
            }
        }
    }

    fn entry(&self, key: Key, payload: &P, now: Timestamp) -> Result<Entry> {
        let settings = &self.inner.settings;
        let bytes = settings
            .codec()
            .encode(payload)
            .map_err(self.ctx(Operation::Encode))?;
        let expiry = self.expiry().unwrap_or(Expiry::Never);
        Ok(Entry {
            key,
            name: settings.name_of(payload),
            cached_at: now,
            expires_at: expiry.expires_at(now),
            payload: bytes,
            meta: None,
            tags: Tags::none(),
        })
    }

    /// Saves `payload` as the answer to `what` (a [`Request`] or a
    /// [`Key`]); `false` when a request is not cached by this repository
    /// (its settings give no key).
    pub async fn save_response(&self, what: &impl KeyOf, payload: &P) -> Result<bool> {
        self.check_open(Operation::Put)?;
        let Some(key) = what.key_in(self, true).map_err(self.ctx(Operation::Put))? else {
            return Ok(false);
        };
        let entry = self.entry(key, payload, self.now())?;
        self.inner
            .store
            .put(entry)
            .await
            .map_err(self.ctx(Operation::Put))?;
        Ok(true)
    }

    /// Saves `payload` as the answer to `request` with `tags`, so
    /// [`purge_tag`](Self::purge_tag) of any of them removes it; `false`
    /// when the request is not cached by this repository.
    pub async fn save_tagged(&self, what: &impl KeyOf, payload: &P, tags: &Tags) -> Result<bool> {
        self.check_open(Operation::Put)?;
        let Some(key) = what.key_in(self, true).map_err(self.ctx(Operation::Put))? else {
            return Ok(false);
        };
        let entry = self
            .entry(key, payload, self.now())?
            .with_tags(tags.clone());
        self.inner
            .store
            .put(entry)
            .await
            .map_err(self.ctx(Operation::Put))?;
        Ok(true)
    }

    /// Removes every answer saved with `tag`; returns how many.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`] for an invalid tag (see [`Tags`]).
    pub async fn purge_tag(&self, tag: &str) -> Result<u64> {
        self.check_open(Operation::PurgeTag)?;
        crate::tags::validate_tag(tag).map_err(self.ctx(Operation::PurgeTag))?;
        self.inner
            .store
            .purge_tag(tag)
            .await
            .map_err(self.ctx(Operation::PurgeTag))
    }

    /// Saves many answers in one bulk call; returns how many were cacheable
    /// (and so saved).
    pub async fn save_responses(&self, items: &[(Request, P)]) -> Result<u64> {
        self.save_pairs(items.iter().map(|(r, p)| (r, p))).await
    }

    pub(crate) async fn save_pairs<'a>(
        &self,
        items: impl Iterator<Item = (&'a Request, &'a P)>,
    ) -> Result<u64>
    where
        P: 'a,
    {
        self.check_open(Operation::PutMany)?;
        let now = self.now();
        let mut entries = Vec::new();
        for (request, payload) in items {
            if let Some(key) = request
                .key_in(self, true)
                .map_err(self.ctx(Operation::PutMany))?
            {
                entries.push(self.entry(key, payload, now)?);
            }
        }
        let n = entries.len() as u64;
        if !entries.is_empty() {
            self.inner
                .store
                .put_many(entries)
                .await
                .map_err(self.ctx(Operation::PutMany))?;
        }
        Ok(n)
    }

    /// Deletes the answer to `what` (a [`Request`] or a [`Key`]); `true`
    /// if one was stored.
    pub async fn delete_response(&self, what: &impl KeyOf) -> Result<bool> {
        self.check_open(Operation::Delete)?;
        let Some(key) = what
            .key_in(self, false)
            .map_err(self.ctx(Operation::Delete))?
        else {
            return Ok(false);
        };
        self.inner
            .store
            .delete(&key)
            .await
            .map_err(self.ctx(Operation::Delete))
    }

    /// Deletes the answers to `requests`; returns how many were stored.
    pub async fn delete_responses(&self, requests: &[Request]) -> Result<u64> {
        self.check_open(Operation::DeleteMany)?;
        let keys: Vec<Key> = requests.iter().filter_map(|r| self.key(r)).collect();
        self.inner
            .store
            .delete_many(&keys)
            .await
            .map_err(self.ctx(Operation::DeleteMany))
    }

    /// Streams the stored payloads (only fresh ones when `fresh_only`).
    /// Entries that no longer decode are skipped and counted.
    pub fn iterate(&self, fresh_only: bool) -> BoxStream<'static, Result<Cached<P>>> {
        if let Err(e) = self.check_open(Operation::Scan) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        let select = if fresh_only {
            Select::Fresh
        } else {
            Select::All
        };
        let this = self.clone();
        self.inner
            .store
            .scan(select, self.now())
            .filter_map(move |item| {
                let out = match item {
                    Ok(entry) => this.decode(entry).map(Ok),
                    Err(e) => Some(Err(e.in_context(
                        this.inner.backend,
                        this.name(),
                        Operation::Scan,
                    ))),
                };
                futures::future::ready(out)
            })
            .boxed()
    }

    /// Makes earlier writes durable. Every respcache backend writes through
    /// (a call returns once the write is stored), so this only checks that
    /// the repository is open; it exists for code ported from the seed API.
    pub async fn commit(&self) -> Result<()> {
        self.check_open(Operation::Put)
    }

    /// Closes the repository: later calls are [`ErrorKind::Closed`] errors.
    /// The backend stays open for other repositories.
    pub async fn close(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::Release);
        Ok(())
    }
}
