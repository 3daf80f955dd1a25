//! [`EconomyBackend`]: wraps any backend with the storage-economy options
//! the core owns — compressed payloads and the background cleanup — so
//! every backend, built in or a user's, gets them.
//!
//! Every store it opens reads compressed payloads back (a cache written with
//! compression on stays readable with it off); with
//! [`EconomyOptions::compression`] set it also writes them. The
//! [`Repository`](crate::Repository) and the HTTP layer only ever see plain
//! payload bytes. `respcache::connect(url)` always wraps its backend in one.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::backend::{Backend, DynStore, Limits, Store, StoreSpec};
use crate::budget::Eviction;
use crate::cleanup::{CleanupOptions, CleanupTask, Watched};
use crate::compress::{self, Algorithm};
use crate::entry::{Entry, Select};
use crate::error::{Error, ErrorKind, Result};
use crate::key::{Key, KeySchema};
use crate::name::Name;
use crate::size::parse_size;
use crate::time::Timestamp;

/// Payloads at least this long are compressed by default (smaller ones
/// gain little and every hit would pay to decompress them).
pub const DEFAULT_COMPRESS_MIN: usize = 512;

/// Payload compression: the algorithm and the smallest payload compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Compression {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Payloads shorter than this are stored as they are.
    pub min_size: usize,
}

impl Compression {
    /// `algorithm` for payloads of [`DEFAULT_COMPRESS_MIN`] bytes or more.
    pub fn new(algorithm: Algorithm) -> Self {
        Compression {
            algorithm,
            min_size: DEFAULT_COMPRESS_MIN,
        }
    }

    /// Sets the smallest payload compressed.
    pub fn with_min_size(mut self, min_size: usize) -> Self {
        self.min_size = min_size;
        self
    }
}

/// What an [`EconomyBackend`] adds to the backend it wraps.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct EconomyOptions {
    /// Compress stored payloads (`None`: store them as they are; compressed
    /// ones still read back).
    pub compression: Option<Compression>,
    /// Run the background cleanup.
    pub cleanup: Option<CleanupOptions>,
}

impl EconomyOptions {
    /// Sets the compression.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = Some(compression);
        self
    }

    /// Sets the background cleanup.
    pub fn with_cleanup(mut self, cleanup: CleanupOptions) -> Self {
        self.cleanup = Some(cleanup);
        self
    }

    /// Takes the economy options out of a backend URL's query and returns
    /// the URL without them (so the backend never sees them):
    ///
    /// | option | value | meaning |
    /// |---|---|---|
    /// | `compress` | `auto` (lz4 below 16 KiB, zstd above), `zstd`, `lz4`, `none` | compress payloads of `compress_min` bytes or more |
    /// | `compress_min` | a size (`1KiB`, `4096`) | default 512 bytes |
    /// | `cleanup` | a duration (`30s`, `10m`, `1h`) | run the background cleanup this often |
    ///
    /// ```
    /// use respcache_core::economy::EconomyOptions;
    /// let (url, options) = EconomyOptions::from_url("sqlite:///c.db?max_bytes=5MB&compress=zstd&cleanup=10m")?;
    /// assert_eq!(url, "sqlite:///c.db?max_bytes=5MB");
    /// assert!(options.compression.is_some() && options.cleanup.is_some());
    /// # Ok::<(), respcache_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`] for a malformed value.
    pub fn from_url(url: &str) -> Result<(String, EconomyOptions)> {
        let mut options = EconomyOptions::default();
        let mut algorithm = None;
        let mut min_size = DEFAULT_COMPRESS_MIN;
        let rest = crate::options::take_query_options(url, |name, value| {
            match name {
                "compress" => {
                    algorithm = match value {
                        "none" | "" | "false" => None,
                        other => Some(Algorithm::parse(other).ok_or_else(|| {
                            config(format!(
                                "option compress={other:?}: use auto, zstd, lz4 or none"
                            ))
                        })?),
                    }
                }
                "compress_min" => {
                    min_size = usize::try_from(
                        parse_size(value)
                            .map_err(|e| config(format!("option compress_min: {e}")))?,
                    )
                    .map_err(|_| config("option compress_min is too large".to_owned()))?;
                }
                "cleanup" => {
                    let every = crate::options::duration("cleanup", value)
                        .map_err(|e| config(e.message().to_owned()))?;
                    if every.is_zero() {
                        return Err(config(
                            "option cleanup=0: give a period like 10m".to_owned(),
                        ));
                    }
                    options.cleanup = Some(CleanupOptions::every(every));
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        options.compression = algorithm.map(|a| Compression::new(a).with_min_size(min_size));
        Ok((rest, options))
    }
}

fn config(message: String) -> Error {
    Error::new(ErrorKind::Configuration, message)
}

/// A backend with the core's storage-economy options (see the module docs).
///
/// ```
/// # async fn demo() -> respcache_core::Result<()> {
/// use std::sync::Arc;
/// use respcache_core::compress::Algorithm;
/// use respcache_core::economy::{Compression, EconomyBackend, EconomyOptions};
/// use respcache_core::{Backend, Entry, Key, KeySchema, MemoryBackend, Name, StoreSpec, Timestamp};
///
/// let backend = EconomyBackend::new(
///     Arc::new(MemoryBackend::new()),
///     EconomyOptions::default().with_compression(Compression::new(Algorithm::Zstd)),
/// );
/// let spec = StoreSpec::new(Name::new("c")?, Name::new("pages")?, KeySchema::default());
/// let store = backend.open_store(&spec).await?;
/// let html = "<p>hello</p>".repeat(1000);
/// store.put(Entry::new(Key::new("GET", []), Timestamp::from_millis(0), html.clone())).await?;
/// let back = store.get(&Key::new("GET", [])).await?.map(|e| e.payload);
/// assert_eq!(back.as_deref(), Some(html.as_bytes()));
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Debug)]
pub struct EconomyBackend {
    inner: Arc<dyn Backend>,
    compression: Option<Compression>,
    watched: Watched,
    cleanup: Mutex<Option<CleanupTask>>,
    cleanup_options: Option<CleanupOptions>,
}

impl EconomyBackend {
    /// Wraps `inner`. The cleanup task, if asked for, starts with the first
    /// store opened (on that caller's tokio runtime) and stops on
    /// [`close`](Backend::close) or drop.
    pub fn new(inner: Arc<dyn Backend>, options: EconomyOptions) -> Self {
        EconomyBackend {
            inner,
            compression: options.compression,
            watched: Watched::default(),
            cleanup: Mutex::new(None),
            cleanup_options: options.cleanup,
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<dyn Backend> {
        &self.inner
    }

    /// The compression, if on.
    pub fn compression(&self) -> Option<Compression> {
        self.compression
    }

    /// Whether the cleanup task runs.
    pub fn cleanup_running(&self) -> bool {
        self.cleanup
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn watch(&self, store: &Arc<DynStore>, spec: &StoreSpec) {
        let Some(options) = &self.cleanup_options else {
            return;
        };
        self.watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((Arc::downgrade(store), spec.clone()));
        let mut task = self.cleanup.lock().unwrap_or_else(PoisonError::into_inner);
        if task.is_none() && tokio::runtime::Handle::try_current().is_ok() {
            *task = Some(CleanupTask::spawn(
                Arc::clone(&self.watched),
                options.clone(),
            ));
        }
    }
}

#[async_trait]
impl Backend for EconomyBackend {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn limits(&self) -> Limits {
        self.inner.limits()
    }

    async fn open_store(&self, spec: &StoreSpec) -> Result<Arc<DynStore>> {
        let inner = self.inner.open_store(spec).await?;
        let store: Arc<DynStore> = Arc::new(CompressedStore {
            inner,
            compression: self.compression,
        });
        self.watch(&store, spec);
        Ok(store)
    }

    async fn drop_store(&self, cache: &Name, repository: &Name) -> Result<()> {
        self.inner.drop_store(cache, repository).await
    }

    async fn list_stores(&self, cache: &Name) -> Result<Vec<Name>> {
        self.inner.list_stores(cache).await
    }

    async fn stored_schema(&self, cache: &Name, repository: &Name) -> Result<Option<KeySchema>> {
        self.inner.stored_schema(cache, repository).await
    }

    async fn close(&self) -> Result<()> {
        if let Some(task) = self
            .cleanup
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.stop();
        }
        self.inner.close().await
    }

    fn eviction(&self) -> Option<&dyn Eviction> {
        self.inner.eviction()
    }
}

/// Payloads above this size are compressed on a blocking thread.
const INLINE_COMPRESS_MAX: usize = 1 << 20;

/// A store that frames payloads on the way in and unframes them on the way
/// out (see [`crate::compress`]).
#[derive(Debug)]
struct CompressedStore {
    inner: Arc<DynStore>,
    compression: Option<Compression>,
}

impl CompressedStore {
    async fn encode(&self, mut entry: Entry) -> Entry {
        let (algorithm, min) = match self.compression {
            Some(c) => (Some(c.algorithm), c.min_size),
            None => (None, usize::MAX),
        };
        if algorithm.is_some() && entry.payload.len() > INLINE_COMPRESS_MAX {
            let payload = entry.payload.clone();
            if let Ok(framed) =
                tokio::task::spawn_blocking(move || compress::frame(&payload, algorithm, min)).await
            {
                entry.payload = framed;
                return entry;
            }
        }
        entry.payload = compress::frame(&entry.payload, algorithm, min);
        entry
    }
}

fn decode(mut entry: Entry) -> Entry {
    if entry.payload.starts_with(&compress::MAGIC) {
        entry.payload = compress::unframe(std::mem::take(&mut entry.payload));
    }
    entry
}

#[async_trait]
impl Store for CompressedStore {
    async fn get(&self, key: &Key) -> Result<Option<Entry>> {
        Ok(self.inner.get(key).await?.map(decode))
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entry>>> {
        Ok(self
            .inner
            .get_many(keys)
            .await?
            .into_iter()
            .map(|e| e.map(decode))
            .collect())
    }

    async fn put(&self, entry: Entry) -> Result<()> {
        let entry = self.encode(entry).await;
        self.inner.put(entry).await
    }

    async fn put_many(&self, entries: Vec<Entry>) -> Result<()> {
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            out.push(self.encode(entry).await);
        }
        self.inner.put_many(out).await
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        self.inner.delete(key).await
    }

    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        self.inner.delete_many(keys).await
    }

    async fn contains(&self, key: &Key, now: Timestamp) -> Result<bool> {
        self.inner.contains(key, now).await
    }

    async fn count(&self, select: Select, now: Timestamp) -> Result<u64> {
        self.inner.count(select, now).await
    }

    async fn clear(&self, select: Select, now: Timestamp) -> Result<u64> {
        self.inner.clear(select, now).await
    }

    fn scan(&self, select: Select, now: Timestamp) -> BoxStream<'static, Result<Entry>> {
        self.inner
            .scan(select, now)
            .map(|item| item.map(decode))
            .boxed()
    }

    async fn set_expiry(&self, key: &Key, expires_at: Option<Timestamp>) -> Result<bool> {
        self.inner.set_expiry(key, expires_at).await
    }

    async fn set_meta(
        &self,
        key: &Key,
        meta: Option<Bytes>,
        expires_at: Option<Timestamp>,
    ) -> Result<bool> {
        self.inner.set_meta(key, meta, expires_at).await
    }

    async fn acquire_lease(
        &self,
        key: &Key,
        ttl: std::time::Duration,
    ) -> Result<Option<crate::lease::LeaseToken>> {
        self.inner.acquire_lease(key, ttl).await
    }

    async fn release_lease(&self, key: &Key, token: &crate::lease::LeaseToken) -> Result<bool> {
        self.inner.release_lease(key, token).await
    }

    async fn purge_tag(&self, tag: &str) -> Result<u64> {
        self.inner.purge_tag(tag).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryBackend;

    fn spec() -> StoreSpec {
        StoreSpec::new(
            Name::new("c").unwrap_or_else(|_| unreachable!()),
            Name::new("r").unwrap_or_else(|_| unreachable!()),
            KeySchema::default(),
        )
    }

    #[tokio::test]
    async fn compressed_entries_read_back_without_the_option() -> Result<()> {
        let memory: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let writer = EconomyBackend::new(
            Arc::clone(&memory),
            EconomyOptions::default().with_compression(Compression::new(Algorithm::Zstd)),
        );
        let body = Bytes::from("<li>row</li>".repeat(5000));
        let key = Key::new("GET", []);
        writer
            .open_store(&spec())
            .await?
            .put(Entry::new(
                key.clone(),
                Timestamp::from_millis(1),
                body.clone(),
            ))
            .await?;
        let raw = memory.open_store(&spec()).await?.get(&key).await?;
        let raw = raw.map(|e| e.payload).unwrap_or_default();
        assert!(compress::is_compressed(&raw));
        assert!(raw.len() * 3 < body.len());
        let reader = EconomyBackend::new(memory, EconomyOptions::default());
        let store = reader.open_store(&spec()).await?;
        assert_eq!(
            store.get(&key).await?.map(|e| e.payload),
            Some(body.clone())
        );
        let scanned: Vec<Entry> = store
            .scan(Select::All, Timestamp::from_millis(0))
            .filter_map(|e| async move { e.ok() })
            .collect()
            .await;
        assert_eq!(scanned.first().map(|e| e.payload.clone()), Some(body));
        Ok(())
    }

    #[tokio::test]
    async fn the_cleanup_removes_entries_past_expiry_and_retention_then_stops_on_close()
    -> Result<()> {
        use crate::cleanup::CleanupOptions;
        use crate::time::{Clock, ManualClock};
        use std::time::Duration;

        let clock = Arc::new(ManualClock::new());
        let start = clock.now().as_millis();
        let backend = EconomyBackend::new(
            Arc::new(MemoryBackend::new()),
            EconomyOptions::default().with_cleanup(
                CleanupOptions::every(Duration::from_millis(20))
                    .with_batch(7)
                    .with_pause(Duration::from_millis(1))
                    .with_clock(clock.clone()),
            ),
        );
        let plain = backend.open_store(&spec()).await?;
        let kept = backend
            .open_store(
                &StoreSpec::new(
                    Name::new("c").unwrap_or_else(|_| unreachable!()),
                    Name::new("kept").unwrap_or_else(|_| unreachable!()),
                    KeySchema::default(),
                )
                .with_retention(Some(Duration::from_secs(3600))),
            )
            .await?;
        assert!(backend.cleanup_running());
        let entry = |i: i64, expires: i64| {
            Entry::new(
                Key::new(format!("M{i}"), []),
                Timestamp::from_millis(0),
                "x",
            )
            .with_expires_at(Some(Timestamp::from_millis(expires)))
        };
        // 30 stale, 5 fresh in each store.
        for store in [&plain, &kept] {
            for i in 0..30 {
                store.put(entry(i, start - 1_000)).await?;
            }
            for i in 30..35 {
                store.put(entry(i, start + 3_600_000)).await?;
            }
        }
        let now = clock.now();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while plain.count(Select::All, now).await? > 5 {
            assert!(
                std::time::Instant::now() < deadline,
                "the cleanup never ran"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(plain.count(Select::Fresh, now).await?, 5);
        // Within its retention: stale but kept.
        assert_eq!(kept.count(Select::All, now).await?, 35);
        backend.close().await?;
        assert!(!backend.cleanup_running());
        Ok(())
    }

    #[test]
    fn url_options_are_taken_out() -> Result<()> {
        let (url, o) =
            EconomyOptions::from_url("fs:///x?fsync=true&compress=lz4&compress_min=4KiB")?;
        assert_eq!(url, "fs:///x?fsync=true");
        assert_eq!(
            o.compression,
            Some(Compression::new(Algorithm::Lz4).with_min_size(4096))
        );
        let (url, o) = EconomyOptions::from_url("memory://?cleanup=30s")?;
        assert_eq!(url, "memory://");
        assert_eq!(o.cleanup.map(|c| c.every.as_secs()), Some(30));
        for bad in [
            "memory://?compress=gzip",
            "memory://?cleanup=often",
            "memory://?compress_min=x",
        ] {
            let kind = EconomyOptions::from_url(bad).err().map(|e| e.kind());
            assert_eq!(kind, Some(ErrorKind::Configuration), "{bad}");
        }
        Ok(())
    }
}
