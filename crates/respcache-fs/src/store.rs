//! [`FsStore`]: one repository's entries, one file per entry.

use std::fs::File;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use respcache_core::envelope;
use respcache_core::stats::record_undecodable;
use respcache_core::{Entry, Error, ErrorKind, Key, Name, Result, Select, Store, Timestamp};
use tokio::sync::mpsc;

use crate::SCHEME;
use crate::backend::{Shared, blocking};
use crate::error::{At, map_io_error};
use crate::file::{self, ExpiryUpdate};
use crate::layout::entry_path;
use crate::tag_index;
use crate::usage::charged;
use crate::walk::{Found, walk};

/// Entry files up to this size are read by `get` on the calling task; larger
/// ones on a blocking thread.
///
/// Measured on the reference machine (2 vCPUs, ext4, release build, page
/// cache warm; `cargo bench -p respcache-fs --bench hit`): `std::fs::read`
/// takes about 1.3 µs for 1 KiB, 3.6 µs for 64 KiB and 54 µs for 1 MiB,
/// while a hop to a blocking thread alone costs 15–40 µs (~60 µs in the
/// bench's runs of 2026-12-07, where a 100 KB hit took 73 µs against a
/// 9 µs read). A 256 KiB read takes ~14 µs: up to that size the read is
/// cheaper than the hop at its best; beyond, it would hold up the
/// runtime's worker for longer than a hop costs. (64 KiB until the twelfth
/// session: the same rule, read too strictly.)
pub const INLINE_READ_MAX: u64 = 256 * 1024;

/// A temporary file older than this was left by a writer that died; `clear`
/// removes it.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(60);

/// How many entries `scan` reads ahead of its consumer.
const SCAN_BUFFER: usize = 64;

/// One repository's entries in an [`FsBackend`](crate::FsBackend): the
/// folder `<root>/<cache>/<repository>`, one envelope file per entry at
/// `<aa>/<bb>/<digest-hex>`. See [`FsBackend`](crate::FsBackend) for the
/// semantics.
#[derive(Debug)]
pub struct FsStore {
    shared: Arc<Shared>,
    dir: PathBuf,
    repository: Name,
}

impl FsStore {
    pub(crate) fn new(shared: Arc<Shared>, dir: PathBuf, repository: Name) -> Self {
        FsStore {
            shared,
            dir,
            repository,
        }
    }

    /// The store's folder, `<root>/<cache>/<repository>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds `key`'s entry (whether or not it exists).
    pub fn entry_path(&self, key: &Key) -> PathBuf {
        entry_path(&self.dir, key)
    }

    fn reader(&self) -> Reader {
        Reader {
            dir: self.dir.clone(),
            repository: self.repository.clone(),
        }
    }
}

/// What the blocking side of a read needs: where the store is and its name
/// (for the undecodable-entry log).
#[derive(Clone, Debug)]
struct Reader {
    dir: PathBuf,
    repository: Name,
}

impl Reader {
    /// The entry under `key`, or `None` if missing or undecodable.
    fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let path = entry_path(&self.dir, key);
        let bytes = match file::read_file(&path) {
            Err(e) if is_folder(&e) => {
                self.foreign(&path);
                return Ok(None);
            }
            other => other.map_err(|e| io_error(e, "reading", &path))?,
        };
        Ok(bytes.and_then(|bytes| self.decode(&bytes, |k| k == key)))
    }

    /// Records a folder (or anything but a file) where an entry file
    /// belongs: not respcache's, skipped, counted as undecodable.
    fn foreign(&self, path: &Path) {
        self.undecodable(
            &Error::new(
                ErrorKind::Codec,
                format!(
                    "{} is not an entry file (a folder?): skipped",
                    path.display()
                ),
            )
            .with_backend(SCHEME),
        );
    }

    /// Decodes an entry file's bytes; anything undecodable, or an entry whose
    /// key does not belong to the file, is recorded and is a miss.
    fn decode(&self, bytes: &[u8], key_fits: impl FnOnce(&Key) -> bool) -> Option<Entry> {
        match envelope::decode(bytes) {
            Ok(entry) if key_fits(&entry.key) => Some(entry),
            Ok(_) => {
                self.undecodable(&Error::new(
                    ErrorKind::Codec,
                    "the entry file holds another key",
                ));
                None
            }
            Err(e) => {
                self.undecodable(&e);
                None
            }
        }
    }

    fn undecodable(&self, error: &Error) {
        record_undecodable(SCHEME, self.repository.as_str(), error);
    }

    /// The entry in the file at `path` if `select` matches it at `now`
    /// (judged from the header before reading the rest).
    fn read_selected(&self, path: &Path, select: Select, now: Timestamp) -> Result<Option<Entry>> {
        let Some(mut f) = file::open(path).map_err(|e| io_error(e, "opening", path))? else {
            return Ok(None);
        };
        let head = file::read_header(&mut f).map_err(|e| io_error(e, "reading", path))?;
        match envelope::decode_header(&head) {
            Ok(header) if !select.matches(header.expires_at, now) => return Ok(None),
            Ok(_) => {}
            Err(e) => {
                self.undecodable(&e);
                return Ok(None);
            }
        }
        let len = f.metadata().map_or(0, |m| m.len());
        let bytes = file::read_rest(&mut f, head, len).map_err(|e| io_error(e, "reading", path))?;
        Ok(self.decode(&bytes, |k| entry_path(&self.dir, k) == path))
    }
}

/// Whether an I/O error says a path holds a folder where a file belongs.
fn is_folder(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::IsADirectory
}

fn io_error(error: io::Error, doing: &str, path: &Path) -> Error {
    map_io_error(error, At::Store, format_args!("{doing} {}", path.display()))
}

/// What the header of the file at `path` says; `None` if there is no file.
fn read_header_of(path: &Path) -> io::Result<Option<Result<envelope::Header>>> {
    let Some(mut f) = file::open(path)? else {
        return Ok(None);
    };
    let head = file::read_header(&mut f)?;
    Ok(Some(envelope::decode_header(&head)))
}

/// Reads an opened entry file of `len` bytes to the end.
fn read_opened(mut f: File, len: u64, path: &Path) -> Result<Vec<u8>> {
    file::read_rest(&mut f, Vec::new(), len).map_err(|e| io_error(e, "reading", path))
}

/// Whether a temporary file is old enough to be a dead writer's leftover.
fn is_stale_temp(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age > STALE_TEMP_AGE)
}

#[async_trait]
impl Store for FsStore {
    /// Opens the file on the calling task; reads it there too when it is at
    /// most [`INLINE_READ_MAX`] bytes, otherwise on a blocking thread.
    async fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let path = self.entry_path(key);
        let Some(f) = file::open(&path).map_err(|e| io_error(e, "opening", &path))? else {
            return Ok(None);
        };
        let meta = f.metadata().map_err(|e| io_error(e, "reading", &path))?;
        let reader = self.reader();
        if !meta.is_file() {
            reader.foreign(&path);
            return Ok(None);
        }
        let len = meta.len();
        let found = if len <= INLINE_READ_MAX {
            let bytes = read_opened(f, len, &path)?;
            reader.decode(&bytes, |k| k == key)
        } else {
            let key = key.clone();
            let read = path.clone();
            blocking(move || {
                let bytes = read_opened(f, len, &read)?;
                Ok::<_, Error>(reader.decode(&bytes, |k| *k == key))
            })
            .await??
        };
        if found.is_some() {
            self.shared.touched(path);
        }
        Ok(found)
    }

    /// One blocking task reads the whole batch.
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entry>>> {
        if let [key] = keys {
            return Ok(vec![self.get(key).await?]);
        }
        let reader = self.reader();
        let keys = keys.to_vec();
        let found: Vec<Option<Entry>> = blocking(move || {
            keys.iter()
                .map(|key| reader.get(key))
                .collect::<Result<Vec<_>>>()
        })
        .await??;
        for entry in found.iter().flatten() {
            self.shared.touched(self.entry_path(&entry.key));
        }
        Ok(found)
    }

    async fn put(&self, entry: Entry) -> Result<()> {
        let path = self.entry_path(&entry.key);
        let fsync = self.shared.config.fsync;
        let dir = self.dir.clone();
        let written = blocking(move || {
            tag_index::mark(&dir, &path, &entry.tags, fsync)
                .map_err(|e| io_error(e, "indexing the tags of", &path))?;
            let bytes = envelope::encode(&entry);
            file::write_atomic(&path, &bytes, fsync).map_err(|e| io_error(e, "writing", &path))?;
            Ok::<_, Error>(charged(bytes.len()))
        })
        .await??;
        self.shared.after_write(written, 1).await
    }

    /// One blocking task writes the whole batch, each entry atomically (the
    /// batch as a whole is not: a failure leaves the earlier entries written).
    async fn put_many(&self, entries: Vec<Entry>) -> Result<()> {
        let dir = self.dir.clone();
        let fsync = self.shared.config.fsync;
        let n = entries.len() as u64;
        let written = blocking(move || {
            let mut written = 0;
            for entry in entries {
                let path = entry_path(&dir, &entry.key);
                tag_index::mark(&dir, &path, &entry.tags, fsync)
                    .map_err(|e| io_error(e, "indexing the tags of", &path))?;
                let bytes = envelope::encode(&entry);
                file::write_atomic(&path, &bytes, fsync)
                    .map_err(|e| io_error(e, "writing", &path))?;
                written += charged(bytes.len());
            }
            Ok::<_, Error>(written)
        })
        .await??;
        self.shared.after_write(written, n).await
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        let path = self.entry_path(key);
        blocking(move || file::remove(&path).map_err(|e| io_error(e, "removing", &path))).await?
    }

    /// Reads the tag's marker folder and deletes, on one blocking task,
    /// each marked entry that still carries the tag (see `tag_index.rs`).
    async fn purge_tag(&self, tag: &str) -> Result<u64> {
        respcache_core::tags::validate_tag(tag)?;
        let dir = self.dir.clone();
        let tag = tag.to_owned();
        blocking(move || {
            tag_index::purge(&dir, &tag).map_err(|e| io_error(e, "purging a tag in", &dir))
        })
        .await?
    }

    /// One blocking task removes the whole batch.
    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        let paths: Vec<PathBuf> = keys.iter().map(|k| self.entry_path(k)).collect();
        blocking(move || {
            let mut removed = 0;
            for path in paths {
                if file::remove(&path).map_err(|e| io_error(e, "removing", &path))? {
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await?
    }

    /// Reads only the 24-byte header, on the calling task.
    async fn contains(&self, key: &Key, now: Timestamp) -> Result<bool> {
        let path = self.entry_path(key);
        let header = match read_header_of(&path) {
            Err(e) if is_folder(&e) => {
                self.reader().foreign(&path);
                return Ok(false);
            }
            other => other.map_err(|e| io_error(e, "reading", &path))?,
        };
        match header {
            None => Ok(false),
            Some(Ok(header)) => Ok(Select::Fresh.matches(header.expires_at, now)),
            Some(Err(e)) => {
                self.reader().undecodable(&e);
                Ok(false)
            }
        }
    }

    /// Walks the store on a blocking thread, reading each file's header only.
    async fn count(&self, select: Select, now: Timestamp) -> Result<u64> {
        let dir = self.dir.clone();
        let reader = self.reader();
        blocking(move || {
            let mut n = 0;
            walk(&dir, false, |found| {
                match found {
                    Found::Foreign(path) => reader.foreign(path),
                    Found::Entry(path) => {
                        if let Some(Ok(header)) = read_header_of(path)?
                            && select.matches(header.expires_at, now)
                        {
                            n += 1;
                        }
                    }
                    Found::Temp(_) => {}
                }
                Ok(ControlFlow::Continue(()))
            })
            .map_err(|e| io_error(e, "walking", &dir))?;
            Ok(n)
        })
        .await?
    }

    /// Walks the store on a blocking thread, judging each file by its
    /// header. Also removes temporary files older than [`STALE_TEMP_AGE`]
    /// (left by writers that died), undecodable files when `select` is
    /// [`Select::All`], and fan-out folders left empty.
    async fn clear(&self, select: Select, now: Timestamp) -> Result<u64> {
        let dir = self.dir.clone();
        let reader = self.reader();
        blocking(move || {
            let mut n = 0;
            walk(&dir, true, |found| {
                match found {
                    Found::Foreign(path) => reader.foreign(path),
                    Found::Temp(path) => {
                        if is_stale_temp(path) {
                            file::remove(path)?;
                        }
                    }
                    Found::Entry(path) => match read_header_of(path)? {
                        Some(Ok(_)) if select == Select::All => {
                            n += u64::from(file::remove(path)?);
                        }
                        // The file may be replaced after its header was
                        // read: removed only if it still matches then.
                        Some(Ok(header)) if select.matches(header.expires_at, now) => {
                            let matches = |head: &[u8]| {
                                envelope::decode_header(head)
                                    .is_ok_and(|h| select.matches(h.expires_at, now))
                            };
                            n += u64::from(file::remove_if(path, matches)?);
                        }
                        Some(Err(e)) if select == Select::All => {
                            reader.undecodable(&e);
                            file::remove(path)?;
                        }
                        _ => {}
                    },
                }
                Ok(ControlFlow::Continue(()))
            })
            .map_err(|e| io_error(e, "clearing", &dir))?;
            Ok(n)
        })
        .await?
    }

    /// A blocking task walks the store and sends the matching entries
    /// through a channel of 64 slots, so memory stays bounded;
    /// dropping the stream stops the walk.
    fn scan(&self, select: Select, now: Timestamp) -> BoxStream<'static, Result<Entry>> {
        let shared = Arc::clone(&self.shared);
        let reader = self.reader();
        // Spawned on first poll, so calling `scan` outside a runtime is fine.
        let start = async move {
            let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
                Error::new(
                    ErrorKind::Backend,
                    format!("scan must be polled inside a tokio runtime: {e}"),
                )
                .with_backend(SCHEME)
            })?;
            let (tx, rx) = mpsc::channel(SCAN_BUFFER);
            runtime.spawn_blocking(move || scan_blocking(&shared, &reader, select, now, &tx));
            Ok::<_, Error>(rx)
        };
        futures::stream::once(start)
            .flat_map(|started| match started {
                Ok(rx) => futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|item| (item, rx))
                })
                .boxed(),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            })
            .boxed()
    }

    /// Rewrites the expiry inside the file's header, in place, on a blocking
    /// thread (see the backend docs for why in place).
    async fn set_expiry(&self, key: &Key, expires_at: Option<Timestamp>) -> Result<bool> {
        let path = self.entry_path(key);
        let fsync = self.shared.config.fsync;
        let reader = self.reader();
        blocking(move || {
            match file::set_expiry(&path, expires_at, fsync)
                .map_err(|e| io_error(e, "updating", &path))?
            {
                ExpiryUpdate::Missing => Ok(false),
                ExpiryUpdate::Undecodable(e) => {
                    reader.undecodable(&e);
                    Ok(false)
                }
                ExpiryUpdate::Done => Ok(true),
            }
        })
        .await?
    }

    /// Under the store's lease lock (see [`crate::lease`]).
    async fn acquire_lease(
        &self,
        key: &Key,
        ttl: std::time::Duration,
    ) -> Result<Option<respcache_core::LeaseToken>> {
        let token = respcache_core::LeaseToken::generate();
        let now = respcache_core::Timestamp::now();
        let expires = now.saturating_add(std::time::Duration::from_millis(
            respcache_core::lease::ttl_millis(ttl),
        ));
        let (dir, path) = (self.dir.clone(), crate::lease::lease_path(&self.dir, key));
        let taken = blocking(move || {
            crate::lease::acquire(&dir, &path, &token, expires, now)
                .map(|taken| taken.then_some(token))
                .map_err(|e| io_error(e, "taking the lease", &path))
        })
        .await??;
        Ok(taken)
    }

    /// Under the store's lease lock (see [`crate::lease`]).
    async fn release_lease(&self, key: &Key, token: &respcache_core::LeaseToken) -> Result<bool> {
        let now = respcache_core::Timestamp::now();
        let (dir, path, token) = (
            self.dir.clone(),
            crate::lease::lease_path(&self.dir, key),
            token.clone(),
        );
        blocking(move || {
            crate::lease::release(&dir, &path, &token, now)
                .map_err(|e| io_error(e, "releasing the lease", &path))
        })
        .await?
    }
}

/// The blocking side of `scan`: walks the store and sends every matching
/// entry, stopping early when the stream is dropped or the backend closed.
fn scan_blocking(
    shared: &Shared,
    reader: &Reader,
    select: Select,
    now: Timestamp,
    tx: &mpsc::Sender<Result<Entry>>,
) {
    let walked = walk(&reader.dir, false, |found| {
        let path = match found {
            Found::Entry(path) => path,
            Found::Foreign(path) => {
                reader.foreign(path);
                return Ok(ControlFlow::Continue(()));
            }
            Found::Temp(_) => return Ok(ControlFlow::Continue(())),
        };
        let item = if shared.is_closed() {
            Err(Error::closed(SCHEME))
        } else {
            match reader.read_selected(path, select, now) {
                Ok(None) => return Ok(ControlFlow::Continue(())),
                Ok(Some(entry)) => Ok(entry),
                Err(e) => Err(e),
            }
        };
        let stop = item.is_err();
        // An error means the receiver is gone: nobody wants more.
        if tx.blocking_send(item).is_err() || stop {
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
    });
    if let Err(e) = walked {
        let _ = tx.blocking_send(Err(io_error(e, "walking", &reader.dir)));
    }
}
