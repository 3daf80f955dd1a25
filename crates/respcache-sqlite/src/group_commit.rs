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
//! - **The first put of a batch queues one call on the writer thread**
//!   before any other put can join it (the call is sent under the lock that
//!   publishes the batch); puts that come while it waits join the batch.
//!   The call takes the rows when it runs, so a batch holds every put that
//!   arrived before the writer thread was free.
//! - **No put waits forever**: a batch whose call could not be sent, or was
//!   dropped unrun (the backend closing), is withdrawn and its puts answered
//!   "closed".
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
pub(crate) struct Batch {
    rows: Mutex<Rows>,
}

/// A batch's rows, and whether it was taken or withdrawn (a put that finds
/// it so starts another batch).
struct Rows {
    list: Vec<Row>,
    done: bool,
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
    /// Adds a put to the open batch and returns its outcome's receiver.
    /// When there is none, starts one: `start` must queue the batch's
    /// [`BatchCall`] on the writer thread (without waiting); it runs before
    /// the batch is published, under the lock puts join by, and when it
    /// fails the put fails with its error and no batch is left open.
    pub(crate) fn join<E>(
        self: &Arc<Self>,
        table: Arc<Table>,
        entry: Entry,
        start: impl FnOnce(BatchCall) -> Result<(), E>,
    ) -> Result<Done, E> {
        let (done, outcome) = oneshot::channel();
        let row = Row { table, entry, done };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let row = match open.as_ref() {
            Some(batch) => {
                let mut rows = lock(&batch.rows);
                if !rows.done {
                    rows.list.push(row);
                    return Ok(outcome);
                }
                row
            }
            None => row,
        };
        let batch = Arc::new(Batch {
            rows: Mutex::new(Rows {
                list: vec![row],
                done: false,
            }),
        });
        start(BatchCall {
            group: Arc::clone(self),
            batch: Some(Arc::clone(&batch)),
        })?;
        *open = Some(batch);
        Ok(outcome)
    }

    /// Closes the open batch to new puts: the next put starts another,
    /// queued behind whatever call the caller sends now.
    pub(crate) fn seal(&self) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// On the writer thread: takes `batch`'s rows (closing it to new puts)
    /// and writes them in one transaction; each put learns its outcome.
    fn commit(&self, batch: &Arc<Batch>, conn: &mut Connection) {
        let rows = batch.take();
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

/// The writer-thread call that commits one batch. Dropped without
/// running (never sent, or discarded by a closing writer thread), it
/// withdraws the batch: its puts get "closed" instead of waiting forever.
pub(crate) struct BatchCall {
    group: Arc<GroupCommit>,
    batch: Option<Arc<Batch>>,
}

impl BatchCall {
    /// Writes the batch (on the writer thread).
    pub(crate) fn run(mut self, conn: &mut Connection) {
        if let Some(batch) = self.batch.take() {
            self.group.commit(&batch, conn);
        }
    }
}

impl Drop for BatchCall {
    fn drop(&mut self) {
        // Only the batch's own lock: this may run inside `join`, which
        // holds the open-batch lock. Dropping the rows drops their senders:
        // each put's receiver reports the backend closed.
        if let Some(batch) = self.batch.take() {
            drop(batch.take());
        }
    }
}

impl Batch {
    /// Closes the batch to new puts (one that finds it so starts another)
    /// and takes its rows.
    fn take(&self) -> Vec<Row> {
        let mut rows = lock(&self.rows);
        rows.done = true;
        std::mem::take(&mut rows.list)
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

fn lock(rows: &Mutex<Rows>) -> std::sync::MutexGuard<'_, Rows> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use respcache_core::{FieldKind, Key, KeyPart, KeySchema, Name, Timestamp};
    use tokio::sync::oneshot::error::TryRecvError;

    type TestResult = std::result::Result<(), String>;

    fn table() -> std::result::Result<Arc<Table>, String> {
        let name = |s: &str| Name::new(s).map_err(|e| e.to_string());
        let schema = KeySchema::new([("id", FieldKind::Text)]).map_err(|e| e.to_string())?;
        Ok(Arc::new(Table::new(&name("c")?, &name("r")?, &schema)))
    }

    fn entry(id: &str) -> Entry {
        Entry::new(
            Key::new("GET", [KeyPart::Text(id.to_owned())]),
            Timestamp::now(),
            "v",
        )
    }

    /// The calls a test kept (as the writer thread's queue would), and two
    /// puts' outcomes.
    type TwoPuts = (Vec<BatchCall>, Result<Done, ()>, Result<Done, ()>);

    /// Two puts into `group`: the first starts a batch (its call kept), the
    /// second joins it (a second call would fail it).
    fn two_puts(group: &Arc<GroupCommit>) -> std::result::Result<TwoPuts, String> {
        let mut calls = Vec::new();
        let first = group.join(table()?, entry("a"), |call| {
            calls.push(call);
            Ok::<_, ()>(())
        });
        let second = group.join(table()?, entry("b"), |_| Err(()));
        Ok((calls, first, second))
    }

    /// Whether a put of `id` into `group` starts a batch of its own (asks
    /// for a call) and is accepted.
    fn starts_a_batch(group: &Arc<GroupCommit>, id: &str) -> std::result::Result<bool, String> {
        let mut starts = 0;
        let put = group.join(table()?, entry(id), |_| {
            starts += 1;
            Ok::<_, ()>(())
        });
        Ok(put.is_ok() && starts == 1)
    }

    #[test]
    fn puts_join_the_batch_whose_call_was_queued() -> TestResult {
        let group = Arc::new(GroupCommit::default());
        let (calls, started, joined) = two_puts(&group)?;
        assert!(started.is_ok() && joined.is_ok(), "the second put joined");
        assert_eq!(calls.len(), 1);
        Ok(())
    }

    #[test]
    fn a_batch_dropped_unrun_answers_its_puts_and_the_next_put_starts_another() -> TestResult {
        let group = Arc::new(GroupCommit::default());
        let (calls, first, second) = two_puts(&group)?;
        let (Ok(mut first), Ok(mut second)) = (first, second) else {
            return Err("the puts did not join".into());
        };
        assert!(matches!(first.try_recv(), Err(TryRecvError::Empty)));
        // The writer thread discards the call unrun (closing): no put waits.
        drop(calls);
        assert!(matches!(first.try_recv(), Err(TryRecvError::Closed)));
        assert!(matches!(second.try_recv(), Err(TryRecvError::Closed)));
        assert!(
            starts_a_batch(&group, "c")?,
            "the next put started a new batch"
        );
        Ok(())
    }

    #[test]
    fn a_call_that_cannot_be_sent_fails_its_put_and_leaves_no_batch_open() -> TestResult {
        let group = Arc::new(GroupCommit::default());
        // Dropped inside `start` (as a failed send drops it): no deadlock on
        // the lock `join` holds, and the put gets the send's error.
        let failed = group.join(table()?, entry("a"), |call| {
            drop(call);
            Err("closed")
        });
        assert!(matches!(failed, Err("closed")));
        assert!(starts_a_batch(&group, "b")?);
        Ok(())
    }
}
