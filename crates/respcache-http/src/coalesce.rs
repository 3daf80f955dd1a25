//! Request coalescing: concurrent identical requests that need the origin
//! share one origin request. The map holds one slot per request *in
//! flight* and each slot is removed when its request ends (or is
//! cancelled), so memory is bounded by concurrency, not by history.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

/// A value every waiter can have a copy of.
pub(crate) trait Share: Sized {
    fn share(&self) -> Self;
}

/// Runs one computation per key at a time; callers arriving while it runs
/// wait and receive a copy of its result.
#[derive(Debug)]
pub(crate) struct Coalescer<T> {
    flights: Mutex<HashMap<String, watch::Receiver<Option<T>>>>,
}

impl<T> Default for Coalescer<T> {
    fn default() -> Self {
        Coalescer {
            flights: Mutex::new(HashMap::new()),
        }
    }
}

struct Remove<'a, T> {
    flights: &'a Mutex<HashMap<String, watch::Receiver<Option<T>>>>,
    key: &'a str,
}

impl<T> Drop for Remove<'_, T> {
    fn drop(&mut self) {
        self.flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(self.key);
    }
}

enum Role<T> {
    Leader(watch::Sender<Option<T>>),
    Follower(watch::Receiver<Option<T>>),
}

impl<T: Share + Send + Sync> Coalescer<T> {
    /// Runs `work` unless an identical call (same `key`) is in flight, in
    /// which case it waits for that call's result. Returns the result and
    /// whether this call did the work. If the leading call is cancelled, a
    /// waiting call takes over.
    pub(crate) async fn run<F, Fut>(&self, key: &str, work: F) -> (T, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let mut work = Some(work);
        loop {
            let role = {
                let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
                match flights.get(key) {
                    Some(rx) => Role::Follower(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        flights.insert(key.to_owned(), rx);
                        Role::Leader(tx)
                    }
                }
            };
            match role {
                Role::Leader(tx) => {
                    let _remove = Remove {
                        flights: &self.flights,
                        key,
                    };
                    let Some(work) = work.take() else {
                        // Unreachable: a call leads at most once.
                        continue;
                    };
                    let out = work().await;
                    let _ = tx.send(Some(out.share()));
                    return (out, true);
                }
                Role::Follower(mut rx) => {
                    let shared = match rx.wait_for(Option::is_some).await {
                        Ok(v) => v.as_ref().map(Share::share),
                        Err(_) => None, // the leader was cancelled: try again
                    };
                    if let Some(v) = shared {
                        return (v, false);
                    }
                }
            }
        }
    }

    /// How many computations are in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
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
    pub(crate) fn claim(self: &std::sync::Arc<Self>, key: &str) -> Option<Claim> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.insert(key.to_owned()) {
            Some(Claim {
                set: std::sync::Arc::clone(self),
                key: key.to_owned(),
            })
        } else {
            None
        }
    }

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
    set: std::sync::Arc<OnePerKey>,
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    impl Share for u32 {
        fn share(&self) -> Self {
            *self
        }
    }

    #[tokio::test]
    async fn concurrent_calls_share_one_computation_and_leave_nothing_behind() {
        let c = Arc::new(Coalescer::<u32>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (c, runs, gate) = (Arc::clone(&c), Arc::clone(&runs), Arc::clone(&gate));
            tasks.push(tokio::spawn(async move {
                c.run("k", || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    gate.notified().await;
                    7
                })
                .await
            }));
        }
        while c.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        gate.notify_one();
        let mut leaders = 0;
        for t in tasks {
            let (v, leader) = t.await.unwrap();
            assert_eq!(v, 7);
            leaders += usize::from(leader);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(leaders, 1);
        assert_eq!(c.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_leader_hands_over() {
        let c = Arc::new(Coalescer::<u32>::default());
        let c2 = Arc::clone(&c);
        let leader = tokio::spawn(async move { c2.run("k", std::future::pending::<u32>).await });
        while c.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        let c3 = Arc::clone(&c);
        let follower = tokio::spawn(async move { c3.run("k", || async { 3 }).await });
        tokio::task::yield_now().await;
        leader.abort();
        assert_eq!(follower.await.unwrap(), (3, true));
        assert_eq!(c.in_flight(), 0);
    }

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
