//! [`SqliteStore`]: one repository's table, behind the [`Store`] contract.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use respcache_core::budget::entry_size;
use respcache_core::{Bytes, Entry, Key, LeaseToken, Result, Select, Store, Timestamp};
use rusqlite::Connection;

use crate::backend::Shared;
use crate::error::map_sqlite_error;
use crate::table::{FLUSH_TOUCHED_AT, Table};

/// The largest `get_many` answered inline on a reader connection; larger
/// ones run in one read transaction on the writer thread, so a big batch
/// never holds up the caller's runtime thread.
const INLINE_GET_MANY: usize = 32;

/// The largest entry (payload and metadata) a `put` writes inline, and the
/// largest metadata a `set_meta` does; larger ones go to the writer thread,
/// so writing a big row never holds up the caller's runtime thread.
const INLINE_WRITE_BYTES: usize = 64 * 1024;

/// A point read: runs inline on a reader or on the writer thread.
type PointRead<A, R> = fn(&Table, &Connection, &Key, A) -> rusqlite::Result<R>;

/// A single-row write: runs inline on the inline write connection or on
/// the writer thread.
type RowWrite<A, R> = fn(&Table, &mut Connection, &A) -> rusqlite::Result<R>;

/// One repository's entries: a table in the backend's database.
///
/// Obtained from [`Backend::open_store`](respcache_core::Backend::open_store)
/// on a [`SqliteBackend`](crate::SqliteBackend). Point reads (`get`,
/// `contains`, `get_many` of up to 32 keys) run inline on a reader
/// connection, single-row writes (`put` of up to 64 KiB, `delete`,
/// `set_expiry`, `set_meta`) inline on the inline write connection when it
/// is free; everything else runs on the writer thread (see the backend's
/// docs).
pub struct SqliteStore {
    shared: Arc<Shared>,
    table: Arc<Table>,
    /// Whether this handle has made sure the lease table exists.
    leases_ready: AtomicBool,
}

impl SqliteStore {
    pub(crate) fn new(shared: Arc<Shared>, table: Arc<Table>) -> Self {
        SqliteStore {
            shared,
            table,
            leases_ready: AtomicBool::new(false),
        }
    }

    /// The (unquoted) name of the table that holds the entries,
    /// `<cache>:<repository>`.
    pub fn table_name(&self) -> &str {
        self.table.name()
    }

    /// Runs `read` inline on a free reader connection; when none is free or
    /// SQLite reports a lock, on the writer thread.
    async fn point_read<A, R>(&self, key: &Key, arg: A, read: PointRead<A, R>) -> Result<R>
    where
        A: Copy + Send + 'static,
        R: Send + 'static,
    {
        let table = &self.table;
        if let Some(outcome) = self.shared.readers.try_read(|c| read(table, c, key, arg)) {
            return outcome.map_err(map_sqlite_error);
        }
        let (table, key) = (Arc::clone(&self.table), key.clone());
        self.shared
            .call(move |c| read(&table, c, &key, arg).map_err(map_sqlite_error))
            .await
    }

    /// Runs the single-row write `op` inline on the inline write
    /// connection; when that is in use, or SQLite reports a lock (see
    /// `InlineWriter` for the rest), on the writer thread.
    ///
    /// Inline, the write blocks the calling runtime thread for one indexed
    /// statement and its commit: a few µs to tens of µs (no fsync with
    /// `synchronous=NORMAL` in WAL mode, no checkpoint, no waiting for a
    /// lock), against about 40 µs of thread hops each way otherwise.
    async fn write_row<A, R>(&self, arg: A, op: RowWrite<A, R>) -> Result<R>
    where
        A: Send + 'static,
        R: Send + 'static,
    {
        let table = &self.table;
        if let Some(outcome) = self.shared.inline.try_write(|c| op(table, c, &arg)) {
            return outcome.map_err(map_sqlite_error);
        }
        self.write(move |t, c| op(t, c, &arg)).await
    }

    /// Runs `op` on the writer thread with this store's table.
    async fn write<R, F>(&self, op: F) -> Result<R>
    where
        F: FnOnce(&Table, &mut Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let table = Arc::clone(&self.table);
        self.shared
            .call(move |c| op(&table, c).map_err(map_sqlite_error))
            .await
    }
}

impl SqliteStore {
    /// Once enough rows were read since their use times were written, has
    /// the writer thread write them (in the background: a hit never waits
    /// for it).
    fn flush_if_due(&self) {
        if self.table.touched_len() < FLUSH_TOUCHED_AT {
            return;
        }
        let (shared, table) = (Arc::clone(&self.shared), Arc::clone(&self.table));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let flushed = shared
                    .call(move |c| table.flush_touched(c).map_err(map_sqlite_error))
                    .await;
                if let Err(e) = flushed {
                    tracing::debug!(error = %e, "respcache-sqlite: use times not written");
                }
            });
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("table", &self.table.name())
            .field("backend", &self.shared)
            .finish()
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &Key) -> Result<Option<Entry>> {
        if !self.table.fits(key) {
            return Ok(None);
        }
        let found = self.point_read(key, (), |t, c, k, ()| t.get(c, k)).await?;
        self.flush_if_due();
        Ok(found)
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entry>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if keys.len() <= INLINE_GET_MANY {
            let table = &self.table;
            if let Some(outcome) = self.shared.readers.try_read(|c| table.get_many(c, keys)) {
                self.flush_if_due();
                return outcome.map_err(map_sqlite_error);
            }
        }
        let keys = keys.to_vec();
        self.write(move |t, c| {
            // One read transaction: one snapshot, one lock for the batch.
            let tx = c.transaction()?;
            let found = t.get_many(&tx, &keys)?;
            tx.commit()?;
            Ok(found)
        })
        .await
    }

    async fn put(&self, entry: Entry) -> Result<()> {
        self.table.check_key(&entry.key)?;
        let size = entry.payload.len() + entry.meta.as_ref().map_or(0, Bytes::len);
        let charged = entry_size(&entry);
        if size > INLINE_WRITE_BYTES {
            self.write(move |t, c| t.put(c, &entry)).await?;
        } else if self.shared.group_commit {
            self.shared
                .put_grouped(Arc::clone(&self.table), entry)
                .await?;
        } else {
            self.write_row(entry, |t, c, entry| t.put(c, entry)).await?;
        }
        self.shared.after_write(charged, 1).await
    }

    async fn put_many(&self, entries: Vec<Entry>) -> Result<()> {
        for entry in &entries {
            self.table.check_key(&entry.key)?;
        }
        if entries.is_empty() {
            return Ok(());
        }
        let charged: u64 = entries.iter().map(entry_size).sum();
        let n = entries.len() as u64;
        self.write(move |t, c| t.put_many(c, &entries)).await?;
        self.shared.after_write(charged, n).await
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        if !self.table.fits(key) {
            return Ok(false);
        }
        self.write_row(key.clone(), |t, c, key| t.delete(c, key))
            .await
    }

    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let keys = keys.to_vec();
        self.write(move |t, c| t.delete_many(c, &keys)).await
    }

    async fn contains(&self, key: &Key, now: Timestamp) -> Result<bool> {
        if !self.table.fits(key) {
            return Ok(false);
        }
        self.point_read(key, now, |t, c, k, now| t.contains(c, k, now))
            .await
    }

    async fn count(&self, select: Select, now: Timestamp) -> Result<u64> {
        self.write(move |t, c| t.count(c, select, now)).await
    }

    async fn clear(&self, select: Select, now: Timestamp) -> Result<u64> {
        self.write(move |t, c| t.clear(c, select, now)).await
    }

    /// One `DELETE` on the writer thread, its rows found through the tag
    /// index (see `tag_index.rs`).
    async fn purge_tag(&self, tag: &str) -> Result<u64> {
        respcache_core::tags::validate_tag(tag)?;
        let tag = tag.to_owned();
        self.write(move |t, c| t.purge_tag(c, &tag)).await
    }

    fn scan(&self, select: Select, now: Timestamp) -> BoxStream<'static, Result<Entry>> {
        let shared = Arc::clone(&self.shared);
        let table = Arc::clone(&self.table);
        // Keyset pagination by rowid: one page per call on the writer
        // thread, so memory stays at one page however large the table.
        let pages = futures::stream::try_unfold(Some(i64::MIN), move |after| {
            let shared = Arc::clone(&shared);
            let table = Arc::clone(&table);
            async move {
                let Some(after) = after else {
                    return Ok(None);
                };
                let (entries, next) = shared
                    .call(move |c| {
                        table
                            .scan_page(c, select, now, after)
                            .map_err(map_sqlite_error)
                    })
                    .await?;
                let page = futures::stream::iter(entries.into_iter().map(Ok));
                Ok(Some((page, next)))
            }
        });
        pages.try_flatten().boxed()
    }

    async fn set_expiry(&self, key: &Key, expires_at: Option<Timestamp>) -> Result<bool> {
        if !self.table.fits(key) {
            return Ok(false);
        }
        self.write_row((key.clone(), expires_at), |t, c, (key, expires_at)| {
            t.set_expiry(c, key, *expires_at)
        })
        .await
    }

    async fn set_meta(
        &self,
        key: &Key,
        meta: Option<Bytes>,
        expires_at: Option<Timestamp>,
    ) -> Result<bool> {
        if !self.table.fits(key) {
            return Ok(false);
        }
        if meta.as_ref().map_or(0, Bytes::len) > INLINE_WRITE_BYTES {
            let key = key.clone();
            return self
                .write(move |t, c| t.set_meta(c, &key, meta.as_deref(), expires_at))
                .await;
        }
        self.write_row((key.clone(), meta, expires_at), |t, c, (key, meta, at)| {
            t.set_meta(c, key, meta.as_deref(), *at)
        })
        .await
    }

    /// One upsert under `BEGIN IMMEDIATE` (see [`crate::lease`]).
    async fn acquire_lease(&self, key: &Key, ttl: Duration) -> Result<Option<LeaseToken>> {
        let token = LeaseToken::generate();
        let now = Timestamp::now();
        let expires = now.saturating_add(Duration::from_millis(respcache_core::lease::ttl_millis(
            ttl,
        )));
        let create = !self.leases_ready.load(Ordering::Acquire);
        let args = (key.clone(), token.clone(), expires, now, create);
        let taken = self.write_row(args, crate::lease::acquire).await?;
        self.leases_ready.store(true, Ordering::Release);
        Ok(taken.then_some(token))
    }

    /// One compare-and-delete statement.
    async fn release_lease(&self, key: &Key, token: &LeaseToken) -> Result<bool> {
        let args = (key.clone(), token.clone(), Timestamp::now());
        self.write_row(args, crate::lease::release).await
    }
}
