//! Degraded start: a client built while its stores cannot be opened (the
//! backend is down, the SQLite file is damaged, ...). Until the stores open,
//! requests go to the origin; a background task tries again with back-off
//! and swaps the real target in when it succeeds.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream};
use http::{HeaderMap, Method};
use respcache_core::{
    DynStore, Entry, Error as CoreError, ErrorKind as CoreErrorKind, Expiry, Key, Select, Store,
    Timestamp, async_trait,
};
use url::Url;

use crate::metrics;
use crate::stats::StoreState;
use crate::target::{Slot, Target};

/// How the stores are opened: called again after each failure.
pub(crate) type Opener =
    Arc<dyn Fn() -> BoxFuture<'static, respcache_core::Result<Box<dyn Target>>> + Send + Sync>;

/// The waits between attempts: doubling from `initial` up to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
}

/// The first wait before the stores are opened again by default.
pub const DEFAULT_REOPEN_INITIAL: Duration = Duration::from_millis(500);
/// The longest wait between attempts to open the stores by default.
pub const DEFAULT_REOPEN_MAX: Duration = Duration::from_secs(30);

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: DEFAULT_REOPEN_INITIAL,
            max: DEFAULT_REOPEN_MAX,
        }
    }
}

struct Shared {
    /// The backend's name while the stores are not open.
    name: &'static str,
    ready: OnceLock<Box<dyn Target>>,
    status: Mutex<(StoreState, Option<String>)>,
}

impl Shared {
    fn set(&self, state: StoreState, error: Option<String>) {
        *self
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (state, error);
        metrics::store_state(self.name, state);
    }
}

/// A target whose stores are being opened in the background.
pub(crate) struct OpeningTarget {
    shared: Arc<Shared>,
    unavailable: Arc<DynStore>,
}

impl fmt::Debug for OpeningTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpeningTarget")
            .field("backend", &self.shared.name)
            .field("ready", &self.shared.ready.get())
            .finish()
    }
}

impl OpeningTarget {
    /// Starts opening with `opener` in the background (first after
    /// `backoff.initial`); `first_error` says why the first attempt failed.
    /// The task ends once the stores are open or the client is dropped.
    pub(crate) fn start(
        name: &'static str,
        opener: Opener,
        backoff: Backoff,
        first_error: &CoreError,
    ) -> Self {
        tracing::warn!(
            backend = name,
            error = %first_error,
            "respcache-http: the cache cannot be opened; requests go to the origin while it is opened again in the background"
        );
        let shared = Arc::new(Shared {
            name,
            ready: OnceLock::new(),
            status: Mutex::new((StoreState::Opening, None)),
        });
        shared.set(StoreState::Failed, Some(first_error.to_string()));
        tokio::spawn(reopen(Arc::downgrade(&shared), opener, backoff));
        OpeningTarget {
            shared,
            unavailable: Arc::new(Unavailable),
        }
    }

    fn ready(&self) -> Option<&dyn Target> {
        self.shared.ready.get().map(|t| &**t)
    }
}

async fn reopen(shared: Weak<Shared>, opener: Opener, backoff: Backoff) {
    let mut wait = backoff.initial;
    loop {
        tokio::time::sleep(wait).await;
        let Some(strong) = shared.upgrade() else {
            return;
        };
        strong.set(StoreState::Opening, None);
        match opener().await {
            Ok(target) => {
                tracing::info!(
                    backend = target.backend_name(),
                    "respcache-http: the cache is open; requests use it again"
                );
                let _ = strong.ready.set(target);
                strong.set(StoreState::Ready, None);
                return;
            }
            Err(e) => {
                tracing::debug!(backend = strong.name, error = %e, "respcache-http: opening the cache failed again");
                strong.set(StoreState::Failed, Some(e.to_string()));
            }
        }
        wait = (wait * 2).min(backoff.max);
    }
}

impl Target for OpeningTarget {
    fn backend_name(&self) -> &'static str {
        self.ready().map_or(self.shared.name, |t| t.backend_name())
    }

    fn max_payload(&self) -> Option<usize> {
        self.ready().and_then(|t| t.max_payload())
    }

    fn slot(&self, method: &Method, url: &Url, digest: &str, headers: &HeaderMap) -> Option<Slot> {
        self.ready()?.slot(method, url, digest, headers)
    }

    fn variant_key(&self, slot: &Slot, nonce: u64, vary: &[u8; 32]) -> Key {
        match self.ready() {
            Some(t) => t.variant_key(slot, nonce, vary),
            None => slot.key.clone(),
        }
    }

    fn payload_name(&self, slot: &Slot, body: &Bytes) -> Result<Option<String>, String> {
        match self.ready() {
            Some(t) => t.payload_name(slot, body),
            None => Err("the cache is not open".to_owned()),
        }
    }

    fn redirects(&self) -> &Arc<DynStore> {
        match self.ready() {
            Some(t) => t.redirects(),
            None => &self.unavailable,
        }
    }

    fn repository_expiry(&self, slot: &Slot) -> Option<Expiry> {
        self.ready().and_then(|t| t.repository_expiry(slot))
    }

    fn stores(&self) -> Vec<(Arc<str>, Arc<DynStore>)> {
        self.ready().map_or_else(Vec::new, |t| t.stores())
    }

    fn backend(&self) -> Option<Arc<dyn respcache_core::Backend>> {
        self.ready()?.backend()
    }

    fn store_state(&self) -> (StoreState, Option<String>) {
        if self.ready().is_some() {
            return (StoreState::Ready, None);
        }
        self.shared
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The store that stands in while the real ones are not open: every call is
/// an [`Unavailable`](CoreErrorKind::Unavailable) error.
#[derive(Debug)]
struct Unavailable;

fn unavailable() -> CoreError {
    CoreError::new(CoreErrorKind::Unavailable, "the cache is not open yet")
}

#[async_trait]
impl Store for Unavailable {
    async fn get(&self, _key: &Key) -> respcache_core::Result<Option<Entry>> {
        Err(unavailable())
    }

    async fn put(&self, _entry: Entry) -> respcache_core::Result<()> {
        Err(unavailable())
    }

    async fn delete(&self, _key: &Key) -> respcache_core::Result<bool> {
        Err(unavailable())
    }

    async fn count(&self, _select: Select, _now: Timestamp) -> respcache_core::Result<u64> {
        Err(unavailable())
    }

    async fn clear(&self, _select: Select, _now: Timestamp) -> respcache_core::Result<u64> {
        Err(unavailable())
    }

    fn scan(
        &self,
        _select: Select,
        _now: Timestamp,
    ) -> BoxStream<'static, respcache_core::Result<Entry>> {
        Box::pin(stream::once(async { Err(unavailable()) }))
    }

    async fn set_expiry(
        &self,
        _key: &Key,
        _expires_at: Option<Timestamp>,
    ) -> respcache_core::Result<bool> {
        Err(unavailable())
    }
}
