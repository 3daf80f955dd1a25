//! Single flight across processes: on a miss, the process that takes the
//! store's lease on the key computes; the others poll the store with
//! back-off until the value appears, the lease frees up (they take it and
//! compute), or their patience runs out (they compute anyway).
//!
//! In-process coalescing runs first (one task per key and process gets
//! here), so the store sees one lease attempt and one poller per process
//! and key. The leases are the backend's ([`Store::acquire_lease`]); a
//! backend without them (`Unsupported`) falls back to computing at once,
//! as without this option.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::backend::DynStore;
use crate::error::{ErrorKind, Result};
use crate::key::Key;
use crate::lease::LeaseToken;

/// How [`KeyValueCache::get_or_set_with`](crate::KeyValueCache::get_or_set_with)
/// coordinates with other processes sharing the backend (see
/// [`KeyValueCacheBuilder::cross_process`](crate::KeyValueCacheBuilder::cross_process)).
///
/// ```
/// use std::time::Duration;
/// use respcache_core::CrossProcess;
///
/// let options = CrossProcess::new()
///     .lease(Duration::from_secs(30)) // longer than the slowest computation
///     .max_wait(Duration::from_secs(45))
///     .poll(Duration::from_millis(20), Duration::from_millis(500));
/// assert_eq!(options.lease_duration(), Duration::from_secs(30));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrossProcess {
    lease: Duration,
    max_wait: Duration,
    poll_min: Duration,
    poll_max: Duration,
}

impl Default for CrossProcess {
    fn default() -> Self {
        CrossProcess {
            lease: Duration::from_secs(10),
            max_wait: Duration::from_secs(15),
            poll_min: Duration::from_millis(10),
            poll_max: Duration::from_millis(250),
        }
    }
}

impl CrossProcess {
    /// The defaults: a 10 s lease, waiting up to 15 s, polling from every
    /// 10 ms, doubling, up to every 250 ms.
    pub fn new() -> Self {
        CrossProcess::default()
    }

    /// How long the computing process holds the key. Make it longer than
    /// the slowest computation: when it runs out, a waiter computes too. A
    /// holder that dies blocks the others for at most this long.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long a waiter polls before it computes the value itself. Longer
    /// than the lease, so a dead holder is replaced through its expired
    /// lease (one computation) rather than by every waiter at once.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// The first delay between polls, and the longest (delays double).
    pub fn poll(mut self, first: Duration, longest: Duration) -> Self {
        self.poll_min = first;
        self.poll_max = longest.max(first);
        self
    }

    /// The lease duration.
    pub fn lease_duration(&self) -> Duration {
        self.lease
    }

    /// The longest wait before computing anyway.
    pub fn max_wait_duration(&self) -> Duration {
        self.max_wait
    }
}

/// What a process does about a missing value ([`take_or_wait`]).
#[derive(Debug)]
pub enum Step<V> {
    /// Another process stored it meanwhile.
    Found(V),
    /// Compute it: holding the lease (release it afterwards), or without one
    /// (the backend has no leases, or the wait ran out).
    Compute(Option<LeaseToken>),
}

/// Takes the lease on `key` or waits for the value another process
/// computes: polls `read` with back-off, tries the lease again after every
/// poll (so a dead holder's expired lease passes to a waiter), and gives up
/// waiting after `options.max_wait`. The one mechanism behind the key/value
/// cache's and the HTTP layer's cross-process single flight.
///
/// # Errors
///
/// The store's errors (a lease call or `read` that failed); a backend
/// without leases (`Unsupported`) is [`Step::Compute`]`(None)`, not an
/// error.
pub async fn take_or_wait<V, R, Fut>(
    store: &DynStore,
    key: &Key,
    options: &CrossProcess,
    read: R,
) -> Result<Step<V>>
where
    R: Fn() -> Fut,
    Fut: Future<Output = Result<Option<V>>>,
{
    let start = Instant::now();
    let mut delay = options.poll_min;
    loop {
        match store.acquire_lease(key, options.lease).await {
            Ok(Some(token)) => {
                // The holder before us may have stored it after our miss.
                return match read().await {
                    Ok(Some(value)) => {
                        release(store, key, &token).await;
                        Ok(Step::Found(value))
                    }
                    Ok(None) => Ok(Step::Compute(Some(token))),
                    Err(e) => {
                        release(store, key, &token).await;
                        Err(e)
                    }
                };
            }
            Ok(None) => {}
            Err(e) if e.kind() == ErrorKind::Unsupported => return Ok(Step::Compute(None)),
            Err(e) => return Err(e),
        }
        if start.elapsed() + delay > options.max_wait {
            tracing::debug!(
                waited = ?start.elapsed(),
                "respcache: gave up waiting for another process's computation"
            );
            return Ok(Step::Compute(None));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(options.poll_max);
        if let Some(value) = read().await? {
            return Ok(Step::Found(value));
        }
    }
}

/// Releases a lease; a failure only delays the others until it expires
/// (logged, not returned).
pub async fn release(store: &DynStore, key: &Key, token: &LeaseToken) {
    if let Err(e) = store.release_lease(key, token).await {
        tracing::warn!(error = %e, "respcache: could not release a lease; it will expire");
    }
}
