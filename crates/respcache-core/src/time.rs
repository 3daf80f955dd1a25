//! Time as respcache stores it: milliseconds since the Unix epoch, and the
//! [`Clock`] that stamps entries (a [`ManualClock`] lets tests move time).

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time with millisecond precision: milliseconds since the Unix
/// epoch. Every backend stores exactly this number, so timestamps round-trip
/// without loss.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The timestamp `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Timestamp(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The system's current time.
    pub fn now() -> Self {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// Converts a `SystemTime`, truncated to the millisecond (saturating).
    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(-i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX)),
        }
    }

    /// This timestamp as a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        let d = Duration::from_millis(self.0.unsigned_abs());
        if self.0 >= 0 {
            UNIX_EPOCH + d
        } else {
            UNIX_EPOCH - d
        }
    }

    /// This timestamp plus `duration`, saturating at the far future.
    pub fn saturating_add(self, duration: Duration) -> Self {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// This timestamp minus `duration`, saturating at the far past.
    pub fn saturating_sub(self, duration: Duration) -> Self {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(ms))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}ms)", self.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// Where respcache reads the current time: entries are stamped with
/// `cached_at = now` and freshness is judged against it.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock for tests: it starts at the real current time and moves only when
/// told to, and only forward.
///
/// ```
/// use respcache_core::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now().as_millis() - t0.as_millis(), 60_000);
/// ```
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicI64,
}

impl ManualClock {
    /// A clock set to the real current time.
    pub fn new() -> Self {
        ManualClock {
            millis: AtomicI64::new(Timestamp::now().as_millis()),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let _ = self
            .millis
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| {
                Some(m.saturating_add(ms))
            });
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

/// How long an entry stays fresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Expiry {
    /// Never stale.
    #[default]
    Never,
    /// Stale this long after it is cached.
    After(Duration),
}

impl Expiry {
    /// The expiry time of an entry cached at `cached_at`.
    pub fn expires_at(self, cached_at: Timestamp) -> Option<Timestamp> {
        match self {
            Expiry::Never => None,
            Expiry::After(d) => Some(cached_at.saturating_add(d)),
        }
    }
}

impl From<Duration> for Expiry {
    fn from(d: Duration) -> Self {
        Expiry::After(d)
    }
}

impl From<Option<Duration>> for Expiry {
    fn from(d: Option<Duration>) -> Self {
        d.map_or(Expiry::Never, Expiry::After)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_time_round_trips_at_millisecond_precision() {
        let t = Timestamp::from_millis(1_700_000_000_123);
        assert_eq!(Timestamp::from_system_time(t.to_system_time()), t);
        let before = Timestamp::from_millis(-5);
        assert_eq!(Timestamp::from_system_time(before.to_system_time()), before);
    }

    #[test]
    fn manual_clock_moves_only_forward() {
        let c = ManualClock::new();
        let t0 = c.now();
        assert!((t0.as_millis() - Timestamp::now().as_millis()).abs() < 5_000);
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.now().as_millis(), t0.as_millis() + 1500);
    }

    #[test]
    fn expiry_computes_expires_at() {
        let t = Timestamp::from_millis(1000);
        assert_eq!(Expiry::Never.expires_at(t), None);
        assert_eq!(
            Expiry::After(Duration::from_millis(250)).expires_at(t),
            Some(Timestamp::from_millis(1250))
        );
    }
}
