//! [`KeyValueCacheBuilder`]: the options of a [`KeyValueCache`] (codec,
//! clock, retention, cross-process computation) before it is built.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::{Inner, KEY_FIELD, KeyValueCache, REPOSITORY, State};
use crate::backend::{DynBackend, StoreSpec};
use crate::codec::{Codec, JsonCodec};
use crate::cross_process::CrossProcess;
use crate::error::Result;
use crate::key::{FieldKind, KeySchema};
use crate::name::Name;
use crate::single_flight::SingleFlight;
use crate::time::{Clock, SystemClock};

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

impl<V> KeyValueCacheBuilder<V, JsonCodec> {
    /// JSON values in `namespace` over `backend`, on the system clock.
    pub(super) fn new(backend: Arc<DynBackend>, namespace: &str) -> Self {
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
