//! [`MemoryBackend`]: the reference backend, entries in process memory.
//!
//! It defines what every other backend must answer; the conformance suite
//! runs against it in every `cargo test`.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::backend::{Backend, DynStore, Store, StoreSpec};
use crate::entry::{Entry, Select};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::lease::{LeaseTable, LeaseToken};
use crate::name::Name;
use crate::time::Timestamp;

const NAME: &str = "memory";
const SCAN_PAGE: usize = 256;

type Table = RwLock<BTreeMap<String, Entry>>;

/// A store's table, and whether it was dropped since it was last opened.
///
/// A dropped table stays in the map, emptied, so handles opened before the
/// drop write where handles opened after it read (no acknowledged write is
/// lost); it is listed again once opened or written to.
#[derive(Debug, Default)]
struct Slot {
    table: Arc<Table>,
    dropped: AtomicBool,
    leases: Arc<LeaseTable>,
}

/// Entries in process memory, lost when the backend is dropped.
///
/// ```
/// use respcache_core::{Backend, MemoryBackend};
/// let backend = MemoryBackend::new();
/// assert_eq!(backend.name(), "memory");
/// ```
#[derive(Debug, Default)]
pub struct MemoryBackend {
    tables: Mutex<HashMap<(Name, Name), Slot>>,
    closed: Arc<AtomicBool>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        MemoryBackend::default()
    }

    fn check(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::closed(NAME));
        }
        Ok(())
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn open_store(&self, spec: &StoreSpec) -> Result<Arc<DynStore>> {
        self.check()?;
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = tables
            .entry((spec.cache.clone(), spec.repository.clone()))
            .or_default();
        slot.dropped.store(false, Ordering::Release);
        let table = Arc::clone(&slot.table);
        Ok(Arc::new(MemoryStore {
            table,
            closed: Arc::clone(&self.closed),
            leases: Arc::clone(&slot.leases),
        }))
    }

    async fn drop_store(&self, cache: &Name, repository: &Name) -> Result<()> {
        self.check()?;
        let tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = tables.get(&(cache.clone(), repository.clone())) {
            slot.dropped.store(true, Ordering::Release);
            slot.table
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
        Ok(())
    }

    async fn list_stores(&self, cache: &Name) -> Result<Vec<Name>> {
        self.check()?;
        let tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<Name> = tables
            .iter()
            .filter(|((c, _), slot)| {
                c == cache
                    && (!slot.dropped.load(Ordering::Acquire)
                        || !slot
                            .table
                            .read()
                            .unwrap_or_else(PoisonError::into_inner)
                            .is_empty())
            })
            .map(|((_, r), _)| r.clone())
            .collect();
        names.sort();
        Ok(names)
    }

    async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}

/// One repository's entries in a [`MemoryBackend`].
#[derive(Debug)]
pub struct MemoryStore {
    table: Arc<Table>,
    closed: Arc<AtomicBool>,
    leases: Arc<LeaseTable>,
}

impl MemoryStore {
    fn check(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::closed(NAME));
        }
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.table.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &Key) -> Result<Option<Entry>> {
        self.check()?;
        Ok(self.read().get(&key.encode()).cloned())
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entry>>> {
        self.check()?;
        let table = self.read();
        Ok(keys
            .iter()
            .map(|k| table.get(&k.encode()).cloned())
            .collect())
    }

    async fn put(&self, entry: Entry) -> Result<()> {
        self.check()?;
        self.write().insert(entry.key.encode(), entry);
        Ok(())
    }

    async fn put_many(&self, entries: Vec<Entry>) -> Result<()> {
        self.check()?;
        let mut table = self.write();
        for entry in entries {
            table.insert(entry.key.encode(), entry);
        }
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        self.check()?;
        Ok(self.write().remove(&key.encode()).is_some())
    }

    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        self.check()?;
        let mut table = self.write();
        Ok(keys
            .iter()
            .filter(|k| table.remove(&k.encode()).is_some())
            .count() as u64)
    }

    async fn count(&self, select: Select, now: Timestamp) -> Result<u64> {
        self.check()?;
        Ok(self
            .read()
            .values()
            .filter(|e| select.matches(e.expires_at, now))
            .count() as u64)
    }

    async fn clear(&self, select: Select, now: Timestamp) -> Result<u64> {
        self.check()?;
        let mut table = self.write();
        let before = table.len();
        table.retain(|_, e| !select.matches(e.expires_at, now));
        Ok((before - table.len()) as u64)
    }

    fn scan(&self, select: Select, now: Timestamp) -> BoxStream<'static, Result<Entry>> {
        let table = Arc::clone(&self.table);
        let closed = Arc::clone(&self.closed);
        // Pages of SCAN_PAGE entries, resuming after the last key seen: the
        // stream never copies the whole table.
        let pages = futures::stream::try_unfold(Some(Bound::Unbounded), move |from| {
            let table = Arc::clone(&table);
            let closed = Arc::clone(&closed);
            async move {
                let Some(from) = from else {
                    return Ok(None);
                };
                if closed.load(Ordering::Acquire) {
                    return Err(Error::closed(NAME));
                }
                let table = table.read().unwrap_or_else(PoisonError::into_inner);
                let mut page = Vec::with_capacity(SCAN_PAGE);
                let mut last = None;
                for (k, e) in table.range((from, Bound::Unbounded)).take(SCAN_PAGE) {
                    last = Some(k.clone());
                    if select.matches(e.expires_at, now) {
                        page.push(Ok(e.clone()));
                    }
                }
                let next = last.map(Bound::Excluded);
                Ok::<_, Error>(Some((futures::stream::iter(page), next)))
            }
        });
        pages
            .map(|page| match page {
                Ok(items) => items.boxed(),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            })
            .flatten()
            .boxed()
    }

    async fn set_meta(
        &self,
        key: &Key,
        meta: Option<Bytes>,
        expires_at: Option<Timestamp>,
    ) -> Result<bool> {
        self.check()?;
        match self.write().get_mut(&key.encode()) {
            Some(e) => {
                e.meta = meta;
                e.expires_at = expires_at;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn set_expiry(&self, key: &Key, expires_at: Option<Timestamp>) -> Result<bool> {
        self.check()?;
        match self.write().get_mut(&key.encode()) {
            Some(e) => {
                e.expires_at = expires_at;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn acquire_lease(&self, key: &Key, ttl: Duration) -> Result<Option<LeaseToken>> {
        self.check()?;
        Ok(self.leases.acquire(&key.encode(), ttl))
    }

    async fn release_lease(&self, key: &Key, token: &LeaseToken) -> Result<bool> {
        self.check()?;
        Ok(self.leases.release(&key.encode(), token))
    }
}
