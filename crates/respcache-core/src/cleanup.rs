//! The background cleanup: a task that removes entries past their expiry
//! plus retention from stores whose backend has no native expiry (SQLite,
//! filesystem, memory), in bounded batches with a pause between them, so a
//! long-running service needs no cron job.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures::StreamExt;

use crate::backend::{DynStore, StoreSpec};
use crate::entry::Select;
use crate::key::Key;
use crate::time::{Clock, SystemClock};

/// How the cleanup task runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CleanupOptions {
    /// Time between two passes over the stores.
    pub every: Duration,
    /// The most entries one batch deletes.
    pub batch: usize,
    /// The pause after each batch, so other work gets the backend.
    pub pause: Duration,
    /// How long a stale entry is kept when its store has no retention:
    /// entries are removed at `expires_at + retention` (the store's
    /// [`StoreSpec::retention`]) or else `expires_at + grace`.
    pub grace: Duration,
    /// Where the current time comes from.
    pub clock: Arc<dyn Clock>,
}

impl CleanupOptions {
    /// A pass every `every`, 256 entries per batch, 10 ms between batches,
    /// no grace, the system clock.
    pub fn every(every: Duration) -> Self {
        CleanupOptions {
            every,
            batch: 256,
            pause: Duration::from_millis(10),
            grace: Duration::ZERO,
            clock: Arc::new(SystemClock),
        }
    }

    /// Sets the batch size (at least 1).
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Sets the pause between batches.
    pub fn with_pause(mut self, pause: Duration) -> Self {
        self.pause = pause;
        self
    }

    /// Sets the grace period for stores without retention.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// The stores a cleanup task visits: weak handles, so a dropped store is
/// forgotten.
pub(crate) type Watched = Arc<Mutex<Vec<(Weak<DynStore>, StoreSpec)>>>;

/// A running cleanup task; dropping it (or [`stop`](Self::stop)) ends it.
#[derive(Debug)]
pub(crate) struct CleanupTask {
    handle: tokio::task::JoinHandle<()>,
}

impl CleanupTask {
    /// Starts the task on the current tokio runtime.
    pub(crate) fn spawn(watched: Watched, options: CleanupOptions) -> Self {
        let handle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(options.every).await;
                let stores: Vec<(Arc<DynStore>, StoreSpec)> = {
                    let mut list = watched.lock().unwrap_or_else(PoisonError::into_inner);
                    list.retain(|(s, _)| s.strong_count() > 0);
                    list.iter()
                        .filter_map(|(s, spec)| s.upgrade().map(|s| (s, spec.clone())))
                        .collect()
                };
                for (store, spec) in stores {
                    let removed = sweep(store.as_ref(), &spec, &options).await;
                    if removed > 0 {
                        tracing::debug!(
                            cache = %spec.cache,
                            repository = %spec.repository,
                            removed,
                            "respcache cleanup removed expired entries"
                        );
                    }
                }
            }
        });
        CleanupTask { handle }
    }

    /// Ends the task.
    pub(crate) fn stop(&self) {
        self.handle.abort();
    }
}

impl Drop for CleanupTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// One pass over `store`: deletes, in batches of `options.batch` with a
/// pause after each, the entries past their purge time. Returns how many
/// went. A failing store is logged and left for the next pass.
pub async fn sweep(store: &DynStore, spec: &StoreSpec, options: &CleanupOptions) -> u64 {
    let now = options.clock.now();
    let retention = spec.retention.unwrap_or(options.grace);
    let mut stream = store.scan(Select::Expired, now);
    let mut batch: Vec<Key> = Vec::with_capacity(options.batch);
    let mut removed = 0;
    // Bounded: a pass visits each stored entry at most once.
    while let Some(item) = stream.next().await {
        match item {
            Ok(entry) => {
                let due = entry
                    .expires_at
                    .is_some_and(|e| e.saturating_add(retention) <= now);
                if due {
                    batch.push(entry.key);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, repository = %spec.repository, "respcache cleanup: scan failed");
                break;
            }
        }
        if batch.len() >= options.batch {
            removed += delete(store, spec, &mut batch).await;
            tokio::time::sleep(options.pause).await;
        }
    }
    removed + delete(store, spec, &mut batch).await
}

async fn delete(store: &DynStore, spec: &StoreSpec, batch: &mut Vec<Key>) -> u64 {
    if batch.is_empty() {
        return 0;
    }
    let keys = std::mem::take(batch);
    match store.delete_many(&keys).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, repository = %spec.repository, "respcache cleanup: delete failed");
            0
        }
    }
}
