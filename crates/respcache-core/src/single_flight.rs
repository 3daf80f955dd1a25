//! [`SingleFlight`]: one computation per key at a time, in one process;
//! callers that arrive while it runs wait for it and get a copy of its
//! outcome.
//!
//! The rules, the same for every user (the key/value cache's
//! `get_or_set_with`, and the HTTP layer's coalescing of identical misses):
//!
//! - **One leader per key.** The first caller runs its work; later callers
//!   for the same key wait. Callers for other keys never wait for it.
//! - **Everyone gets the outcome**: the leader the value itself, each waiter
//!   a clone (make outcomes cheap to clone: `Arc`s, [`Bytes`](bytes::Bytes),
//!   respcache's [`Error`](crate::Error), whose cause is shared).
//! - **A panic is an outcome.** The leader's panic is caught and turned into
//!   a value by the caller's `on_panic` (typically an error); every waiter
//!   receives it and nobody runs the panicking work again in this flight.
//! - **Cancellation hands over.** When the leader's future is dropped before
//!   it finishes, waiting callers wake up and one of them leads with its own
//!   work.
//! - **Nothing stays behind.** A key's entry lives exactly as long as its
//!   leader, so the map is empty whenever nothing runs.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::FutureExt;
use tokio::sync::watch;

/// One computation in flight: waiters subscribe to it.
type Slot<T> = watch::Sender<Option<T>>;

/// Runs one computation per key at a time (see the [module](self) docs).
///
/// ```
/// # async fn demo() {
/// use respcache_core::single_flight::SingleFlight;
///
/// let flights = SingleFlight::<Result<u32, String>>::new();
/// let (outcome, led) = flights
///     .run("answer", || async { Ok(42) }, |_panic| Err("it panicked".to_owned()))
///     .await;
/// assert_eq!(outcome, Ok(42));
/// assert!(led);
/// assert_eq!(flights.in_flight(), 0);
/// # }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo());
/// ```
pub struct SingleFlight<T> {
    /// Keys hashed with foldhash (seeded per process), not SipHash: a key
    /// is hashed twice per flight and an HTTP one is ~140 bytes.
    map: Mutex<foldhash::HashMap<String, Arc<Slot<T>>>>,
}

impl<T> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight {
            map: Mutex::new(foldhash::HashMap::default()),
        }
    }
}

impl<T> fmt::Debug for SingleFlight<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleFlight")
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// A caller's part in a computation.
enum Turn<'a, T> {
    /// Someone computes: wait for their outcome.
    Wait(watch::Receiver<Option<T>>),
    /// Nobody does: compute, and publish the outcome.
    Lead(Lead<'a, T>),
}

/// The leader's guard: on drop (finished, or cancelled) removes the key from
/// the map, then closes the channel so waiters left without an outcome take
/// over.
struct Lead<'a, T> {
    flights: &'a SingleFlight<T>,
    key: &'a str,
    slot: Arc<Slot<T>>,
    /// Out of the map already ([`Lead::leave`]).
    left: bool,
}

impl<T> SingleFlight<T> {
    /// No computation in flight.
    pub fn new() -> Self {
        SingleFlight::default()
    }

    fn lock(&self) -> MutexGuard<'_, foldhash::HashMap<String, Arc<Slot<T>>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many keys have a computation in flight.
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    /// How many callers wait for the computation in flight for `key` (not
    /// counting the leader).
    pub fn waiters(&self, key: &str) -> usize {
        self.lock().get(key).map_or(0, |slot| slot.receiver_count())
    }

    fn join<'a>(&'a self, key: &'a str) -> Turn<'a, T> {
        let mut map = self.lock();
        if let Some(slot) = map.get(key) {
            return Turn::Wait(slot.subscribe());
        }
        let slot = Arc::new(watch::Sender::new(None));
        map.insert(key.to_owned(), Arc::clone(&slot));
        Turn::Lead(Lead {
            flights: self,
            key,
            slot,
            left: false,
        })
    }
}

impl<T: Clone> SingleFlight<T> {
    /// Runs `work` for `key` unless a run is in flight, in which case waits
    /// for its outcome; takes over when that run is dropped unfinished.
    /// A panic in `work` becomes the outcome `on_panic(payload)`. Returns
    /// the outcome and whether this call ran its `work`.
    pub async fn run<W, Fut, P>(&self, key: &str, work: W, on_panic: P) -> (T, bool)
    where
        W: FnOnce() -> Fut,
        Fut: Future<Output = T>,
        P: FnOnce(Box<dyn Any + Send>) -> T,
    {
        loop {
            match self.join(key) {
                Turn::Lead(mut lead) => {
                    let outcome = AssertUnwindSafe(async move { work().await })
                        .catch_unwind()
                        .await
                        .unwrap_or_else(on_panic);
                    // Out of the map first: no caller subscribes after that,
                    // so the outcome is cloned only for callers already
                    // waiting (most flights have none).
                    if lead.leave() {
                        lead.slot.send_replace(Some(outcome.clone()));
                    }
                    return (outcome, true);
                }
                Turn::Wait(mut rx) => {
                    let outcome = match rx.wait_for(Option::is_some).await {
                        Ok(seen) => seen.clone(),
                        Err(_) => None,
                    };
                    if let Some(outcome) = outcome {
                        return (outcome, false);
                    }
                    // The leader was cancelled: try again, maybe as leader.
                }
            }
        }
    }
}

impl<T> Lead<'_, T> {
    /// Takes this flight out of the map; whether any caller waits for it.
    fn leave(&mut self) -> bool {
        let removed = {
            let mut map = self.flights.lock();
            match map.get(self.key) {
                Some(slot) if Arc::ptr_eq(slot, &self.slot) => map.remove(self.key),
                _ => None,
            }
        };
        self.left = true;
        // Outside the lock: the map's handle goes first; ours, the last,
        // closes the channel when the lead drops.
        drop(removed);
        self.slot.receiver_count() > 0
    }
}

impl<T> Drop for Lead<'_, T> {
    fn drop(&mut self) {
        if !self.left {
            self.leave();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::sync::Semaphore;

    async fn until(cond: impl Fn() -> bool) {
        let start = std::time::Instant::now();
        while !cond() {
            assert!(start.elapsed() < Duration::from_secs(10), "timed out");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_run_for_many_callers_and_nothing_left_behind() {
        let flights = Arc::new(SingleFlight::<u32>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (flights, runs, gate) = (flights.clone(), runs.clone(), gate.clone());
                tokio::spawn(async move {
                    flights
                        .run(
                            "k",
                            || async move {
                                runs.fetch_add(1, Ordering::SeqCst);
                                let _ = gate.acquire().await;
                                7
                            },
                            |_| 0,
                        )
                        .await
                })
            })
            .collect();
        until(|| flights.waiters("k") == 19).await;
        gate.add_permits(1);
        let mut leaders = 0;
        for t in tasks {
            let (v, led) = t.await.unwrap();
            assert_eq!(v, 7);
            leaders += usize::from(led);
        }
        assert_eq!((runs.load(Ordering::SeqCst), leaders), (1, 1));
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_is_every_callers_outcome_and_runs_once() {
        let flights = Arc::new(SingleFlight::<Result<u32, String>>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let (flights, runs, gate) = (flights.clone(), runs.clone(), gate.clone());
                tokio::spawn(async move {
                    flights
                        .run(
                            "k",
                            || async move {
                                runs.fetch_add(1, Ordering::SeqCst);
                                let _ = gate.acquire().await;
                                if runs.load(Ordering::SeqCst) > 0 {
                                    panic!("boom");
                                }
                                Ok(1)
                            },
                            |payload| {
                                Err(payload.downcast_ref::<&str>().map_or("?", |s| s).to_owned())
                            },
                        )
                        .await
                })
            })
            .collect();
        until(|| flights.waiters("k") == 4).await;
        gate.add_permits(1);
        for t in tasks {
            assert_eq!(t.await.unwrap().0, Err("boom".to_owned()));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_flight(), 0);
    }

    /// Counts its clones.
    #[derive(Debug)]
    struct Counted(Arc<AtomicUsize>);

    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.0.fetch_add(1, Ordering::SeqCst);
            Counted(self.0.clone())
        }
    }

    #[tokio::test]
    async fn a_flight_nobody_waits_for_clones_nothing() {
        let flights = SingleFlight::<Counted>::new();
        let clones = Arc::new(AtomicUsize::new(0));
        let (out, led) = flights
            .run(
                "k",
                || async { Counted(clones.clone()) },
                |_| unreachable!(),
            )
            .await;
        assert!(led);
        assert_eq!(clones.load(Ordering::SeqCst), 0, "the outcome was cloned");
        assert_eq!(flights.in_flight(), 0);
        drop(out);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_leader_hands_over_to_a_waiter() {
        let flights = Arc::new(SingleFlight::<u32>::new());
        let leader = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run(
                        "k",
                        || async {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            1
                        },
                        |_| 0,
                    )
                    .await
            })
        };
        until(|| flights.in_flight() == 1).await;
        let waiter = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.run("k", || async { 2 }, |_| 0).await })
        };
        until(|| flights.waiters("k") == 1).await;
        leader.abort();
        assert_eq!(waiter.await.unwrap(), (2, true));
        assert_eq!(flights.in_flight(), 0);
    }
}
