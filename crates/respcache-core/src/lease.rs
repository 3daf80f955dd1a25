//! Leases: a short, self-expiring claim on one key of a store, so that
//! several processes sharing a backend can agree on who does a piece of work
//! (compute a missing value, fetch a missing response) while the others wait.
//!
//! The primitive is two optional [`Store`](crate::Store) calls,
//! [`acquire_lease`](crate::Store::acquire_lease) and
//! [`release_lease`](crate::Store::release_lease). Their defaults answer
//! [`ErrorKind::Unsupported`], so a backend that cannot offer leases keeps
//! working and callers fall back to in-process coordination. The built-in
//! backends map them onto an atomic native operation each (see
//! `ARCHITECTURE.md`, "Leases").
//!
//! This module holds what every backend shares: the [`LeaseToken`] a
//! holder proves itself with, and [`LeaseTable`], the in-process form the
//! memory backend (and any custom backend without a native one) uses.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, ErrorKind, Operation};

/// The proof of holding a lease: 32 random hexadecimal digits, unique per
/// [`acquire_lease`](crate::Store::acquire_lease) call across processes and
/// machines. Only a release that shows the same token frees the lease.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LeaseToken(String);

impl LeaseToken {
    /// A new token nobody else holds: a BLAKE3 hash of the process id, the
    /// time, a process-wide counter and a per-process random seed.
    pub fn generate() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let seed = RandomState::new().hash_one(COUNTER.load(Ordering::Relaxed));
        let mut hasher = blake3::Hasher::new();
        hasher.update(&std::process::id().to_le_bytes());
        hasher.update(
            &SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
                .to_le_bytes(),
        );
        hasher.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        hasher.update(&seed.to_le_bytes());
        let hex = hasher.finalize().to_hex();
        LeaseToken(hex[..32].to_owned())
    }

    /// A token read back from a backend.
    pub fn from_string(token: impl Into<String>) -> Self {
        LeaseToken(token.into())
    }

    /// The token as text (what backends store).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseToken({})", self.0)
    }
}

impl fmt::Display for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The error the [`Store`](crate::Store) lease defaults return.
pub fn unsupported(operation: Operation) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        "this backend offers no leases (only in-process coordination applies)",
    )
    .with_operation(operation)
}

/// A lease's time to live in whole milliseconds, at least 1 (what backends
/// with millisecond expiry store).
pub fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// How many leases a [`LeaseTable`] holds before an acquire sweeps the
/// expired ones out.
const SWEEP_AT: usize = 1024;

/// Leases held in this process: the memory backend's form, usable by any
/// backend whose stores live in one process. Expiry uses the monotonic
/// clock.
#[derive(Debug, Default)]
pub struct LeaseTable {
    held: Mutex<HashMap<String, (LeaseToken, Instant)>>,
}

impl LeaseTable {
    /// An empty table.
    pub fn new() -> Self {
        LeaseTable::default()
    }

    /// Takes the lease on `key` for `ttl` unless an unexpired one is held.
    pub fn acquire(&self, key: &str, ttl: Duration) -> Option<LeaseToken> {
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.len() >= SWEEP_AT {
            held.retain(|_, (_, until)| *until > now);
        }
        if held.get(key).is_some_and(|(_, until)| *until > now) {
            return None;
        }
        let token = LeaseToken::generate();
        let until = now + Duration::from_millis(ttl_millis(ttl));
        held.insert(key.to_owned(), (token.clone(), until));
        Some(token)
    }

    /// Frees the lease on `key` if `token` holds it (and it has not
    /// expired); `true` when it did.
    pub fn release(&self, key: &str, token: &LeaseToken) -> bool {
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        match held.get(key) {
            Some((holder, until)) if holder == token && *until > now => {
                held.remove(key);
                true
            }
            _ => false,
        }
    }

    /// How many leases are recorded (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no lease is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_32_hex_digits() {
        let a = LeaseToken::generate();
        let b = LeaseToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn table_is_exclusive_until_release_or_expiry() {
        let table = LeaseTable::new();
        let token = table.acquire("k", Duration::from_secs(10)).unwrap();
        assert!(table.acquire("k", Duration::from_secs(10)).is_none());
        assert!(!table.release("k", &LeaseToken::generate()));
        assert!(table.release("k", &token));
        assert!(!table.release("k", &token), "released twice");
        let short = table.acquire("k", Duration::from_millis(1)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let taken = table.acquire("k", Duration::from_secs(10)).unwrap();
        assert!(
            !table.release("k", &short),
            "an expired holder frees nothing"
        );
        assert!(table.release("k", &taken));
    }
}
