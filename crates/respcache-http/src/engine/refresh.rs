//! Stage 8, background refresh: a stale response served within
//! `stale-while-revalidate` is fetched again in a task of its own, once per
//! key however many requests arrive, through the same single flight as
//! requests that wait for the origin.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use tracing::Instrument as _;

use super::Engine;
use super::exchange::Exchange;
use crate::directives::Directives;
use crate::line::RequestLine;
use crate::stats::Counters;

/// The background refreshes running, for [`Engine::wait_background`].
#[derive(Debug, Default)]
pub(crate) struct Background {
    active: AtomicUsize,
    idle: Notify,
}

/// One running background refresh; wakes the waiters when the last ends.
struct BackgroundGuard(Arc<Engine>);

impl Drop for BackgroundGuard {
    fn drop(&mut self) {
        if self.0.background.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.background.idle.notify_waiters();
        }
    }
}

impl Engine {
    /// Starts a refresh of the request's stored response, unless one runs
    /// for the same key.
    pub(super) fn spawn_refresh(self: &Arc<Self>, ex: &Exchange<'_>) {
        let key = ex.coalesce_key(self);
        let Some(claim) = self.refreshing.claim(&key) else {
            return;
        };
        Counters::bump(&self.counters.background_refreshes);
        self.background.active.fetch_add(1, Ordering::AcqRel);
        let guard = BackgroundGuard(Arc::clone(self));
        let this = Arc::clone(self);
        let mut req = ex.req.clone();
        req.per.refresh = false;
        let no_store = ex.req_cc.no_store;
        let (digest, slot, read) = (ex.digest.clone(), ex.slot.clone(), ex.read.clone());
        let span = tracing::info_span!("respcache_http.background_refresh", url = %self.options.rules.redact_url(&req.url));
        tokio::spawn(
            async move {
                // Dropped in reverse order: the claim before the guard, so a
                // caller of `wait_background` sees no claim left.
                let _guard = guard;
                let _claim = claim;
                let line = RequestLine::new(&this.options.rules, &req.method, &req.url);
                let ex = Exchange {
                    req,
                    line: &line,
                    digest,
                    slot,
                    // The refresh asks as the cache, not as the caller —
                    // but stores nothing the caller's `no-store` forbids
                    // (the request headers go to the origin as they were).
                    req_cc: Directives {
                        no_store,
                        ..Directives::default()
                    },
                    read,
                };
                let (answer, _) = this
                    .flights
                    .run(&key, || this.fetch(&ex), super::fetch::panicked)
                    .await;
                match answer {
                    Ok(r) => tracing::debug!(cache_status = %r.cache_status(), "respcache-http: background refresh done"),
                    Err(e) => tracing::debug!(error = %e, "respcache-http: background refresh failed"),
                }
            }
            .instrument(span),
        );
    }

    /// Waits until every background refresh has finished.
    pub(crate) async fn wait_background(&self) {
        loop {
            let notified = self.background.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.background.active.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A set of keys with at most one background job each.
#[derive(Debug, Default)]
pub(crate) struct OnePerKey {
    keys: Mutex<HashSet<String>>,
}

impl OnePerKey {
    /// Claims `key`; `None` if a job already holds it. The claim ends when
    /// the returned guard is dropped.
    pub(crate) fn claim(self: &Arc<Self>, key: &str) -> Option<Claim> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.insert(key.to_owned()) {
            Some(Claim {
                set: Arc::clone(self),
                key: key.to_owned(),
            })
        } else {
            None
        }
    }

    /// How many keys are claimed.
    pub(crate) fn len(&self) -> usize {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A claim on one key of a [`OnePerKey`].
#[derive(Debug)]
pub(crate) struct Claim {
    set: Arc<OnePerKey>,
    key: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.set
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_key() {
        let s = Arc::new(OnePerKey::default());
        let a = s.claim("k");
        assert!(a.is_some());
        assert!(s.claim("k").is_none());
        drop(a);
        assert!(s.claim("k").is_some());
        assert_eq!(s.len(), 0);
    }
}
