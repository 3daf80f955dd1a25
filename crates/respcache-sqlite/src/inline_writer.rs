//! [`InlineWriter`]: a second read-write connection that runs short
//! single-row writes inline, on the calling task, without a thread hop.
//!
//! Three rules keep it from changing what a caller sees:
//!
//! - **It never waits.** The connection is taken with `try_lock` and has no
//!   busy timeout: when it is in use, or SQLite answers `BUSY`/`LOCKED`
//!   (another process holds the write lock; in memory, a reader holds its
//!   lock), the write goes to the writer thread instead, which waits as it
//!   always did. A single statement in autocommit mode that fails with
//!   `BUSY` has been rolled back, so handing it over never applies it twice.
//! - **It never overtakes the writer thread.** A write runs inline only
//!   when no call is queued on or running on the writer thread (see
//!   [`InlineWriter::queue`]). So a write that a task sent to the writer
//!   thread and then stopped waiting for (its future dropped) still lands
//!   before that task's next write, as it did when every write went through
//!   the thread's queue. And the writer thread holds this connection's
//!   mutex while it runs a call, so the process's two write connections
//!   never meet on SQLite's lock (where the loser would sleep in SQLite's
//!   busy handler, a millisecond at least).
//! - **It never checkpoints.** The connection's WAL hook replaces SQLite's
//!   auto-checkpoint and only notes how long the WAL has grown; once it
//!   passes SQLite's default threshold, the next write goes to the writer
//!   thread, whose connection checkpoints when it commits, as before. A
//!   checkpoint copies pages and syncs the file: not work for a runtime
//!   thread.

use std::cell::Cell;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use rusqlite::Connection;
use rusqlite::hooks::Wal;

use crate::error::is_busy;

/// SQLite's default `wal_autocheckpoint`: the WAL size, in pages, at which a
/// commit checkpoints. The writer thread's connection keeps it.
const CHECKPOINT_PAGES: c_int = 1000;

thread_local! {
    /// The WAL size the inline connection's last commit on this thread
    /// reported (the hook runs on the committing thread, inside the call).
    static WAL_PAGES: Cell<c_int> = const { Cell::new(0) };
}

/// The inline connection's WAL hook: records the WAL's size instead of
/// checkpointing.
fn note_wal_pages(_: &Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages));
    Ok(())
}

/// Installs [`note_wal_pages`] as `conn`'s WAL hook, which also turns off
/// its auto-checkpoint (both are the one `sqlite3_wal_hook` slot).
pub(crate) fn hook_wal(conn: &Connection) {
    conn.wal_hook(Some(note_wal_pages));
}

/// The inline write connection and the bookkeeping that decides when it may
/// be used.
#[derive(Debug, Default)]
pub(crate) struct InlineWriter {
    conn: Mutex<Option<Connection>>,
    /// Calls queued on or running on the writer thread.
    queued: AtomicUsize,
    /// Set when an inline commit left the WAL past [`CHECKPOINT_PAGES`].
    checkpoint_due: AtomicBool,
    inline: AtomicU64,
    handed_over: AtomicU64,
}

/// A call on the writer thread, counted in [`InlineWriter::queue`] from
/// before it is sent until it has run or was dropped unrun.
pub(crate) struct Queued(Arc<InlineWriter>);

impl Queued {
    /// Waits (on the writer thread) until no inline write is running, and
    /// keeps inline writes out while the guard lives.
    pub(crate) fn hold(&self) -> MutexGuard<'_, Option<Connection>> {
        self.0.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Queued {
    /// On the writer thread, with [`hold`](Self::hold)'s guard: checkpoints
    /// if an inline commit asked for it (a call that commits nothing never
    /// triggers the writer connection's auto-checkpoint).
    pub(crate) fn checkpoint_if_due(&self, conn: &Connection) {
        if self.0.checkpoint_due.swap(false, Ordering::Relaxed) {
            let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InlineWriter {
    /// A writer on `conn` (`None`: every write goes to the writer thread).
    pub(crate) fn new(conn: Option<Connection>) -> Self {
        InlineWriter {
            conn: Mutex::new(conn),
            ..InlineWriter::default()
        }
    }

    /// Counts a call about to be sent to the writer thread; the call keeps
    /// the guard until it has run.
    pub(crate) fn queue(self: &Arc<Self>) -> Queued {
        self.queued.fetch_add(1, Ordering::AcqRel);
        Queued(Arc::clone(self))
    }

    /// Runs `write` inline. `None` means "send it to the writer thread":
    /// the writer thread has calls queued, a checkpoint is due, the
    /// connection is in use, closed or absent, or SQLite answered
    /// `BUSY`/`LOCKED`.
    pub(crate) fn try_write<R>(
        &self,
        write: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Option<rusqlite::Result<R>> {
        let outcome = self.run(write);
        if outcome.is_none() {
            self.handed_over.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }

    fn run<R>(
        &self,
        write: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Option<rusqlite::Result<R>> {
        if self.queued.load(Ordering::Acquire) != 0 {
            return None;
        }
        let mut guard = match self.conn.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        // Cleared by the writer thread once it has checkpointed.
        if self.checkpoint_due.load(Ordering::Relaxed) {
            return None;
        }
        let conn = guard.as_mut()?;
        WAL_PAGES.with(|p| p.set(0));
        let outcome = match write(conn) {
            Err(e) if is_busy(&e) => return None,
            other => other,
        };
        if WAL_PAGES.with(Cell::get) >= CHECKPOINT_PAGES {
            self.checkpoint_due.store(true, Ordering::Relaxed);
        }
        self.inline.fetch_add(1, Ordering::Relaxed);
        Some(outcome)
    }

    /// How many writes ran inline and how many were handed to the writer.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.inline.load(Ordering::Relaxed),
            self.handed_over.load(Ordering::Relaxed),
        )
    }

    /// Closes the connection, after the inline write in progress if any.
    /// Called on the writer thread, so it never holds up a runtime thread.
    pub(crate) fn close(&self) {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(conn);
    }
}
