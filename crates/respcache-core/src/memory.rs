//! [`MemoryBackend`]: the reference backend, entries in process memory.
//!
//! It defines what every other backend must answer; the conformance suite
//! runs against it in every `cargo test`.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::backend::{Backend, DynStore, Store, StoreSpec};
use crate::budget::{Budget, Eviction, ProgressFn, TrimProgress, Usage, entry_size};
use crate::checked_store::BackendGuard;
use crate::entry::{Entry, Select};
use crate::error::{Error, Operation, Result};
use crate::key::Key;
use crate::lease::{LeaseTable, LeaseToken};
use crate::memory_lru::{Lru, Table};
use crate::memory_table::{Entries, SharedKey};
use crate::name::Name;
use crate::tags::validate_tag;
use crate::time::Timestamp;

const NAME: &str = "memory";
const SCAN_PAGE: usize = 256;

/// A store's table, and whether it was dropped since it was last opened.
///
/// A dropped table stays in the map, emptied, so handles opened before the
/// drop write where handles opened after it read (no acknowledged write is
/// lost); it is listed again once opened or written to.
#[derive(Debug)]
struct Slot {
    id: u64,
    table: Arc<Table>,
    dropped: AtomicBool,
    leases: Arc<LeaseTable>,
}

/// Entries in process memory, lost when the backend is dropped.
///
/// It counts what its stores hold ([`entry_size`]) and keeps their entries
/// in exact least-recently-used order (a read or a write is a use), so
/// [`with_budget`](Self::with_budget) bounds it: a write that takes it over
/// the budget evicts the least recently used entries, of any store, until
/// the budget holds again. The budget counts entries as every backend does
/// ([`entry_size`]); the backend's own structures add about 0.3–0.4 KB of
/// heap per entry beyond that (`tests/memory_footprint.rs`), so a budget of many
/// small entries holds a little more than it says.
///
/// ```
/// use respcache_core::{Backend, MemoryBackend};
/// use respcache_core::budget::Budget;
/// let backend = MemoryBackend::new();
/// assert_eq!(backend.name(), "memory");
/// let bounded = MemoryBackend::with_budget(Budget::bytes(64 << 20));
/// assert_eq!(bounded.eviction().map(|e| e.budget()), Some(Budget::bytes(64 << 20)));
/// ```
#[derive(Debug)]
pub struct MemoryBackend {
    tables: Mutex<HashMap<(Name, Name), Slot>>,
    guard: BackendGuard,
    lru: Arc<Lru>,
    next_id: AtomicU64,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend {
            tables: Mutex::default(),
            guard: BackendGuard::new(NAME),
            lru: Arc::default(),
            next_id: AtomicU64::new(0),
        }
    }
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        MemoryBackend::default()
    }

    /// An empty backend that holds at most `budget`.
    pub fn with_budget(budget: Budget) -> Self {
        MemoryBackend {
            lru: Arc::new(Lru::new(budget)),
            ..MemoryBackend::default()
        }
    }

    /// Builds a backend from a `memory:` URL: `memory://`, with the
    /// options `max_bytes` (a size: `500MB`, `64MiB`) and `max_entries`.
    ///
    /// # Errors
    ///
    /// [`Configuration`](crate::ErrorKind::Configuration) for an unknown
    /// option or a malformed value.
    pub fn from_url(url: &str) -> Result<Self> {
        let mut budget = Budget::NONE;
        if let Some((_, query)) = url.split_once('?') {
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                if !budget.apply_option(name, value)? {
                    return Err(Error::new(
                        crate::ErrorKind::Configuration,
                        format!(
                            "unknown option {name:?} in a memory: URL (known: max_bytes, max_entries)"
                        ),
                    )
                    .with_backend(NAME));
                }
            }
        }
        Ok(MemoryBackend::with_budget(budget))
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn open_store(&self, spec: &StoreSpec) -> Result<Arc<DynStore>> {
        self.guard
            .check_store(&spec.repository, Operation::OpenStore)?;
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = tables
            .entry((spec.cache.clone(), spec.repository.clone()))
            .or_insert_with(|| {
                let slot = Slot {
                    id: self.next_id.fetch_add(1, Ordering::Relaxed),
                    table: Arc::default(),
                    dropped: AtomicBool::new(false),
                    leases: Arc::default(),
                };
                self.lru
                    .lock()
                    .register(slot.id, Arc::downgrade(&slot.table));
                slot
            });
        slot.dropped.store(false, Ordering::Release);
        let table = Arc::clone(&slot.table);
        let store = Arc::new(MemoryStore {
            table,
            id: slot.id,
            lru: Arc::clone(&self.lru),
            leases: Arc::clone(&slot.leases),
        });
        Ok(self.guard.wrap(spec, store))
    }

    async fn drop_store(&self, cache: &Name, repository: &Name) -> Result<()> {
        self.guard.check_store(repository, Operation::DropStore)?;
        let tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = tables.get(&(cache.clone(), repository.clone())) {
            slot.dropped.store(true, Ordering::Release);
            let mut lru = self.lru.lock();
            slot.table
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            lru.forget_table(slot.id);
        }
        Ok(())
    }

    async fn list_stores(&self, cache: &Name) -> Result<Vec<Name>> {
        self.guard.check(Operation::ListStores)?;
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
        self.guard.close();
        Ok(())
    }

    fn eviction(&self) -> Option<&dyn Eviction> {
        Some(self)
    }
}

#[async_trait]
impl Eviction for MemoryBackend {
    fn budget(&self) -> Budget {
        self.lru.budget
    }

    async fn usage(&self) -> Result<Usage> {
        self.guard.check(Operation::Count)?;
        Ok(self.lru.lock().usage())
    }

    async fn trim_to(&self, target: Budget, progress: ProgressFn<'_>) -> Result<TrimProgress> {
        self.guard.check(Operation::Clear)?;
        let done = self.lru.lock().evict(target);
        progress(done);
        Ok(done)
    }
}

/// One repository's entries in a [`MemoryBackend`].
#[derive(Debug)]
pub struct MemoryStore {
    table: Arc<Table>,
    id: u64,
    lru: Arc<Lru>,
    leases: Arc<LeaseTable>,
}

impl MemoryStore {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.table.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `entries` (replacing any at their keys), then evicts down to
    /// the budget.
    fn insert(&self, entries: impl IntoIterator<Item = Entry>) {
        let mut lru = self.lru.lock();
        {
            let mut table = self.write();
            for entry in entries {
                let size = entry_size(&entry);
                let key = table.insert(entry.key.encode(), entry);
                lru.record(self.id, key, size);
            }
        }
        if self.lru.budget.is_exceeded_by(lru.usage()) {
            lru.evict(self.lru.budget);
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let encoded = key.encode();
        let found = self.read().get(&encoded).cloned();
        if found.is_some() {
            self.lru.touch(self.id, &encoded);
        }
        Ok(found)
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entry>>> {
        let encoded: Vec<String> = keys.iter().map(Key::encode).collect();
        let found: Vec<Option<Entry>> = {
            let table = self.read();
            encoded.iter().map(|k| table.get(k).cloned()).collect()
        };
        for (key, entry) in encoded.iter().zip(&found) {
            if entry.is_some() {
                self.lru.touch(self.id, key);
            }
        }
        Ok(found)
    }

    async fn put(&self, entry: Entry) -> Result<()> {
        // Not through `put_many`: a miss's store awaits no second boxed
        // future and builds no `Vec`.
        self.insert([entry]);
        Ok(())
    }

    async fn put_many(&self, entries: Vec<Entry>) -> Result<()> {
        self.insert(entries);
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        Ok(self.delete_many(std::slice::from_ref(key)).await? == 1)
    }

    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        let mut lru = self.lru.lock();
        let mut table = self.write();
        let mut n = 0;
        for key in keys {
            let key = key.encode();
            if table.remove(&key).is_some() {
                lru.forget(self.id, &key);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn count(&self, select: Select, now: Timestamp) -> Result<u64> {
        Ok(self
            .read()
            .values()
            .filter(|e| select.matches(e.expires_at, now))
            .count() as u64)
    }

    async fn clear(&self, select: Select, now: Timestamp) -> Result<u64> {
        let mut lru = self.lru.lock();
        let mut table = self.write();
        let before = table.len();
        table.retain(|key, e| {
            let keep = !select.matches(e.expires_at, now);
            if !keep {
                lru.forget(self.id, key);
            }
            keep
        });
        Ok((before - table.len()) as u64)
    }

    fn scan(&self, select: Select, now: Timestamp) -> BoxStream<'static, Result<Entry>> {
        let table = Arc::clone(&self.table);
        // Pages of SCAN_PAGE entries, resuming after the last key seen: the
        // stream never copies the whole table.
        let pages = futures::stream::try_unfold(Some(Bound::Unbounded), move |from| {
            let table = Arc::clone(&table);
            async move {
                let Some(from) = from else {
                    return Ok(None);
                };
                let table = table.read().unwrap_or_else(PoisonError::into_inner);
                let mut page = Vec::with_capacity(SCAN_PAGE);
                let mut last = None;
                for (k, e) in table
                    .range_from(from.as_ref().map(|k: &SharedKey| &**k))
                    .take(SCAN_PAGE)
                {
                    last = Some(Arc::clone(k));
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
        let mut lru = self.lru.lock();
        let encoded = key.encode();
        match self.write().get_mut(&encoded) {
            Some(e) => {
                e.meta = meta;
                e.expires_at = expires_at;
                lru.resize(self.id, &encoded, entry_size(e));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn set_expiry(&self, key: &Key, expires_at: Option<Timestamp>) -> Result<bool> {
        match self.write().get_mut(&key.encode()) {
            Some(e) => {
                e.expires_at = expires_at;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn acquire_lease(&self, key: &Key, ttl: Duration) -> Result<Option<LeaseToken>> {
        Ok(self.leases.acquire(&key.encode(), ttl))
    }

    async fn release_lease(&self, key: &Key, token: &LeaseToken) -> Result<bool> {
        Ok(self.leases.release(&key.encode(), token))
    }

    /// The table's tag index gives the keys; they are removed under the
    /// same locks as a `delete_many`, so the index and the entries agree.
    async fn purge_tag(&self, tag: &str) -> Result<u64> {
        validate_tag(tag)?;
        let mut lru = self.lru.lock();
        let mut table = self.write();
        let keys = table.keys_tagged(tag);
        for key in &keys {
            if table.remove(key).is_some() {
                lru.forget(self.id, key);
            }
        }
        Ok(keys.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{FieldKind, KeyPart, KeySchema};
    use crate::tags::Tags;

    /// An entry the budget evicts leaves the tag index with it.
    #[tokio::test]
    async fn eviction_unindexes_tags() {
        let backend = MemoryBackend::with_budget(Budget::entries(1));
        let spec = StoreSpec::new(
            Name::new("c").unwrap(),
            Name::new("r").unwrap(),
            KeySchema::new([("id", FieldKind::Text)]).unwrap(),
        );
        let store = backend.open_store(&spec).await.unwrap();
        let key = |id: &str| Key::new("GET", [KeyPart::Text(id.into())]);
        let tags = Tags::new(["t"]).unwrap();
        let at = Timestamp::from_millis(1);
        store
            .put(Entry::new(key("a"), at, "a").with_tags(tags.clone()))
            .await
            .unwrap();
        store
            .put(Entry::new(key("b"), at, "b").with_tags(tags))
            .await
            .unwrap();
        assert!(
            store.get(&key("a")).await.unwrap().is_none(),
            "a was evicted"
        );
        assert_eq!(store.purge_tag("t").await.unwrap(), 1, "only b is counted");
    }
}
