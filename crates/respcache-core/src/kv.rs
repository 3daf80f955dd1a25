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
use std::marker::PhantomData;
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
use crate::key::{FieldKind, Key, KeySchema};
use crate::name::Name;
use crate::single_flight::SingleFlight;
use crate::stats;
use crate::time::{Clock, Expiry, SystemClock};

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
    inner: Arc<Inner<V, C>>,
}

struct Inner<V, C> {
    backend: Arc<DynBackend>,
    spec: StoreSpec,
    codec: C,
    clock: Arc<dyn Clock>,
    state: RwLock<State>,
    flights: SingleFlight<Result<V>>,
    decode_failures: AtomicU64,
    cross_process: Option<CrossProcess>,
}

/// The connection state: not opened yet (opened on first use), open, or
/// closed by [`KeyValueCache::close`].
enum State {
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

/// Builds a [`KeyValueCache`]: codec, clock and retention.
///
/// ```
/// # async fn demo() -> respcache_core::Result<()> {
/// use std::sync::Arc;
/// use respcache_core::{Bytes, BytesCodec, KeyValueCache, ManualClock, MemoryBackend};
///
/// let clock = Arc::new(ManualClock::new());
/// let blobs = KeyValueCache::<Bytes>::builder(Arc::new(MemoryBackend::new()), "blobs")
///     .codec(BytesCodec)
///     .clock(clock.clone())
///     .connect()
///     .await?;
/// blobs.set("raw", &Bytes::from_static(b"\x00\xff"), None).await?;
/// assert_eq!(blobs.get("raw").await?, Some(Bytes::from_static(b"\x00\xff")));
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub struct KeyValueCacheBuilder<V, C = JsonCodec> {
    backend: Arc<DynBackend>,
    namespace: String,
    codec: C,
    clock: Arc<dyn Clock>,
    retention: Option<Duration>,
    cross_process: Option<CrossProcess>,
    _value: PhantomData<fn() -> V>,
}

impl<V, C: Codec<V>> fmt::Debug for KeyValueCacheBuilder<V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValueCacheBuilder")
            .field("namespace", &self.namespace)
            .field("backend", &self.backend.name())
            .field("codec", &self.codec.name())
            .field("clock", &self.clock)
            .field("retention", &self.retention)
            .field("cross_process", &self.cross_process)
            .finish()
    }
}

impl<V, C> KeyValueCacheBuilder<V, C> {
    /// Stores values with `codec` instead: [`BytesCodec`](crate::BytesCodec)
    /// for raw bytes, `BincodeCodec` (feature `bincode`), or your own.
    pub fn codec<C2>(self, codec: C2) -> KeyValueCacheBuilder<V, C2> {
        KeyValueCacheBuilder {
            backend: self.backend,
            namespace: self.namespace,
            codec,
            clock: self.clock,
            retention: self.retention,
            cross_process: self.cross_process,
            _value: PhantomData,
        }
    }

    /// Reads the current time from `clock` (a [`ManualClock`](crate::ManualClock)
    /// in tests) instead of the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Lets backends with native expiry (Redis, MongoDB, DynamoDB) purge a
    /// value `retention` after it expires. Without it an expired value stays
    /// stored, so [`update_timeout`](KeyValueCache::update_timeout) can
    /// revive it, until it is overwritten or removed.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Makes [`get_or_set_with`](KeyValueCache::get_or_set_with) compute a
    /// missing value once across every process sharing the backend, not
    /// only within this one: the process that takes the backend's lease on
    /// the key computes, the others poll the store for its value (see
    /// [`CrossProcess`] for the lease length, the bound on waiting and the
    /// polling). On a backend without leases it changes nothing.
    pub fn cross_process(mut self, options: CrossProcess) -> Self {
        self.cross_process = Some(options);
        self
    }
}

impl<V, C> KeyValueCacheBuilder<V, C>
where
    V: Clone + Send + Sync + 'static,
    C: Codec<V>,
{
    /// The cache, not connected yet: the store is opened by
    /// [`connect`](KeyValueCache::connect) or on first use. Fails only on an
    /// invalid namespace.
    pub fn build(self) -> Result<KeyValueCache<V, C>> {
        let cache = Name::new(self.namespace)?;
        let schema = KeySchema::new([(KEY_FIELD, FieldKind::Text)])?;
        let spec =
            StoreSpec::new(cache, Name::new(REPOSITORY)?, schema).with_retention(self.retention);
        Ok(KeyValueCache {
            inner: Arc::new(Inner {
                backend: self.backend,
                spec,
                codec: self.codec,
                clock: self.clock,
                state: RwLock::new(State::Idle),
                flights: SingleFlight::new(),
                decode_failures: AtomicU64::new(0),
                cross_process: self.cross_process,
            }),
        })
    }

    /// The cache, with its store opened (created in the backend if missing).
    pub async fn connect(self) -> Result<KeyValueCache<V, C>> {
        let cache = self.build()?;
        cache.connect().await?;
        Ok(cache)
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
        KeyValueCacheBuilder {
            backend,
            namespace: namespace.to_owned(),
            codec: JsonCodec,
            clock: Arc::new(SystemClock),
            retention: None,
            cross_process: None,
            _value: PhantomData,
        }
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
mod tests {
    use super::*;
    use crate::memory::MemoryBackend;
    use crate::time::{ManualClock, Timestamp};
    use std::sync::atomic::AtomicUsize;
    use tokio::sync::Semaphore;

    const LONG: Duration = Duration::from_secs(10);

    fn cache<V>(clock: Arc<ManualClock>) -> KeyValueCache<V>
    where
        V: Clone + Send + Sync + 'static,
        JsonCodec: Codec<V>,
    {
        KeyValueCache::builder(Arc::new(MemoryBackend::new()), "kv-tests")
            .clock(clock)
            .build()
            .unwrap()
    }

    /// Waits (bounded: a hang fails the test) until `cond` holds.
    async fn until(what: &str, cond: impl Fn() -> bool) {
        let waited = tokio::time::timeout(LONG, async {
            while !cond() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "timed out waiting until {what}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_computation_for_a_hundred_concurrent_callers() {
        let kv = cache::<u64>(Arc::new(ManualClock::new()));
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (kv, runs, gate) = (kv.clone(), runs.clone(), gate.clone());
                tokio::spawn(async move {
                    kv.get_or_set_with(
                        "answer",
                        |_| async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            let _permit = gate.acquire().await;
                            Ok::<_, Error>(42)
                        },
                        None,
                    )
                    .await
                })
            })
            .collect();
        until("99 callers wait", || kv.waiters("answer") == 99).await;
        assert_eq!(kv.in_flight(), 1);
        gate.add_permits(1);
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), 42);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(kv.in_flight(), 0);
        assert_eq!(kv.get("answer").await.unwrap(), Some(42));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_error_reaches_every_waiter_and_nothing_is_stored() {
        let kv = cache::<u64>(Arc::new(ManualClock::new()));
        let gate = Arc::new(Semaphore::new(0));
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (kv, gate) = (kv.clone(), gate.clone());
                tokio::spawn(async move {
                    kv.get_or_set_with(
                        "k",
                        |_| async move {
                            let _permit = gate.acquire().await;
                            Err::<u64, _>(std::io::Error::other("token endpoint down"))
                        },
                        None,
                    )
                    .await
                })
            })
            .collect();
        until("9 callers wait", || kv.waiters("k") == 9).await;
        gate.add_permits(1);
        for task in tasks {
            let e = task.await.unwrap().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Computation);
            assert!(!e.is_temporary());
            assert!(e.to_string().contains("token endpoint down"), "{e}");
            assert!(e.to_string().contains("\"k\""), "{e}");
            let cause = StdError::source(&e).map(ToString::to_string);
            assert_eq!(cause.as_deref(), Some("token endpoint down"));
        }
        assert_eq!(kv.in_flight(), 0);
        assert_eq!(kv.get("k").await.unwrap(), None);
    }

    /// A respcache error returned by the closure is the caller's failure,
    /// not the cache's: `Computation`, the original (kind included) as its
    /// source.
    #[tokio::test]
    async fn a_respcache_error_from_the_computation_is_a_computation_error() {
        let kv = cache::<u64>(Arc::new(ManualClock::new()));
        let e = kv
            .get_or_set_with(
                "k",
                |_| async { Err::<u64, _>(Error::new(ErrorKind::Timeout, "slow upstream")) },
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Computation);
        assert_eq!(e.message(), "computing key \"k\"");
        assert_eq!(
            e.to_string(),
            "computation failed: computing key \"k\": timed out: slow upstream"
        );
        let inner = StdError::source(&e).and_then(|s| s.downcast_ref::<Error>());
        assert_eq!(inner.map(Error::kind), Some(ErrorKind::Timeout));
    }

    #[tokio::test]
    async fn the_computation_receives_its_key_and_never_shows_the_value() {
        let kv = cache::<String>(Arc::new(ManualClock::new()));
        let upper = |key: String| async move { Ok::<_, Error>(key.to_uppercase()) };
        assert_eq!(kv.get_or_set_with("abc", upper, None).await.unwrap(), "ABC");
        assert_eq!(kv.get_or_set_with("xyz", upper, None).await.unwrap(), "XYZ");
        assert_eq!(kv.get("abc").await.unwrap().as_deref(), Some("ABC"));
        // get_or_set passes its value, whatever the key.
        assert_eq!(kv.get_or_set("k", "v".to_owned(), None).await.unwrap(), "v");
        // A failure names the key, not what was stored or computed.
        kv.set("secret-key", &"s3cr3t".to_owned(), Some(Duration::ZERO))
            .await
            .unwrap();
        let e = kv
            .get_or_set_with(
                "secret-key",
                |key| async move { Err::<String, _>(std::io::Error::other(format!("no {key}"))) },
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Computation);
        assert!(e.to_string().contains("no secret-key"), "{e}");
        assert!(!format!("{e} {e:?}").contains("s3cr3t"), "{e:?}");
    }

    #[test]
    fn a_shared_error_reads_like_the_original() {
        let original = Error::new(ErrorKind::Connection, "refused")
            .with_backend("redis")
            .with_operation(Operation::Get)
            .with_source(std::io::Error::other("port 6379 closed"));
        let copy = original.clone();
        assert_eq!(copy.to_string(), original.to_string());
        assert_eq!(copy.kind(), ErrorKind::Connection);
        assert_eq!(copy.backend(), Some("redis"));
        assert_eq!(
            StdError::source(&copy).map(ToString::to_string).as_deref(),
            Some("port 6379 closed")
        );
        let bare = Error::new(ErrorKind::Codec, "bad").clone();
        assert!(StdError::source(&bare).is_none());
        assert_eq!(bare.to_string(), "codec error: bad");
    }

    fn explode() -> u64 {
        panic!("upstream parser blew up")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_computation_is_an_error_for_every_waiter() {
        let kv = cache::<u64>(Arc::new(ManualClock::new()));
        let gate = Arc::new(Semaphore::new(0));
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let (kv, gate) = (kv.clone(), gate.clone());
                tokio::spawn(async move {
                    kv.get_or_set_with(
                        "boom",
                        |_| async move {
                            let _permit = gate.acquire().await;
                            Ok::<u64, Error>(explode())
                        },
                        None,
                    )
                    .await
                })
            })
            .collect();
        until("4 callers wait", || kv.waiters("boom") == 4).await;
        gate.add_permits(1);
        for task in tasks {
            // The panic is caught: no task panics, each gets an error.
            let e = task.await.unwrap().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Computation);
            assert!(
                e.to_string().contains("panicked: upstream parser blew up"),
                "{e}"
            );
        }
        assert_eq!(kv.in_flight(), 0);
        assert_eq!(kv.get("boom").await.unwrap(), None);
        // The key is usable again.
        let v = kv
            .get_or_set_with("boom", |_| async { Ok::<u64, Error>(7) }, None)
            .await
            .unwrap();
        assert_eq!(v, 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_aborted_leader_hands_over_to_a_waiter() {
        let kv = cache::<u64>(Arc::new(ManualClock::new()));
        let leader = {
            let kv = kv.clone();
            tokio::spawn(async move {
                kv.get_or_set_with("k", |_| futures::future::pending::<Result<u64>>(), None)
                    .await
            })
        };
        until("the leader computes", || kv.in_flight() == 1).await;
        let waiter = {
            let kv = kv.clone();
            tokio::spawn(async move {
                kv.get_or_set_with("k", |_| async { Ok::<u64, Error>(9) }, None)
                    .await
            })
        };
        until("the waiter waits", || kv.waiters("k") == 1).await;
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        let got = tokio::time::timeout(LONG, waiter).await;
        assert_eq!(got.expect("waiter hung").unwrap().unwrap(), 9);
        assert_eq!(kv.in_flight(), 0);
        assert_eq!(kv.get("k").await.unwrap(), Some(9));
    }

    #[tokio::test]
    async fn a_cancelled_computation_frees_its_slot() {
        let kv = cache::<u64>(Arc::new(ManualClock::new()));
        let call = kv.get_or_set_with("k", |_| futures::future::pending::<Result<u64>>(), None);
        let timed_out = tokio::time::timeout(Duration::from_millis(20), call).await;
        assert!(timed_out.is_err());
        assert_eq!(kv.in_flight(), 0);
        assert_eq!(kv.get("k").await.unwrap(), None);
    }

    #[tokio::test]
    async fn different_keys_compute_independently() {
        let kv = cache::<String>(Arc::new(ManualClock::new()));
        let (a, b) = tokio::join!(
            kv.get_or_set_with("a", |_| async { Ok::<_, Error>("A".to_owned()) }, None),
            kv.get_or_set_with("b", |_| async { Ok::<_, Error>("B".to_owned()) }, None),
        );
        assert_eq!((a.unwrap().as_str(), b.unwrap().as_str()), ("A", "B"));
        assert_eq!(kv.in_flight(), 0);
    }

    /// Two caches over one backend stand for two processes: each has its
    /// own in-process single flight, so only the lease can keep them from
    /// both computing.
    fn two_processes(options: CrossProcess) -> (KeyValueCache<String>, KeyValueCache<String>) {
        let backend: Arc<DynBackend> = Arc::new(MemoryBackend::new());
        let make = || {
            KeyValueCache::builder(Arc::clone(&backend), "xp")
                .cross_process(options)
                .build()
                .unwrap()
        };
        (make(), make())
    }

    #[tokio::test]
    async fn cross_process_computes_once_for_two_caches_sharing_a_backend() {
        let (a, b) = two_processes(CrossProcess::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let compute = |runs: Arc<AtomicUsize>| async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, Error>("v".to_owned())
        };
        let (x, y) = tokio::join!(
            a.get_or_set_with("k", |_| compute(Arc::clone(&runs)), None),
            b.get_or_set_with("k", |_| compute(Arc::clone(&runs)), None),
        );
        assert_eq!((x.unwrap(), y.unwrap()), ("v".to_owned(), "v".to_owned()));
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        // Without the option both compute.
        let backend: Arc<DynBackend> = Arc::new(MemoryBackend::new());
        let (c, d) = (
            KeyValueCache::<String>::new(Arc::clone(&backend), "xp").unwrap(),
            KeyValueCache::<String>::new(backend, "xp").unwrap(),
        );
        let runs = Arc::new(AtomicUsize::new(0));
        let (x, y) = tokio::join!(
            c.get_or_set_with("k", |_| compute(Arc::clone(&runs)), None),
            d.get_or_set_with("k", |_| compute(Arc::clone(&runs)), None),
        );
        assert!(x.is_ok() && y.is_ok());
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "the test shows the difference"
        );
    }

    #[tokio::test]
    async fn cross_process_waiter_takes_over_from_a_dead_holder() {
        let lease = Duration::from_millis(300);
        let (a, b) = two_processes(CrossProcess::new().lease(lease).max_wait(LONG));
        let started = Arc::new(Semaphore::new(0));
        let holder = {
            let started = Arc::clone(&started);
            tokio::spawn(async move {
                a.get_or_set_with(
                    "k",
                    |_| async move {
                        started.add_permits(1);
                        tokio::time::sleep(LONG).await;
                        Ok::<_, Error>("never".to_owned())
                    },
                    None,
                )
                .await
            })
        };
        let _ = started.acquire().await.unwrap();
        let begin = std::time::Instant::now();
        // The holder "dies": its task is dropped mid-computation, its lease
        // stays until it expires.
        holder.abort();
        let value = b
            .get_or_set_with(
                "k",
                |_| async { Ok::<_, Error>("taken over".to_owned()) },
                None,
            )
            .await
            .unwrap();
        let took = begin.elapsed();
        assert_eq!(value, "taken over");
        assert!(took >= lease - Duration::from_millis(50), "{took:?}");
        assert!(took < LONG, "{took:?}");
    }

    #[tokio::test]
    async fn cross_process_failure_and_panic_release_the_lease_at_once() {
        let (a, b) = two_processes(CrossProcess::new().lease(LONG).max_wait(LONG));
        let failed = a
            .get_or_set_with(
                "k",
                |_| async { Err::<String, _>(std::io::Error::other("down")) },
                None,
            )
            .await;
        assert!(failed.is_err());
        let panicked = a
            .get_or_set_with::<_, _, Error>("k", |_| async { panic!("boom") }, None)
            .await
            .unwrap_err();
        assert!(panicked.message().contains("boom"), "{panicked}");
        let begin = std::time::Instant::now();
        let v = b
            .get_or_set_with("k", |_| async { Ok::<_, Error>("b".to_owned()) }, None)
            .await
            .unwrap();
        assert_eq!(v, "b");
        assert!(
            begin.elapsed() < Duration::from_secs(5),
            "waited for a lease"
        );
    }

    #[tokio::test]
    async fn cross_process_waiter_gives_up_after_max_wait_and_computes() {
        let options = CrossProcess::new()
            .lease(LONG)
            .max_wait(Duration::from_millis(200))
            .poll(Duration::from_millis(5), Duration::from_millis(20));
        let (a, b) = two_processes(options);
        let started = Arc::new(Semaphore::new(0));
        let holder = {
            let started = Arc::clone(&started);
            tokio::spawn(async move {
                a.get_or_set_with(
                    "k",
                    |_| async move {
                        started.add_permits(1);
                        tokio::time::sleep(LONG).await;
                        Ok::<_, Error>("slow".to_owned())
                    },
                    None,
                )
                .await
            })
        };
        let _ = started.acquire().await.unwrap();
        let begin = std::time::Instant::now();
        let v = b
            .get_or_set_with(
                "k",
                |_| async { Ok::<_, Error>("impatient".to_owned()) },
                None,
            )
            .await
            .unwrap();
        assert_eq!(v, "impatient");
        let took = begin.elapsed();
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_secs(5),
            "{took:?}"
        );
        holder.abort();
    }

    #[tokio::test]
    async fn opens_lazily_and_closes_for_every_clone() {
        let backend = Arc::new(MemoryBackend::new());
        let kv = KeyValueCache::<u64>::new(backend.clone(), "lazy").unwrap();
        assert!(
            crate::Backend::list_stores(&*backend, &Name::new("lazy").unwrap())
                .await
                .unwrap()
                .is_empty()
        );
        kv.set("a", &1, None).await.unwrap();
        let stores = crate::Backend::list_stores(&*backend, &Name::new("lazy").unwrap())
            .await
            .unwrap();
        assert_eq!(stores, vec![Name::new(REPOSITORY).unwrap()]);
        let clone = kv.clone();
        kv.close().await.unwrap();
        assert!(clone.is_closed());
        let e = clone.get("a").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Closed);
        assert_eq!(e.operation(), Some(Operation::Get));
        clone.connect().await.unwrap();
        assert_eq!(kv.get("a").await.unwrap(), Some(1));
        assert!(format!("{kv:?}").contains("\"lazy\""));
    }

    #[test]
    fn an_invalid_namespace_is_refused() {
        let e = KeyValueCache::<u64>::new(Arc::new(MemoryBackend::new()), "a:b").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidName);
    }

    #[tokio::test]
    async fn ttl_has_millisecond_precision_on_the_stored_entry() {
        let clock = Arc::new(ManualClock::new());
        let backend = Arc::new(MemoryBackend::new());
        let kv = KeyValueCache::<u64>::builder(backend.clone(), "ms")
            .clock(clock.clone())
            .connect()
            .await
            .unwrap();
        kv.set("a", &1, Some(Duration::from_millis(1500)))
            .await
            .unwrap();
        let spec = kv.inner.spec.clone();
        let store = crate::Backend::open_store(&*backend, &spec).await.unwrap();
        let entry = store.get(&kv_key("a")).await.unwrap().unwrap();
        assert_eq!(
            entry.expires_at,
            Some(Timestamp::from_millis(clock.now().as_millis() + 1500))
        );
        assert_eq!(entry.key.method(), KEY_METHOD);
    }
}
