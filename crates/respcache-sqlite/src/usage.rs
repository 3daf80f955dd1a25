//! The budget of a SQLite file: use times, size accounting and the trim,
//! least recently used first.
//!
//! - **Use times** (`used_at`, an indexed column): a write stamps its row;
//!   a hit only records the rowid in memory ([`Table`]'s touched set), and
//!   the set is written in one transaction before a trim, on close, and
//!   every [`FLUSH_TOUCHED_AT`](crate::table::FLUSH_TOUCHED_AT) distinct
//!   rows — never a write per hit.
//! - **Size**: a running estimate, counted exactly (one pass over the
//!   tables, `length()` of BLOBs reads no overflow pages) the first time a
//!   write needs it and again at every trim; writes add to it, and a
//!   delete or a replacement leaves it high until the next count, so it
//!   errs on the side of trimming early, never late. Writes of other
//!   processes are seen at the next count.
//! - **Trim**: when a write takes the estimate over the budget, the writer
//!   counts exactly and removes the least recently used rows of every
//!   respcache table in the file, in batches of [`TRIM_BATCH`] (each its own
//!   transaction, queued behind other calls), down to
//!   [`Budget::low_water`].

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use respcache_core::Result;
use respcache_core::budget::{Budget, ENTRY_OVERHEAD, ProgressFn, TrimProgress, Usage};
use rusqlite::{Connection, TransactionBehavior};

use crate::backend::Shared;
use crate::error::map_sqlite_error;
use crate::naming::quote;
use crate::table::Table;

/// The most rows one trim batch deletes.
pub(crate) const TRIM_BATCH: usize = 256;

static LAST_TICK: AtomicI64 = AtomicI64::new(0);

/// A use time: microseconds since the epoch, strictly increasing within
/// the process (two uses in one microsecond still order), comparable across
/// processes to the clocks' agreement.
pub(crate) fn use_tick() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    let mut last = LAST_TICK.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST_TICK.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// A backend's budget and what it knows of its size.
#[derive(Debug, Default)]
pub(crate) struct Accounting {
    pub(crate) budget: Budget,
    /// The running estimate; `None` until first counted.
    estimate: Mutex<Option<Usage>>,
    /// Set while a trim runs, so concurrent writes do not start another.
    trimming: AtomicBool,
    /// The tables this handle opened, whose touched rows a trim flushes.
    tables: Mutex<Vec<Weak<Table>>>,
}

impl Accounting {
    /// Accounting for `budget`.
    pub(crate) fn new(budget: Budget) -> Self {
        Accounting {
            budget,
            ..Accounting::default()
        }
    }

    /// Remembers an opened table.
    pub(crate) fn register(&self, table: &Arc<Table>) {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        tables.retain(|t| t.strong_count() > 0);
        tables.push(Arc::downgrade(table));
    }

    /// The tables opened and still alive.
    pub(crate) fn open_tables(&self) -> Vec<Arc<Table>> {
        self.tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Adds a write of `bytes` in `entries` rows; whether a trim is due (the
    /// estimate passed the budget, or it was never counted).
    pub(crate) fn add(&self, bytes: u64, entries: u64) -> bool {
        if !self.budget.is_limited() {
            return false;
        }
        let mut estimate = self.estimate.lock().unwrap_or_else(PoisonError::into_inner);
        match estimate.as_mut() {
            None => true,
            Some(usage) => {
                usage.bytes = usage.bytes.saturating_add(bytes);
                usage.entries = usage.entries.saturating_add(entries);
                self.budget.is_exceeded_by(*usage)
            }
        }
    }

    /// Sets the estimate to an exact count.
    pub(crate) fn set(&self, usage: Usage) {
        *self.estimate.lock().unwrap_or_else(PoisonError::into_inner) = Some(usage);
    }

    /// Takes the trim flag; `false` if a trim already runs.
    pub(crate) fn start_trim(&self) -> bool {
        !self.trimming.swap(true, Ordering::AcqRel)
    }

    /// Releases the trim flag.
    pub(crate) fn end_trim(&self) {
        self.trimming.store(false, Ordering::Release);
    }
}

/// A respcache table in the file, as a trim sees it.
#[derive(Clone, Debug)]
pub(crate) struct Found {
    quoted: String,
    /// The SQL expression of a row's size (as the core's `entry_size`
    /// counts, with the key as its column texts).
    size: String,
}

/// Every table respcache-sqlite made in the file (a key that starts with a
/// `method` column, and the value columns), with `used_at` added where an
/// older version left it out.
pub(crate) fn find_tables(conn: &Connection) -> rusqlite::Result<Vec<Found>> {
    let names: Vec<String> = {
        let mut stmt = conn.prepare_cached(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )?;
        stmt.query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut out = Vec::new();
    for name in names {
        let columns: Vec<(String, i64)> = {
            let mut stmt =
                conn.prepare_cached("SELECT name, pk FROM pragma_table_info(?1) ORDER BY pk")?;
            stmt.query_map([&name], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        let has = |c: &str| columns.iter().any(|(n, _)| n == c);
        let keys: Vec<&str> = columns
            .iter()
            .filter(|(_, pk)| *pk > 0)
            .map(|(n, _)| n.as_str())
            .collect();
        let ours = keys.first() == Some(&"method")
            && ["name", "cached_at", "expires_at", "payload", "meta"]
                .iter()
                .all(|c| has(c));
        if !ours {
            continue;
        }
        let quoted = quote(&name);
        if !has("used_at") {
            conn.execute_batch(&format!(
                "ALTER TABLE {quoted} ADD COLUMN used_at INTEGER NOT NULL DEFAULT 0;\
                 CREATE INDEX IF NOT EXISTS {} ON {quoted} (used_at);",
                quote(&format!("{name}:used_at"))
            ))?;
        }
        let key_len: Vec<String> = keys
            .iter()
            .map(|k| format!("length({})", quote(k)))
            .collect();
        let size = format!(
            "(length(payload) + coalesce(length(meta), 0) + coalesce(length(name), 0) + {} + {ENTRY_OVERHEAD})",
            key_len.join(" + ")
        );
        out.push(Found { quoted, size });
    }
    Ok(out)
}

/// The exact usage of `tables`.
pub(crate) fn count(conn: &Connection, tables: &[Found]) -> rusqlite::Result<Usage> {
    let mut usage = Usage::default();
    for t in tables {
        let (entries, bytes): (i64, i64) = conn.query_row(
            &format!(
                "SELECT count(*), coalesce(sum({}), 0) FROM {}",
                t.size, t.quoted
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        usage.entries += u64::try_from(entries).unwrap_or(0);
        usage.bytes += u64::try_from(bytes).unwrap_or(0);
    }
    Ok(usage)
}

/// Deletes, in one transaction, up to [`TRIM_BATCH`] of the least recently
/// used rows across `tables`, stopping as soon as `target` holds. Returns
/// what it removed and the usage after.
pub(crate) fn trim_batch(
    conn: &mut Connection,
    tables: &[Found],
    mut usage: Usage,
    target: Budget,
) -> rusqlite::Result<(TrimProgress, Usage)> {
    let mut done = TrimProgress::default();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // The oldest rows of each table, merged by use time.
    let mut candidates: Vec<(i64, usize, i64, u64)> = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT used_at, rowid, {} FROM {} ORDER BY used_at, rowid LIMIT {TRIM_BATCH}",
            t.size, t.quoted
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                i,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (used, i, rowid, size) = row?;
            candidates.push((used, i, rowid, u64::try_from(size).unwrap_or(0)));
        }
    }
    candidates.sort_unstable();
    for (_, i, rowid, size) in candidates.into_iter().take(TRIM_BATCH) {
        if !target.is_exceeded_by(usage) {
            break;
        }
        let Some(t) = tables.get(i) else { continue };
        let mut stmt = tx.prepare_cached(&format!("DELETE FROM {} WHERE rowid = ?1", t.quoted))?;
        if stmt.execute([rowid])? > 0 {
            usage.bytes = usage.bytes.saturating_sub(size);
            usage.entries = usage.entries.saturating_sub(1);
            done.removed += 1;
            done.freed += size;
        }
    }
    tx.commit()?;
    Ok((done, usage))
}

/// The most batches one trim runs (a bound on the loop; each batch removes
/// at least one row or the trim stops).
const MAX_BATCHES: usize = 1 << 20;

impl Shared {
    /// Writes the use times of rows read since the last flush (every table
    /// this handle opened), then counts every respcache table exactly.
    pub(crate) async fn count_usage(&self) -> Result<(Vec<Found>, Usage)> {
        let open = self.accounting.open_tables();
        let counted = self
            .call(move |c| {
                for table in &open {
                    table.flush_touched(c).map_err(map_sqlite_error)?;
                }
                let found = find_tables(c).map_err(map_sqlite_error)?;
                let usage = count(c, &found).map_err(map_sqlite_error)?;
                Ok((found, usage))
            })
            .await?;
        self.accounting.set(counted.1);
        Ok(counted)
    }

    /// Removes least recently used rows until `target` holds, one batch
    /// per call on the writer thread (so other calls run in between).
    pub(crate) async fn trim_to(
        &self,
        target: Budget,
        progress: ProgressFn<'_>,
    ) -> Result<TrimProgress> {
        let (found, mut usage) = self.count_usage().await?;
        let mut total = TrimProgress::default();
        total.to_free = target
            .max_bytes
            .map_or(0, |max| usage.bytes.saturating_sub(max));
        for _ in 0..MAX_BATCHES {
            if !target.is_exceeded_by(usage) {
                break;
            }
            let tables = found.clone();
            let (done, after) = self
                .call(move |c| trim_batch(c, &tables, usage, target).map_err(map_sqlite_error))
                .await?;
            usage = after;
            total.removed += done.removed;
            total.freed += done.freed;
            progress(total);
            if done.removed == 0 {
                break;
            }
        }
        self.accounting.set(usage);
        Ok(total)
    }

    /// After a write of `bytes` in `entries` rows: trims to the low-water
    /// mark when the budget is passed (unless a trim already runs).
    pub(crate) async fn after_write(&self, bytes: u64, entries: u64) -> Result<()> {
        if !self.accounting.add(bytes, entries) || !self.accounting.start_trim() {
            return Ok(());
        }
        let budget = self.accounting.budget;
        let outcome = async {
            let (_, usage) = self.count_usage().await?;
            if budget.is_exceeded_by(usage) {
                self.trim_to(budget.low_water(), &|_| {}).await?;
            }
            Ok(())
        }
        .await;
        self.accounting.end_trim();
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_strictly_increase() {
        let mut last = use_tick();
        for _ in 0..10_000 {
            let next = use_tick();
            assert!(next > last);
            last = next;
        }
    }
}
