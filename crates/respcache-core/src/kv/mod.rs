//! [`KeyValueCache`]: a plain key/value cache with TTLs over any backend, for
//! the values an API client computes itself (tokens, derived results,
//! rate-limit state). Seed: privex's `AsyncCacheAdapter`.
//!
//! It maps onto the core contract like every other face of respcache: one
//! [`Store`](crate::Store) per namespace, opened with
//! `StoreSpec { cache: <namespace>, repository: "kv", schema: [key: text] }`.
//! A value is stored as an [`Entry`] whose key is `Key::new("KV", [key])`,
//! whose payload is the codec's bytes and whose `expires_at` is
//! `now + ttl` (millisecond precision; `None` never expires). So every
//! backend serves it, and an expired value stays stored (reading as missing)
//! until it is overwritten, removed, revived with
//! [`update_timeout`](KeyValueCache::update_timeout), or purged by a backend's
//! native expiry after the [`retention`](KeyValueCacheBuilder::retention).

use std::collections::HashSet;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::FutureExt;

use crate::backend::{DynBackend, DynStore, StoreSpec};
use crate::codec::{Codec, JsonCodec};
use crate::cross_process::{self, CrossProcess, Step};
use crate::entry::Entry;
use crate::error::{Error, ErrorKind, Operation, Result};
use crate::key::Key;
use crate::single_flight::SingleFlight;
use crate::stats;
use crate::time::{Clock, Expiry};

mod builder;

pub use self::builder::KeyValueCacheBuilder;

/// The repository a namespace's values are stored in (the namespace is the
/// cache). A [`ResponseCache`](crate::ResponseCache) sharing the namespace's
/// name must not define a repository of this name.
pub const REPOSITORY: &str = "kv";

/// The method part of every key/value [`Key`].
pub const KEY_METHOD: &str = "KV";

/// The one key field, text.
pub const KEY_FIELD: &str = "key";

/// A plain key/value cache with TTLs over any [`Backend`](crate::Backend):
/// string keys, typed values through a [`Codec`] (JSON by default).
///
/// [`get_or_set_with`](Self::get_or_set_with) computes a missing value once
/// per key however many tasks ask at the same time. Cheap to clone (an `Arc`
/// inside); clones share the connection state and the in-flight
/// computations.
///
/// ```
/// # async fn demo() -> respcache_core::Result<()> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use respcache_core::{KeyValueCache, MemoryBackend};
///
/// async fn fetch_token(key: String) -> Result<String, std::io::Error> {
///     // an HTTP call to the token endpoint, in real life
///     Ok(format!("s3cr3t for {key}"))
/// }
///
/// let cache = KeyValueCache::<String>::new(Arc::new(MemoryBackend::new()), "auth")?;
/// let hour = Some(Duration::from_secs(3600));
/// // Computed on the first call (once, even if 100 tasks ask together)...
/// let token = cache.get_or_set_with("token", fetch_token, hour).await?;
/// assert_eq!(token, "s3cr3t for token");
/// // ...and read from the cache for the next hour.
/// assert_eq!(cache.get("token").await?.as_deref(), Some("s3cr3t for token"));
/// assert!(cache.remove(["token"]).await?);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub struct KeyValueCache<V, C = JsonCodec> {
    pub(super) inner: Arc<Inner<V, C>>,
}

pub(super) struct Inner<V, C> {
    pub(super) backend: Arc<DynBackend>,
    pub(super) spec: StoreSpec,
    pub(super) codec: C,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) state: RwLock<State>,
    pub(super) flights: SingleFlight<Result<V>>,
    pub(super) decode_failures: AtomicU64,
    pub(super) cross_process: Option<CrossProcess>,
}

/// The connection state: not opened yet (opened on first use), open, or
/// closed by [`KeyValueCache::close`].
pub(super) enum State {
    Idle,
    Open(Arc<DynStore>),
    Closed,
}

impl<V, C> Clone for KeyValueCache<V, C> {
    fn clone(&self) -> Self {
        KeyValueCache {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<V, C: Codec<V>> fmt::Debug for KeyValueCache<V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
        {
            State::Idle => "idle",
            State::Open(_) => "open",
            State::Closed => "closed",
        };
        f.debug_struct("KeyValueCache")
            .field("namespace", &self.inner.spec.cache)
            .field("backend", &self.inner.backend.name())
            .field("codec", &self.inner.codec.name())
            .field("state", &state)
            .field("in_flight", &self.inner.flights.in_flight())
            .finish()
    }
}

impl<V> KeyValueCache<V, JsonCodec> {
    /// A JSON cache of values in `namespace` (a valid [`Name`]) over
    /// `backend`, on the system clock. The store is opened on first use.
    pub fn new(backend: Arc<DynBackend>, namespace: &str) -> Result<Self>
    where
        V: Clone + Send + Sync + 'static,
        JsonCodec: Codec<V>,
    {
        Self::builder(backend, namespace).build()
    }

    /// A builder, to choose the codec, the clock or the retention.
    pub fn builder(backend: Arc<DynBackend>, namespace: &str) -> KeyValueCacheBuilder<V> {
        KeyValueCacheBuilder::new(backend, namespace)
    }
}

impl<V, C> KeyValueCache<V, C>
where
    V: Clone + Send + Sync + 'static,
    C: Codec<V>,
{
    /// The namespace (the cache name in the backend).
    pub fn namespace(&self) -> &str {
        self.inner.spec.cache.as_str()
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<DynBackend> {
        &self.inner.backend
    }

    /// The clock values are stamped with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// How many stored values failed to decode and were read as missing.
    pub fn decode_failures(&self) -> u64 {
        self.inner.decode_failures.load(Ordering::Relaxed)
    }

    // ----- connection ---------------------------------------------------

    /// Opens the namespace's store (creating it in the backend if missing).
    /// Idempotent; after [`close`](Self::close) it opens the cache again.
    pub async fn connect(&self) -> Result<()> {
        if matches!(&*self.read_state(), State::Open(_)) {
            return Ok(());
        }
        let store = self.open_store().await?;
        let mut state = self.write_state();
        if !matches!(&*state, State::Open(_)) {
            *state = State::Open(store);
        }
        Ok(())
    }

    /// Closes the cache: every later call (on every clone) is an
    /// [`ErrorKind::Closed`] error until [`connect`](Self::connect) or
    /// [`reconnect`](Self::reconnect). The backend stays open for its other
    /// users; close it with [`Backend::close`](crate::Backend::close).
    pub async fn close(&self) -> Result<()> {
        *self.write_state() = State::Closed;
        Ok(())
    }

    /// Drops the current store handle and opens a new one (also after
    /// [`close`](Self::close)).
    pub async fn reconnect(&self) -> Result<()> {
        let store = self.open_store().await?;
        *self.write_state() = State::Open(store);
        Ok(())
    }

    /// Whether [`close`](Self::close) was called (and no connect since).
    pub fn is_closed(&self) -> bool {
        matches!(&*self.read_state(), State::Closed)
    }

    // ----- reads --------------------------------------------------------

    /// The value under `key`, or `None` when it is missing, expired, or no
    /// longer decodes (logged and counted, see [`crate::stats`]).
    pub async fn get(&self, key: &str) -> Result<Option<V>> {
        let store = self.store(Operation::Get).await?;
        let entry = store
            .get(&kv_key(key))
            .await
            .map_err(self.ctx(Operation::Get))?;
        let now = self.inner.clock.now();
        Ok(entry
            .filter(|e| e.is_fresh(now))
            .and_then(|e| self.decode(e)))
    }

    /// The value under `key`, or `default` when it is missing or expired.
    pub async fn get_or(&self, key: &str, default: V) -> Result<V> {
        Ok(self.get(key).await?.unwrap_or(default))
    }

    /// The value under `key`; an [`ErrorKind::NotFound`] error naming the
    /// key when it is missing or expired.
    pub async fn get_or_fail(&self, key: &str) -> Result<V> {
        match self.get(key).await? {
            Some(value) => Ok(value),
            None => Err(self.not_found(key, Operation::Get)),
        }
    }

    /// Whether a fresh value is stored under `key`.
    pub async fn contains(&self, key: &str) -> Result<bool> {
        let store = self.store(Operation::Contains).await?;
        store
            .contains(&kv_key(key), self.inner.clock.now())
            .await
            .map_err(self.ctx(Operation::Contains))
    }

    // ----- writes -------------------------------------------------------

    /// Stores `value` under `key`, replacing any value there. It expires
    /// `ttl` from now, to the millisecond; `None` never expires. A zero ttl
    /// stores a value that is already expired.
    pub async fn set(&self, key: &str, value: &V, ttl: Option<Duration>) -> Result<()> {
        let store = self.store(Operation::Put).await?;
        let payload = self
            .inner
            .codec
            .encode(value)
            .map_err(self.ctx(Operation::Encode))?;
        let now = self.inner.clock.now();
        let entry = Entry::new(kv_key(key), now, payload)
            .with_expires_at(Expiry::from(ttl).expires_at(now));
        store.put(entry).await.map_err(self.ctx(Operation::Put))
    }

    /// The value under `key`; when it is missing or expired, stores `value`
    /// (expiring after `ttl`) and returns it.
    pub async fn get_or_set(&self, key: &str, value: V, ttl: Option<Duration>) -> Result<V> {
        self.get_or_set_with(key, move |_| async move { Ok::<V, Error>(value) }, ttl)
            .await
    }

    /// The value under `key`; when it is missing or expired, awaits
    /// `compute(key)`, stores its value (expiring after `ttl`) and returns
    /// it. The closure receives the key as an owned `String`, so one
    /// function serves many keys and `|key| async move { ... }` may keep it:
    ///
    /// ```
    /// # async fn demo() -> respcache_core::Result<()> {
    /// # use std::sync::Arc;
    /// # use respcache_core::{KeyValueCache, MemoryBackend};
    /// let lengths = KeyValueCache::<usize>::new(Arc::new(MemoryBackend::new()), "lengths")?;
    /// let n = lengths
    ///     .get_or_set_with("hello", |key| async move { Ok::<_, std::io::Error>(key.len()) }, None)
    ///     .await?;
    /// assert_eq!(n, 5);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    ///
    /// However many tasks ask for the same key at the same time (through
    /// this cache or its clones), `compute` runs once and they all get its
    /// value. When it fails, every waiting task gets an
    /// [`ErrorKind::Computation`] error naming the key, whose
    /// [`source`](StdError::source) is the closure's error (a respcache
    /// [`Error`] too: downcast it to read its kind), and nothing is stored;
    /// the next call computes again. A panicking computation is such an
    /// error, its message holding the panic's. When the computing task is
    /// cancelled, a waiting task takes over with its own `compute`. Errors
    /// of the cache itself (reading or storing the value) keep their kinds.
    ///
    /// With [`cross_process`](KeyValueCacheBuilder::cross_process), the
    /// same holds across processes that share the backend: one of them
    /// computes under the backend's lease on the key, the others wait for
    /// the value it stores (up to the configured bound, then compute
    /// themselves); when it fails, panics or dies, its lease is released or
    /// expires and a waiter computes instead.
    ///
    /// `compute` must not ask this cache for the same key: it would wait for
    /// itself.
    pub async fn get_or_set_with<F, Fut, E>(
        &self,
        key: &str,
        compute: F,
        ttl: Option<Duration>,
    ) -> Result<V>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = std::result::Result<V, E>>,
        E: Into<Box<dyn StdError + Send + Sync + 'static>>,
    {
        if let Some(value) = self.get(key).await? {
            return Ok(value);
        }
        let (outcome, _led) = self
            .inner
            .flights
            .run(
                key,
                || async move {
                    // A computation that finished since our miss has stored it.
                    if let Some(value) = self.get(key).await? {
                        return Ok(value);
                    }
                    let run = async move {
                        let value = compute(key.to_owned())
                            .await
                            .map_err(|e| compute_error(key, e.into()))?;
                        self.set(key, &value, ttl).await?;
                        Ok(value)
                    };
                    match self.inner.cross_process {
                        None => run.await,
                        Some(options) => self.across_processes(key, &options, run).await,
                    }
                },
                |payload| Err(panic_error(key, payload.as_ref())),
            )
            .await;
        outcome
    }

    /// Runs `run` under the store's lease on `key`, unless another process
    /// stores the value first (see [`crate::cross_process`]).
    async fn across_processes(
        &self,
        key: &str,
        options: &CrossProcess,
        run: impl Future<Output = Result<V>>,
    ) -> Result<V> {
        let store = self.store(Operation::AcquireLease).await?;
        let store_key = kv_key(key);
        let turn =
            cross_process::take_or_wait(store.as_ref(), &store_key, options, || self.get(key))
                .await
                .map_err(self.ctx(Operation::AcquireLease))?;
        let token = match turn {
            Step::Found(value) => return Ok(value),
            Step::Compute(token) => token,
        };
        // Release on success, error and panic alike, so the others go on at
        // once; a cancelled holder's lease expires.
        let outcome = AssertUnwindSafe(run).catch_unwind().await;
        if let Some(token) = token {
            cross_process::release(store.as_ref(), &store_key, &token).await;
        }
        outcome.unwrap_or_else(|payload| std::panic::resume_unwind(payload))
    }

    /// Removes the values under `keys`; `true` when every key was stored
    /// (an expired value counts: it is removed too). Keys that were stored
    /// are removed either way.
    pub async fn remove<I, K>(&self, keys: I) -> Result<bool>
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        let store = self.store(Operation::DeleteMany).await?;
        let mut seen = HashSet::new();
        let mut wanted = Vec::new();
        for key in keys {
            let key = key.as_ref();
            if seen.insert(key.to_owned()) {
                wanted.push(kv_key(key));
            }
        }
        if wanted.is_empty() {
            return Ok(true);
        }
        let removed = store
            .delete_many(&wanted)
            .await
            .map_err(self.ctx(Operation::DeleteMany))?;
        Ok(removed == wanted.len() as u64)
    }

    /// Makes the value under `key` expire `ttl` from now (`None`: never),
    /// without rewriting it. Works on an expired value, which it revives;
    /// an [`ErrorKind::NotFound`] error when nothing is stored under `key`.
    pub async fn update_timeout(&self, key: &str, ttl: Option<Duration>) -> Result<()> {
        let store = self.store(Operation::SetExpiry).await?;
        let expires_at = Expiry::from(ttl).expires_at(self.inner.clock.now());
        let found = store
            .set_expiry(&kv_key(key), expires_at)
            .await
            .map_err(self.ctx(Operation::SetExpiry))?;
        if found {
            Ok(())
        } else {
            Err(self.not_found(key, Operation::SetExpiry))
        }
    }

    // ----- single-flight introspection (tests) --------------------------

    /// How many keys have a computation in flight. Zero whenever no
    /// [`get_or_set_with`](Self::get_or_set_with) call is running: the
    /// waiting state is freed when a computation ends, however it ends.
    #[doc(hidden)]
    pub fn in_flight(&self) -> usize {
        self.inner.flights.in_flight()
    }

    /// How many tasks are waiting for the computation in flight for `key`
    /// (not counting the one computing).
    #[doc(hidden)]
    pub fn waiters(&self, key: &str) -> usize {
        self.inner.flights.waiters(key)
    }

    // ----- helpers ------------------------------------------------------

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The open store, `None` if it must be opened first.
    fn current_store(&self, op: Operation) -> Result<Option<Arc<DynStore>>> {
        match &*self.read_state() {
            State::Open(store) => Ok(Some(Arc::clone(store))),
            State::Closed => Err(self.closed_error(op)),
            State::Idle => Ok(None),
        }
    }

    /// The store, opened on first use.
    async fn store(&self, op: Operation) -> Result<Arc<DynStore>> {
        if let Some(store) = self.current_store(op)? {
            return Ok(store);
        }
        let opened = self.open_store().await?;
        let mut state = self.write_state();
        match &*state {
            State::Open(store) => Ok(Arc::clone(store)),
            State::Closed => Err(self.closed_error(op)),
            State::Idle => {
                *state = State::Open(Arc::clone(&opened));
                Ok(opened)
            }
        }
    }

    async fn open_store(&self) -> Result<Arc<DynStore>> {
        self.inner
            .backend
            .open_store(&self.inner.spec)
            .await
            .map_err(self.ctx(Operation::OpenStore))
    }

    fn ctx(&self, op: Operation) -> impl Fn(Error) -> Error + '_ {
        move |e| e.in_context(self.inner.backend.name(), REPOSITORY, op)
    }

    fn closed_error(&self, op: Operation) -> Error {
        Error::new(
            ErrorKind::Closed,
            format!("the key/value cache {:?} was closed", self.namespace()),
        )
        .in_context(self.inner.backend.name(), REPOSITORY, op)
    }

    fn not_found(&self, key: &str, op: Operation) -> Error {
        Error::new(
            ErrorKind::NotFound,
            format!(
                "key {:?} is not in the key/value cache {:?} (missing or expired)",
                shorten(key),
                self.namespace()
            ),
        )
        .in_context(self.inner.backend.name(), REPOSITORY, op)
    }

    fn decode(&self, entry: Entry) -> Option<V> {
        match self.inner.codec.decode(&entry.payload) {
            Ok(value) => Some(value),
            Err(e) => {
                self.inner.decode_failures.fetch_add(1, Ordering::Relaxed);
                stats::record_undecodable(self.inner.backend.name(), REPOSITORY, &e);
                None
            }
        }
    }
}

/// The store key of the user key `key`.
fn kv_key(key: &str) -> Key {
    Key::new(KEY_METHOD, [key.into()])
}

/// `key`, cut to 80 characters for messages.
fn shorten(key: &str) -> &str {
    match key.char_indices().nth(80) {
        Some((i, _)) => &key[..i],
        None => key,
    }
}

/// The error a failed computation becomes: a [`ErrorKind::Computation`]
/// error naming the key (never the value), the closure's error as source.
fn compute_error(key: &str, error: Box<dyn StdError + Send + Sync + 'static>) -> Error {
    Error::new(
        ErrorKind::Computation,
        format!("computing key {:?}", shorten(key)),
    )
    .with_source(error)
}

/// The error a panicking computation becomes.
fn panic_error(key: &str, payload: &(dyn std::any::Any + Send)) -> Error {
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-text panic payload");
    Error::new(
        ErrorKind::Computation,
        format!("computing key {:?} panicked: {what}", shorten(key)),
    )
}

#[cfg(test)]
mod tests;
