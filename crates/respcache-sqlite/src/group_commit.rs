//! [`GroupCommit`]: puts from concurrent tasks, written by the writer
//! thread in one transaction and one commit.
//!
//! A single-row commit writes every B-tree page the row touches (the
//! table's last leaf, the key index's leaf, the `expires_at` and
//! `used_at` index leaves, often page 1) to the WAL: about five 4 KiB
//! frames for a 1 KiB entry, plus the locks and the WAL index updates of
//! a transaction. Rows committed together share the appended-to pages and
//! the transaction, so a server storing many misses at once (`respcache
//! serve`) spends a fraction of that per row.
//!
//! The rules:
//!
//! - **A put still returns after its row is committed**, as any put does:
//!   another handle or process that reads after it sees the row. Only the
//!   commit is shared.
//! - **The first put of a batch queues one call on the writer thread**;
//!   puts that come while it waits join the batch. The call takes the rows
//!   when it runs, so a batch holds every put that arrived before the
//!   writer thread was free.
//! - **Nothing overtakes.** Any other call sent to the writer thread seals
//!   the open batch first ([`GroupCommit::seal`]): a put that comes after
//!   it starts a new batch, queued behind that call. And the batch's call is
//!   counted as queued (see `InlineWriter`), so no write runs inline
//!   before it.
//! - **One bad row fails alone**: when the batch's transaction fails, each
//!   row is written again in its own, and each put gets its own outcome.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use respcache_core::Entry;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use crate::table::Table;

/// The outcome a put waits for.
pub(crate) type Done = oneshot::Receiver<rusqlite::Result<()>>;

/// One put waiting for its batch's commit.
struct Row {
    table: Arc<Table>,
    entry: Entry,
    done: oneshot::Sender<rusqlite::Result<()>>,
}

/// The rows of one batch, taken by its call on the writer thread.
#[derive(Default)]
pub(crate) struct Batch {
    rows: Mutex<Vec<Row>>,
}

/// The batch puts join until the writer thread takes it.
#[derive(Default)]
pub(crate) struct GroupCommit {
    open: Mutex<Option<Arc<Batch>>>,
    /// Batches committed, and the puts they held.
    batches: AtomicU64,
    rows: AtomicU64,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Adds a put to the open batch. Returns its outcome's receiver and,
    /// when it started a new batch, that batch: the caller queues
    /// [`GroupCommit::commit`] for it on the writer thread.
    pub(crate) fn join(&self, table: Arc<Table>, entry: Entry) -> (Done, Option<Arc<Batch>>) {
        let (done, outcome) = oneshot::channel();
        let row = Row { table, entry, done };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(batch) = open.as_ref() {
            lock(&batch.rows).push(row);
            return (outcome, None);
        }
        let batch = Arc::new(Batch {
            rows: Mutex::new(vec![row]),
        });
        *open = Some(Arc::clone(&batch));
        (outcome, Some(batch))
    }

    /// Closes the open batch to new puts: the next put starts another,
    /// queued behind whatever call the caller sends now.
    pub(crate) fn seal(&self) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// On the writer thread: takes `batch`'s rows (sealing it, when it is
    /// still open) and writes them in one transaction; each put learns its
    /// outcome.
    pub(crate) fn commit(&self, batch: &Arc<Batch>, conn: &mut Connection) {
        {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            if open.as_ref().is_some_and(|b| Arc::ptr_eq(b, batch)) {
                *open = None;
            }
        }
        let rows = std::mem::take(&mut *lock(&batch.rows));
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows.len() as u64, Ordering::Relaxed);
        match write_together(conn, &rows) {
            Ok(()) => {
                for row in rows {
                    let _ = row.done.send(Ok(()));
                }
            }
            // One row, or a batch whose transaction failed: each row in its
            // own (a missing table is made again there), with its outcome.
            Err(_) => {
                for row in rows {
                    let outcome = row.table.put(conn, &row.entry);
                    let _ = row.done.send(outcome);
                }
            }
        }
    }
}

impl GroupCommit {
    /// How many batches the writer thread wrote, and how many puts they
    /// held.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.batches.load(Ordering::Relaxed),
            self.rows.load(Ordering::Relaxed),
        )
    }
}

fn lock(rows: &Mutex<Vec<Row>>) -> std::sync::MutexGuard<'_, Vec<Row>> {
    rows.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes `rows` in one `BEGIN IMMEDIATE` transaction (rolled back on the
/// first failure).
fn write_together(conn: &mut Connection, rows: &[Row]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for row in rows {
        row.table.upsert(&tx, &row.entry)?;
    }
    tx.commit()
}
