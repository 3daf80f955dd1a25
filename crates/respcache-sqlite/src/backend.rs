//! [`SqliteBackend`]: the writer connection (on tokio-rusqlite's thread),
//! the inline reader pool, the inline write connection, and the stores.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use respcache_core::BackendGuard;
use respcache_core::budget::{Budget, Eviction, ProgressFn, TrimProgress, Usage};
use respcache_core::{
    Backend, DynStore, Entry, Error, ErrorKind, KeySchema, Limits, Name, Operation, Result,
    StoreSpec,
};
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};
use tempfile::TempDir;

use crate::NAME;
use crate::config::{Location, OnCorrupt, SqliteConfig};
use crate::error::{is_busy, map_call_error, map_close_error, map_sqlite_error};
use crate::group_commit::GroupCommit;
use crate::inline_writer::{InlineWriter, hook_wal};
use crate::naming::{quote, repository_of, table_prefix};
use crate::readers::Readers;
use crate::store::SqliteStore;
use crate::table::Table;
use crate::usage::Accounting;

/// SQLite's default `SQLITE_MAX_LENGTH`: the largest string, BLOB or row.
const MAX_LENGTH: usize = 1_000_000_000;

/// How many prepared statements each connection keeps (a store uses about
/// a dozen on the writer and two on a reader).
const STATEMENT_CACHE: usize = 512;

#[doc = include_str!("docs.md")]
#[derive(Clone)]
pub struct SqliteBackend {
    shared: Arc<Shared>,
}

/// What the backend and its stores share.
pub(crate) struct Shared {
    /// The read-write connection, on tokio-rusqlite's thread.
    writer: tokio_rusqlite::Connection,
    /// Read-only connections for inline point reads.
    pub(crate) readers: Readers,
    /// The read-write connection for inline single-row writes.
    pub(crate) inline: Arc<InlineWriter>,
    /// The batch concurrent puts join (see `group_commit.rs`), and whether
    /// puts use it.
    pub(crate) group: Arc<GroupCommit>,
    pub(crate) group_commit: bool,
    /// The closed flag the stores are checked against (closed once the
    /// last flush ran).
    guard: BackendGuard,
    /// Set when `close` starts.
    closing: AtomicBool,
    config: SqliteConfig,
    path: Option<PathBuf>,
    /// The budget and the size estimate (see `usage.rs`).
    pub(crate) accounting: Accounting,
    /// Keeps a [`Location::Temp`] database's folder until the last user drops.
    _temp: Option<TempDir>,
}

/// Where the connections open: a file, or a named in-memory database that
/// every connection of this process can open by its name.
enum Target {
    File(PathBuf),
    Memory(String),
}

impl Target {
    fn name(&self) -> &Path {
        match self {
            Target::File(p) => p,
            Target::Memory(uri) => Path::new(uri),
        }
    }

    fn flags(&self, write: bool) -> OpenFlags {
        let access = if write {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        };
        let uri = match self {
            // A path is a path, even if it starts with `file:`.
            Target::File(_) => OpenFlags::empty(),
            Target::Memory(_) => OpenFlags::SQLITE_OPEN_URI,
        };
        access | uri | OpenFlags::SQLITE_OPEN_NO_MUTEX
    }
}

/// A process-wide counter that names in-memory databases.
static MEMORY_DATABASES: AtomicU64 = AtomicU64::new(0);

fn connect_error(what: &str, error: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(ErrorKind::Connection, format!("{what}: {error}"))
        .with_backend(NAME)
        .with_source(error)
}

impl SqliteBackend {
    /// Opens (or creates) the database file at `path`, creating its parent
    /// folders.
    ///
    /// ```
    /// # async fn demo() -> respcache_core::Result<()> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let backend = respcache_sqlite::SqliteBackend::open(dir.path().join("a/b/cache.sqlite")).await?;
    /// assert!(dir.path().join("a/b/cache.sqlite").exists());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`Connection`](ErrorKind::Connection) if the folder or the file cannot
    /// be created or opened; [`Backend`](ErrorKind::Backend), naming the
    /// file, if it is not a database or is damaged (see
    /// [`OnCorrupt`](crate::OnCorrupt));
    /// [`Contention`](ErrorKind::Contention) if another process holds the lock
    /// longer than the busy timeout.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        SqliteConfig::file(path).connect().await
    }

    /// Opens the database a `sqlite:` URL names (see [`SqliteConfig`]).
    ///
    /// # Errors
    ///
    /// [`Configuration`](ErrorKind::Configuration) for a malformed URL, then
    /// as [`open`](Self::open).
    pub async fn connect(url: &str) -> Result<Self> {
        SqliteConfig::from_url(url)?.connect().await
    }

    /// A new database in process memory, shared by this backend's
    /// connections (and its clones), lost when they are all dropped.
    pub async fn memory() -> Result<Self> {
        SqliteConfig::memory().connect().await
    }

    /// A new database in a temporary file, deleted when the backend, its
    /// clones and its stores are all dropped.
    pub async fn temp() -> Result<Self> {
        SqliteConfig::temp().connect().await
    }

    /// Opens a backend as `config` says.
    pub async fn with_config(config: SqliteConfig) -> Result<Self> {
        Self::start(config)
            .await
            .map_err(|e| e.with_operation(Operation::Connect))
    }

    /// Opens the database; a damaged file fails with an error naming it,
    /// or with [`OnCorrupt::Reset`] is moved aside for a new database.
    async fn start(config: SqliteConfig) -> Result<Self> {
        let error = match Self::start_once(config.clone()).await {
            Err(e) if is_corrupt(&e) => e,
            other => return other,
        };
        let Location::File(path) = &config.location else {
            return Err(error);
        };
        match config.on_corrupt {
            OnCorrupt::Reset => {
                let aside = move_aside(path)?;
                tracing::warn!(
                    path = %path.display(),
                    moved_to = %aside.display(),
                    error = %error,
                    "respcache-sqlite: the database file is damaged; moved it aside and started \
                     a new, empty database (on_corrupt=reset)"
                );
                Self::start_once(config).await
            }
            _ => Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "the database file {} is damaged ({}): move it aside, or connect with \
                     ?on_corrupt=reset to have respcache move it and start afresh",
                    path.display(),
                    error.message()
                ),
            )
            .with_backend(NAME)
            .with_source(error)),
        }
    }

    async fn start_once(config: SqliteConfig) -> Result<Self> {
        let (target, temp) = match &config.location {
            Location::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    tokio::fs::create_dir_all(parent).await.map_err(|e| {
                        connect_error(&format!("cannot create the folder {parent:?}"), e)
                    })?;
                }
                (Target::File(path.clone()), None)
            }
            Location::Temp => {
                let dir = tempfile::Builder::new()
                    .prefix("respcache-sqlite-")
                    .tempdir()
                    .map_err(|e| connect_error("cannot create a temporary folder", e))?;
                (Target::File(dir.path().join("cache.sqlite")), Some(dir))
            }
            Location::Memory => {
                let n = MEMORY_DATABASES.fetch_add(1, Ordering::Relaxed);
                let uri = format!("file:/respcache-{}-{n}?vfs=memdb", std::process::id());
                (Target::Memory(uri), None)
            }
        };
        let writer = tokio_rusqlite::Connection::open_with_flags(target.name(), target.flags(true))
            .await
            .map_err(map_sqlite_error)?;
        let busy_timeout = config.busy_timeout;
        let reader_count = config.reader_count();
        let path = match &target {
            Target::File(p) => Some(p.clone()),
            Target::Memory(_) => None,
        };
        let opened = writer
            .call(move |conn| {
                let inline_writes = configure_writer(conn, &target, busy_timeout)?;
                let readers = open_readers(&target, reader_count)?;
                let inline = match inline_writes {
                    true => Some(open_inline_writer(&target, busy_timeout)?),
                    false => None,
                };
                Ok((readers, inline))
            })
            .await
            .map_err(map_call_error);
        let (readers, inline) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                let _ = writer.close().await;
                return Err(e);
            }
        };
        Ok(SqliteBackend {
            shared: Arc::new(Shared {
                writer,
                readers: Readers::new(readers),
                inline: Arc::new(InlineWriter::new(inline)),
                group: Arc::default(),
                group_commit: config.group_commit,
                guard: BackendGuard::new(NAME),
                closing: AtomicBool::new(false),
                accounting: Accounting::new(config.budget),
                config,
                path,
                _temp: temp,
            }),
        })
    }

    /// The configuration the backend was opened with.
    pub fn config(&self) -> &SqliteConfig {
        &self.shared.config
    }

    /// The database file; `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }

    /// How many point reads (`get`, `contains`, small `get_many`) ran
    /// inline on a reader connection, and how many went to the writer
    /// thread (every reader busy, or SQLite reported a lock). Diagnostics
    /// for tuning [`SqliteConfig::readers`].
    pub fn read_counts(&self) -> ReadCounts {
        let (inline, writer) = self.shared.readers.counts();
        ReadCounts { inline, writer }
    }

    /// How many single-row writes (`put` of an entry up to 64 KiB,
    /// `delete`, `set_expiry`, `set_meta`) ran inline on the inline write
    /// connection, and how many went to the writer thread (the connection
    /// was in use, the writer thread had calls queued, a checkpoint was
    /// due, or SQLite reported a lock), and — with
    /// [`group_commit`](SqliteConfig::group_commit) — how many puts were
    /// written in how many shared commits. Diagnostics.
    pub fn write_counts(&self) -> WriteCounts {
        let (inline, writer) = self.shared.inline.counts();
        let (group_commits, grouped) = self.shared.group.counts();
        WriteCounts {
            inline,
            writer,
            grouped,
            group_commits,
        }
    }
}

/// Where single-row writes ran; see [`SqliteBackend::write_counts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WriteCounts {
    /// Writes run inline on the inline write connection.
    pub inline: u64,
    /// Writes handed to the writer thread.
    pub writer: u64,
    /// Puts written by group commit (counted in neither of the above).
    pub grouped: u64,
    /// The batches those puts were written in (one transaction each; a
    /// batch whose transaction failed, its rows then written one by one,
    /// counts once).
    pub group_commits: u64,
}

/// Where point reads ran; see [`SqliteBackend::read_counts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ReadCounts {
    /// Reads answered inline by a reader connection.
    pub inline: u64,
    /// Reads handed to the writer thread.
    pub writer: u64,
}

/// Whether `error` says the database file is damaged or not a database.
fn is_corrupt(error: &Error) -> bool {
    std::error::Error::source(error)
        .and_then(|s| s.downcast_ref::<rusqlite::Error>())
        .and_then(rusqlite::Error::sqlite_error_code)
        .is_some_and(|code| matches!(code, ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt))
}

/// Renames the damaged database file `path` — and its `-wal`, `-shm` and
/// `-journal` files, so the copy opens as it was — to
/// `<path>.corrupt-<ms since the epoch>[-wal|-shm|-journal]`; returns the
/// new name of the database file.
fn move_aside(path: &Path) -> Result<PathBuf> {
    let fail = |what: &str, e: std::io::Error| {
        Error::new(
            ErrorKind::Backend,
            format!(
                "the database file {} is damaged, and moving it aside failed: {what}: {e}",
                path.display()
            ),
        )
        .with_backend(NAME)
        .with_source(e)
    };
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    // A new name, never an existing file's.
    let stamp = (0..100u128)
        .map(|n| format!(".corrupt-{}", millis + n))
        .find(|stamp| !with(stamp).exists())
        .ok_or_else(|| {
            fail(
                "no free name",
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            )
        })?;
    for companion in ["-wal", "-shm", "-journal"] {
        match std::fs::rename(with(companion), with(&format!("{stamp}{companion}"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(fail(&format!("renaming its {companion} file"), e));
            }
            _ => {}
        }
    }
    let aside = with(&stamp);
    std::fs::rename(path, &aside).map_err(|e| fail("renaming it", e))?;
    Ok(aside)
}

/// WAL, `synchronous=NORMAL`, the busy timeout and the statement cache.
/// Returns whether single-row writes may run inline: in memory, or on a
/// file in WAL mode (with a rollback journal every commit syncs the file,
/// which is no work for a runtime thread).
fn configure_writer(
    conn: &mut Connection,
    target: &Target,
    busy_timeout: std::time::Duration,
) -> Result<bool> {
    conn.busy_timeout(busy_timeout).map_err(map_sqlite_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if let Target::File(path) = target {
        let mode = switch_to_wal(conn, busy_timeout).map_err(map_sqlite_error)?;
        let wal = mode.eq_ignore_ascii_case("wal");
        if !wal {
            tracing::warn!(
                path = %path.display(),
                journal_mode = %mode,
                "respcache-sqlite: WAL is not available; readers will often wait for the writer, \
                 and every write goes through the writer thread"
            );
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(map_sqlite_error)?;
        // Reads the whole schema: a damaged file shows here, at open time.
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |row| {
            row.get::<_, i64>(0)
        })
        .map_err(map_sqlite_error)?;
        return Ok(wal);
    }
    Ok(true)
}

/// Sets `journal_mode = WAL`; returns the mode the file is in.
///
/// While another connection holds the write lock of a file still in
/// rollback mode, SQLite answers `BUSY` at once instead of calling the busy
/// handler (waiting could deadlock), as when several processes open a new
/// file together. So a refusal is retried until the busy timeout, like a
/// write that waits for a lock (this runs on the writer thread).
fn switch_to_wal(conn: &Connection, busy_timeout: std::time::Duration) -> rusqlite::Result<String> {
    let deadline = std::time::Instant::now() + busy_timeout;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)) {
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// Opens `count` read-only connections with no busy wait: a reader that
/// meets a lock hands its query to the writer instead of sleeping on the
/// caller's task.
fn open_readers(target: &Target, count: usize) -> Result<Vec<Connection>> {
    (0..count)
        .map(|_| {
            let conn = Connection::open_with_flags(target.name(), target.flags(false))
                .map_err(map_sqlite_error)?;
            conn.busy_timeout(std::time::Duration::ZERO)
                .map_err(map_sqlite_error)?;
            conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            Ok(conn)
        })
        .collect()
}

/// Opens the read-write connection for inline single-row writes:
/// `synchronous=NORMAL` like the writer (a per-connection setting: without
/// it every commit would sync the WAL), no auto-checkpoint (see
/// [`InlineWriter`]), and then no busy wait (a write that meets a lock goes
/// to the writer thread instead of sleeping on the caller's task).
///
/// Runs on the writer thread, so until then it waits for a lock as the
/// writer does: `PRAGMA synchronous` reads the schema, which another
/// process may hold locked (switching the file to WAL, say).
fn open_inline_writer(target: &Target, busy_timeout: std::time::Duration) -> Result<Connection> {
    let conn =
        Connection::open_with_flags(target.name(), target.flags(true)).map_err(map_sqlite_error)?;
    conn.busy_timeout(busy_timeout).map_err(map_sqlite_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if let Target::File(_) = target {
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(map_sqlite_error)?;
        hook_wal(&conn);
    }
    conn.busy_timeout(std::time::Duration::ZERO)
        .map_err(map_sqlite_error)?;
    Ok(conn)
}

impl Shared {
    /// Runs `f` on the writer connection's thread. Inline writes stay out
    /// from when the call is queued until it has run (see [`InlineWriter`]),
    /// and puts that come after it join a batch queued behind it.
    pub(crate) async fn call<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.group.seal();
        self.send(f).await
    }

    /// Adds `entry` to the open batch of puts (queuing the batch's commit
    /// on the writer thread when it starts one) and waits for its commit.
    pub(crate) async fn put_grouped(&self, table: Arc<Table>, entry: Entry) -> Result<()> {
        let done = self.group.join(table, entry, |call| {
            // Sent now, not when awaited: the puts that join the batch wait
            // for this call even if this put's future is dropped. A call
            // that cannot be sent is dropped here, unrun.
            let send = std::pin::pin!(self.send(move |conn| {
                call.run(conn);
                Ok(())
            }));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            match send.poll(&mut cx) {
                std::task::Poll::Ready(Err(e)) => Err(e),
                _ => Ok(()),
            }
        })?;
        match done.await {
            Ok(outcome) => outcome.map_err(map_sqlite_error),
            Err(_) => Err(Error::closed(NAME)),
        }
    }

    /// [`call`](Self::call) without sealing the open batch.
    async fn send<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        if self.guard.is_closed() {
            return Err(Error::closed(NAME));
        }
        let queued = self.inline.queue();
        self.writer
            .call(move |conn| {
                let _no_inline_write = queued.hold();
                let out = f(conn);
                queued.checkpoint_if_due(conn);
                out
            })
            .await
            .map_err(map_call_error)
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let location: &dyn fmt::Debug = match &self.path {
            Some(path) => path,
            None => &"memory",
        };
        f.debug_struct("SqliteBackend")
            .field("location", location)
            .field("readers", &self.readers.len())
            .field("closed", &self.guard.is_closed())
            .finish()
    }
}

impl fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.shared, f)
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    /// SQLite's `SQLITE_MAX_LENGTH` of the bundled build: no value, and no
    /// row (payload, metadata and key together), may be larger. A larger
    /// write fails with [`PayloadTooLarge`](ErrorKind::PayloadTooLarge).
    fn limits(&self) -> Limits {
        Limits::max_payload(MAX_LENGTH)
    }

    async fn open_store(&self, spec: &StoreSpec) -> Result<Arc<DynStore>> {
        let guard = &self.shared.guard;
        guard.check_store(&spec.repository, Operation::OpenStore)?;
        let table = Arc::new(Table::new(&spec.cache, &spec.repository, &spec.schema));
        let create = Arc::clone(&table);
        self.shared
            .call(move |conn| create.create(conn))
            .await
            .map_err(guard.context(Operation::OpenStore, Some(&spec.repository)))?;
        self.shared.accounting.register(&table);
        let store = Arc::new(SqliteStore::new(Arc::clone(&self.shared), table));
        Ok(guard.wrap(spec, store))
    }

    async fn drop_store(&self, cache: &Name, repository: &Name) -> Result<()> {
        let guard = &self.shared.guard;
        guard.check_store(repository, Operation::DropStore)?;
        let table = crate::naming::table_name(cache, repository);
        self.shared
            .call(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(map_sqlite_error)?;
                tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", quote(&table)))
                    .map_err(map_sqlite_error)?;
                tx.execute_batch(&crate::tag_index::drop_sql(&table))
                    .map_err(map_sqlite_error)?;
                tx.commit().map_err(map_sqlite_error)
            })
            .await
            .map_err(guard.context(Operation::DropStore, Some(repository)))
    }

    async fn list_stores(&self, cache: &Name) -> Result<Vec<Name>> {
        let guard = &self.shared.guard;
        guard.check(Operation::ListStores)?;
        let prefix = table_prefix(cache);
        let mut names = self
            .shared
            .call(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT name FROM sqlite_schema WHERE type = 'table' \
                         AND substr(name, 1, ?2) = ?1",
                    )
                    .map_err(map_sqlite_error)?;
                let tables = stmt
                    .query_map(rusqlite::params![prefix, prefix.len() as i64], |row| {
                        row.get::<_, String>(0)
                    })
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
                    .map_err(map_sqlite_error)?;
                Ok(tables
                    .iter()
                    .filter_map(|t| repository_of(&prefix, t))
                    .collect::<Vec<Name>>())
            })
            .await
            .map_err(guard.context(Operation::ListStores, None))?;
        names.sort();
        Ok(names)
    }

    /// Read from the table's key columns (SQLite's are typed); `None` if
    /// the store does not exist.
    async fn stored_schema(&self, cache: &Name, repository: &Name) -> Result<Option<KeySchema>> {
        let table = crate::naming::table_name(cache, repository);
        self.shared
            .call(move |conn| crate::schema::stored_schema(conn, &table))
            .await
            .map_err(|e| e.with_repository(repository.as_str()))
    }

    async fn close(&self) -> Result<()> {
        if self.shared.closing.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // The use times of rows read since the last flush; best effort.
        let open = self.shared.accounting.open_tables();
        let _ = self
            .shared
            .call(move |c| {
                for table in &open {
                    let _ = table.flush_touched(c);
                }
                Ok(())
            })
            .await;
        self.shared.guard.close();
        self.shared.readers.close();
        // On the writer thread: waits for an inline write in progress there,
        // not on this runtime thread. Fails only if the thread is gone, and
        // then the connection closes when the backend drops.
        let inline = Arc::clone(&self.shared.inline);
        let _ = self
            .shared
            .writer
            .call(move |_| {
                inline.close();
                Ok::<_, Error>(())
            })
            .await;
        self.shared
            .writer
            .clone()
            .close()
            .await
            .map_err(|e| self.shared.guard.context(Operation::Close, None)(map_close_error(e)))
    }

    fn eviction(&self) -> Option<&dyn Eviction> {
        Some(self)
    }
}

/// The budget of the whole file: every respcache table in it, whichever
/// cache it belongs to (see `usage.rs` for how use times and sizes are
/// kept).
#[async_trait]
impl Eviction for SqliteBackend {
    fn budget(&self) -> Budget {
        self.shared.accounting.budget
    }

    async fn usage(&self) -> Result<Usage> {
        Ok(self.shared.count_usage().await?.1)
    }

    async fn trim_to(&self, target: Budget, progress: ProgressFn<'_>) -> Result<TrimProgress> {
        self.shared.trim_to(target, progress).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Opening the inline connection reads the schema (`PRAGMA synchronous`
    /// needs it); while another process holds the lock — switching the file
    /// to WAL, say — that must wait like the writer, not fail at once.
    #[test]
    fn the_inline_writer_opens_while_another_connection_holds_the_lock()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("locked.sqlite");
        let other = Connection::open(&path)?;
        other.execute_batch("CREATE TABLE t (x); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);")?;
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            other.execute_batch("COMMIT")
        });
        let opened = open_inline_writer(&Target::File(path), Duration::from_secs(5));
        release.join().map_err(|_| "thread")??;
        assert!(opened.is_ok(), "{:?}", opened.err());
        Ok(())
    }
}
