//! Cache calls: each goes through the circuit breaker (and the
//! `cache_timeout` deadline), is timed, and its failure is logged and
//! counted, never returned — a failing cache never fails a request.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use respcache_core::breaker::Transition;
use respcache_core::{BreakerState, DynStore, Entry, ErrorKind as CoreErrorKind, Key, Timestamp};

use super::Engine;
use crate::metrics as m;

/// A cache call failed (an error, not a miss), or was skipped: the request
/// makes no further cache calls.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CacheFailed;

impl Engine {
    /// Logs and counts a failed cache call (a skipped one, the breaker
    /// being open, at debug level).
    pub(super) fn cache_error(
        &self,
        op: &'static str,
        repository: &str,
        e: &respcache_core::Error,
    ) {
        let backend = self.target.backend_name();
        if e.kind() == CoreErrorKind::Unavailable {
            self.counters.cache_skipped.fetch_add(1, Ordering::Relaxed);
            m::cache_skipped(backend);
            tracing::debug!(
                backend,
                repository,
                operation = op,
                error = %e,
                "respcache-http: cache skipped; the request goes on without it"
            );
            return;
        }
        self.counters.cache_errors.fetch_add(1, Ordering::Relaxed);
        m::cache_error(backend, op);
        tracing::warn!(
            backend,
            repository,
            operation = op,
            error = %e,
            "respcache-http: cache operation failed; the request goes on without the cache"
        );
    }

    /// Makes one cache call through the circuit breaker and times it.
    pub(super) async fn guarded<T>(
        &self,
        call: impl std::future::Future<Output = respcache_core::Result<T>>,
        timer: &metrics::Histogram,
    ) -> respcache_core::Result<T> {
        let started = Instant::now();
        // The deadline's timer is boxed: without one, a hit's future stays
        // as small as it was.
        let (out, transition) = match self.options.cache_timeout {
            None => self.breaker.call_reporting(call).await,
            Some(limit) => Box::pin(self.breaker.call_reporting(within(limit, call))).await,
        };
        if !matches!(&out, Err(e) if e.kind() == CoreErrorKind::Unavailable) {
            timer.record(started.elapsed());
        }
        if let Some(t) = transition {
            self.breaker_moved(t);
        }
        out
    }

    fn breaker_moved(&self, t: Transition) {
        let backend = self.target.backend_name();
        if t == Transition::Closed {
            tracing::info!(
                backend,
                "respcache-http: the cache answers again; circuit breaker closed"
            );
            m::breaker(backend, BreakerState::Closed);
        } else {
            tracing::warn!(
                backend,
                cool_down = ?self.breaker.config().cool_down,
                "respcache-http: circuit breaker opened; requests skip the cache until a probe succeeds"
            );
            m::breaker(backend, BreakerState::Open);
        }
    }

    pub(super) async fn cache_get(
        &self,
        store: &Arc<DynStore>,
        key: &Key,
        repository: &str,
    ) -> Result<Option<Entry>, CacheFailed> {
        match self
            .guarded(store.get(key), &self.counters.metrics.store_get)
            .await
        {
            Ok(e) => Ok(e),
            Err(e) => {
                self.cache_error("get", repository, &e);
                Err(CacheFailed)
            }
        }
    }

    /// Writes `entry`; whether it was written.
    pub(super) async fn cache_put(
        &self,
        store: &Arc<DynStore>,
        entry: Entry,
        repository: &str,
    ) -> bool {
        let put = async { store.put(entry).await.map(|()| true) };
        let timer = &self.counters.metrics.store_put;
        self.changed("put", repository, put, timer).await
    }

    /// Updates an entry's meta and expiry in place; whether it was there.
    /// An entry gone since it was read (deleted, purged, evicted) is not
    /// written back, which would bring back what an invalidation removed.
    pub(super) async fn cache_set_meta(
        &self,
        store: &Arc<DynStore>,
        key: &Key,
        meta: Bytes,
        expires_at: Option<Timestamp>,
        repository: &str,
    ) -> bool {
        let set_meta = store.set_meta(key, Some(meta), expires_at);
        let timer = &self.counters.metrics.store_put;
        self.changed("put", repository, set_meta, timer).await
    }

    /// Sets the expiry of the entry under `key` (payload and meta
    /// untouched); whether it was there.
    pub(super) async fn cache_set_expiry(
        &self,
        store: &Arc<DynStore>,
        key: &Key,
        expires_at: Timestamp,
        repository: &str,
    ) -> bool {
        let set_expiry = store.set_expiry(key, Some(expires_at));
        let timer = &self.counters.metrics.store_put;
        self.changed("put", repository, set_expiry, timer).await
    }

    /// Deletes `key`; whether an entry was there.
    pub(super) async fn cache_delete(
        &self,
        store: &Arc<DynStore>,
        key: &Key,
        repository: &str,
    ) -> bool {
        let timer = &self.counters.metrics.store_delete;
        self.changed("delete", repository, store.delete(key), timer)
            .await
    }

    /// A call that changes the cache, through [`guarded`](Self::guarded):
    /// what it answered (whether it wrote, or found its entry), or `false`
    /// with its failure logged and counted as operation `op`.
    async fn changed(
        &self,
        op: &'static str,
        repository: &str,
        call: impl std::future::Future<Output = respcache_core::Result<bool>>,
        timer: &metrics::Histogram,
    ) -> bool {
        match self.guarded(call, timer).await {
            Ok(done) => done,
            Err(e) => {
                self.cache_error(op, repository, &e);
                false
            }
        }
    }
}

/// `call`, or a [`Timeout`](CoreErrorKind::Timeout) error after `limit`
/// (the client's `cache_timeout`).
async fn within<T>(
    limit: Duration,
    call: impl std::future::Future<Output = respcache_core::Result<T>>,
) -> respcache_core::Result<T> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(respcache_core::Error::new(
            CoreErrorKind::Timeout,
            format!("no answer within {limit:?} (cache_timeout)"),
        ))
    })
}
