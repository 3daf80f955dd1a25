//! [`CircuitBreaker`]: stop calling a backend that is down, for a while.
//!
//! A frozen or unreachable backend makes every call wait out its timeout.
//! The breaker counts consecutive connection, timeout, contention and
//! throttling errors ([`ErrorKind::Connection`], [`ErrorKind::Timeout`],
//! [`ErrorKind::Contention`] — a lock that made the call wait its whole
//! busy timeout —, [`ErrorKind::Throttled`]); after
//! [`threshold`](BreakerConfig::threshold) of them it **opens**: calls return
//! at once with an [`ErrorKind::Unavailable`] error, without touching the
//! backend, for [`cool_down`](BreakerConfig::cool_down). Then it is
//! **half-open**: one call goes through as a probe while the others still
//! get `Unavailable`; a probe that succeeds (or fails for another reason —
//! the backend answered) closes it, a probe that fails the same way opens it
//! again. It is backend-generic: it only sees the `Result`s of calls.
//!
//! ```
//! # async fn demo() {
//! use std::time::Duration;
//! use respcache_core::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
//! use respcache_core::{Error, ErrorKind};
//!
//! let breaker = CircuitBreaker::new(BreakerConfig::new(2, Duration::from_secs(5)));
//! for _ in 0..2 {
//!     let down = breaker
//!         .call(async { Err::<(), _>(Error::new(ErrorKind::Timeout, "no answer")) })
//!         .await;
//!     assert_eq!(down.map_err(|e| e.kind()), Err(ErrorKind::Timeout));
//! }
//! assert_eq!(breaker.state(), BreakerState::Open);
//! // Skipped without being polled:
//! let skipped = breaker.call(async { Ok(1) }).await;
//! assert_eq!(skipped.map_err(|e| e.kind()), Err(ErrorKind::Unavailable));
//! # }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo());
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

/// How many consecutive connection or timeout errors open a breaker by
/// default.
pub const DEFAULT_THRESHOLD: u32 = 5;

/// How long an open breaker skips the backend by default before it lets a
/// probe call through.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(5);

/// When a [`CircuitBreaker`] opens and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive connection or timeout errors that open the breaker
    /// (default [`DEFAULT_THRESHOLD`]); `0` means never open.
    pub threshold: u32,
    /// How long it stays open before a probe (default [`DEFAULT_COOL_DOWN`]).
    pub cool_down: Duration,
}

impl BreakerConfig {
    /// A configuration with the given threshold and cool-down.
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        BreakerConfig {
            threshold,
            cool_down,
        }
    }

    /// A breaker that never opens.
    pub fn disabled() -> Self {
        BreakerConfig::new(0, DEFAULT_COOL_DOWN)
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig::new(DEFAULT_THRESHOLD, DEFAULT_COOL_DOWN)
    }
}

/// Where a [`CircuitBreaker`] is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go to the backend (the normal state).
    #[default]
    Closed,
    /// Calls are skipped until the cool-down ends.
    Open,
    /// The cool-down ended: one probe call goes through.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// The state as a gauge value: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// What changed in a call's bookkeeping, for callers that report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transition {
    /// The breaker opened (from closed, or again after a failed probe).
    Opened,
    /// A probe succeeded: the breaker closed.
    Closed,
}

/// A circuit breaker for one backend; see the [module](self) docs.
///
/// A closed breaker costs a call two relaxed atomic loads; its lock is
/// only taken on failures and while it is open.
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: AtomicU8,
    failures: AtomicU32,
    opens: AtomicU64,
    slow: Mutex<Slow>,
}

#[derive(Debug, Default)]
struct Slow {
    opened_at: Option<Instant>,
    probing: bool,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("config", &self.config)
            .field("state", &self.state())
            .field("opens", &self.opens())
            .finish()
    }
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker::new(BreakerConfig::default())
    }
}

/// Whether an error says the backend is down, or cannot take calls for a
/// while (and counts towards opening).
pub fn is_outage(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::Contention | ErrorKind::Throttled
    )
}

/// Permission to make one call.
#[derive(Debug, PartialEq, Eq)]
enum Admission {
    Normal,
    Probe,
}

/// Frees the probe slot when a probe call is dropped before it ends.
struct ProbeGuard<'a> {
    breaker: &'a CircuitBreaker,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.lock().probing = false;
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker {
            config,
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            opens: AtomicU64::new(0),
            slow: Mutex::new(Slow::default()),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// The current state. An open breaker whose cool-down has ended reads
    /// as half-open (the next call is the probe).
    pub fn state(&self) -> BreakerState {
        match self.state.load(Ordering::Acquire) {
            CLOSED => BreakerState::Closed,
            HALF_OPEN => BreakerState::HalfOpen,
            _ => {
                let cooled = self
                    .lock()
                    .opened_at
                    .is_some_and(|at| at.elapsed() >= self.config.cool_down);
                if cooled {
                    BreakerState::HalfOpen
                } else {
                    BreakerState::Open
                }
            }
        }
    }

    /// How many times it has opened (a failed probe opens it again).
    pub fn opens(&self) -> u64 {
        self.opens.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slow> {
        // The lock guards plain data that every step leaves consistent, so
        // a poisoned lock is still usable.
        self.slow
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn unavailable(&self) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "the backend is skipped for up to {:?} after {} connection or timeout errors in a row",
                self.config.cool_down, self.config.threshold
            ),
        )
    }

    fn admit(&self) -> Result<Admission> {
        if self.state.load(Ordering::Acquire) == CLOSED {
            return Ok(Admission::Normal);
        }
        let mut slow = self.lock();
        match self.state.load(Ordering::Acquire) {
            CLOSED => Ok(Admission::Normal),
            OPEN => {
                let cooled = slow
                    .opened_at
                    .is_none_or(|at| at.elapsed() >= self.config.cool_down);
                if cooled && !slow.probing {
                    slow.probing = true;
                    self.state.store(HALF_OPEN, Ordering::Release);
                    Ok(Admission::Probe)
                } else {
                    Err(self.unavailable())
                }
            }
            _ if !slow.probing => {
                slow.probing = true;
                Ok(Admission::Probe)
            }
            _ => Err(self.unavailable()),
        }
    }

    fn open(&self, slow: &mut Slow) {
        slow.opened_at = Some(Instant::now());
        self.state.store(OPEN, Ordering::Release);
        self.opens.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the end of an admitted call; returns what changed.
    fn record(&self, admission: &Admission, outage: bool) -> Option<Transition> {
        match (admission, outage) {
            (Admission::Normal, false) => {
                if self.failures.load(Ordering::Relaxed) != 0 {
                    self.failures.store(0, Ordering::Relaxed);
                }
                None
            }
            (Admission::Normal, true) => {
                let mut slow = self.lock();
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                let closed = self.state.load(Ordering::Acquire) == CLOSED;
                if closed && self.config.threshold > 0 && failures >= self.config.threshold {
                    self.open(&mut slow);
                    Some(Transition::Opened)
                } else {
                    None
                }
            }
            (Admission::Probe, false) => {
                let mut slow = self.lock();
                slow.probing = false;
                slow.opened_at = None;
                self.failures.store(0, Ordering::Relaxed);
                self.state.store(CLOSED, Ordering::Release);
                Some(Transition::Closed)
            }
            (Admission::Probe, true) => {
                let mut slow = self.lock();
                slow.probing = false;
                self.open(&mut slow);
                Some(Transition::Opened)
            }
        }
    }

    /// Runs `call` unless the breaker is open, and records its outcome.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`] at once, without polling `call`, while the
    /// breaker is open (or half-open with its probe in flight); otherwise
    /// `call`'s own error.
    pub async fn call<T, F>(&self, call: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        self.call_reporting(call).await.0
    }

    /// As [`call`](Self::call), and says whether the call opened or closed
    /// the breaker (for logs and metrics).
    pub async fn call_reporting<T, F>(&self, call: F) -> (Result<T>, Option<Transition>)
    where
        F: Future<Output = Result<T>>,
    {
        let admission = match self.admit() {
            Ok(a) => a,
            Err(e) => return (Err(e), None),
        };
        let mut guard = ProbeGuard {
            breaker: self,
            armed: admission == Admission::Probe,
        };
        let out = call.await;
        guard.armed = false;
        let outage = out.as_ref().is_err_and(|e| is_outage(e.kind()));
        let transition = self.record(&admission, outage);
        (out, transition)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn down() -> Result<()> {
        Err(Error::new(ErrorKind::Connection, "refused"))
    }

    #[tokio::test]
    async fn opens_after_the_threshold_skips_then_probes_once_and_closes() {
        let b = CircuitBreaker::new(BreakerConfig::new(3, Duration::from_millis(200)));
        for _ in 0..2 {
            assert!(b.call(async { down() }).await.is_err());
        }
        assert_eq!(b.state(), BreakerState::Closed);
        // Another kind of error means the backend answered: the count
        // starts again.
        let other = b
            .call(async { Err::<(), _>(Error::new(ErrorKind::Codec, "x")) })
            .await;
        assert_eq!(other.unwrap_err().kind(), ErrorKind::Codec);
        for _ in 0..2 {
            assert!(b.call(async { down() }).await.is_err());
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.call(async { down() }).await.is_err());
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.opens(), 1);
        let mut polled = false;
        let skipped = b
            .call(async {
                polled = true;
                Ok(())
            })
            .await;
        assert_eq!(skipped.unwrap_err().kind(), ErrorKind::Unavailable);
        assert!(!polled, "an open breaker must not poll the call");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // A failed probe opens it again.
        assert!(b.call(async { down() }).await.is_err());
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.opens(), 2);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (out, t) = b.call_reporting(async { Ok(7) }).await;
        assert_eq!(out.unwrap(), 7);
        assert_eq!(t, Some(Transition::Closed));
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_success_resets_the_count() {
        let b = CircuitBreaker::new(BreakerConfig::new(2, Duration::from_secs(60)));
        assert!(b.call(async { down() }).await.is_err());
        b.call(async { Ok(()) }).await.unwrap();
        assert!(b.call(async { down() }).await.is_err());
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.call(async { down() }).await.is_err());
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test]
    async fn only_one_probe_at_a_time_and_a_dropped_probe_frees_the_slot() {
        let b = CircuitBreaker::new(BreakerConfig::new(1, Duration::ZERO));
        assert!(b.call(async { down() }).await.is_err());
        // The cool-down is over at once: the next call is the probe.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let probe = b.call(async {
            let _ = rx.await;
            Ok(())
        });
        let mut probe = Box::pin(probe);
        assert!(futures::poll!(probe.as_mut()).is_pending());
        let other = b.call(async { Ok(()) }).await;
        assert_eq!(other.unwrap_err().kind(), ErrorKind::Unavailable);
        drop(probe);
        drop(tx);
        // The dropped probe left the slot free: this call probes and closes.
        b.call(async { Ok(()) }).await.unwrap();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn threshold_zero_never_opens() {
        let b = CircuitBreaker::new(BreakerConfig::disabled());
        for _ in 0..20 {
            assert!(b.call(async { down() }).await.is_err());
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
