//! [`Readers`]: the small pool of read-only connections that answer point
//! reads inline, on the calling task, without a thread hop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, TryLockError};

use rusqlite::Connection;

use crate::error::is_busy;
use crate::thread_slot;

/// One reader connection and how many reads it answered. Aligned to a cache
/// line so two busy readers never share one.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot {
    conn: Mutex<Option<Connection>>,
    answered: AtomicU64,
}

/// Read-only connections, each behind its own mutex, taken with `try_lock`
/// starting from the calling thread's own slot: a caller never waits for
/// another caller's read.
#[derive(Debug, Default)]
pub(crate) struct Readers {
    slots: Box<[Slot]>,
    handed_over: AtomicU64,
}

impl Readers {
    /// A pool of `connections` (empty: every read goes to the writer).
    pub(crate) fn new(connections: Vec<Connection>) -> Self {
        Readers {
            slots: connections
                .into_iter()
                .map(|c| Slot {
                    conn: Mutex::new(Some(c)),
                    answered: AtomicU64::new(0),
                })
                .collect(),
            handed_over: AtomicU64::new(0),
        }
    }

    /// Runs `read` on a free reader. `None` means "ask the writer thread
    /// instead": every reader was in use, the pool is closed or empty, or
    /// SQLite answered `BUSY`/`LOCKED` (a writer holds the lock).
    pub(crate) fn try_read<R>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Option<rusqlite::Result<R>> {
        let outcome = self.run(read);
        if outcome.is_none() {
            self.handed_over.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }

    fn run<R>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Option<rusqlite::Result<R>> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        let start = thread_slot::home();
        for i in 0..n {
            let Some(slot) = self.slots.get((start + i) % n) else {
                continue;
            };
            let guard = match slot.conn.try_lock() {
                Ok(guard) => guard,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            let conn = guard.as_ref()?;
            return match read(conn) {
                Err(e) if is_busy(&e) => None,
                other => {
                    // Only the lock holder writes this counter: no contention.
                    slot.answered.fetch_add(1, Ordering::Relaxed);
                    Some(other)
                }
            };
        }
        None
    }

    /// How many reads ran inline and how many were handed to the writer.
    pub(crate) fn counts(&self) -> (u64, u64) {
        let inline = self
            .slots
            .iter()
            .map(|s| s.answered.load(Ordering::Relaxed))
            .sum();
        (inline, self.handed_over.load(Ordering::Relaxed))
    }

    /// How many reader connections the pool has.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Closes every reader (waiting for a read in progress, which is short).
    pub(crate) fn close(&self) {
        for slot in self.slots.iter() {
            let conn = slot
                .conn
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            drop(conn);
        }
    }
}
