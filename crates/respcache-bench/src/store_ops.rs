//! The store-level operations, as fixtures whose methods are the timed
//! bodies: the table runner and the criterion benches call the same ones.
//! Every operation checks its answer, so a miss never passes for a hit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use respcache_core::{Backend, DynStore, Entry, Key, Name, Select, Timestamp};

use crate::Result;
use crate::data::{self, LARGE, SMALL};

/// How many distinct keys the point-read benchmarks cycle through.
pub const HIT_KEYS: u64 = 100;
/// The batch size of `get_many` and `put_many`.
pub const BATCH: usize = 1_000;
/// The number of entries `count`, `clear` and `scan` run over.
pub const LARGE_STORE: usize = 100_000;
/// How many `put_many` batches [`Large::seed`] keeps in flight.
pub const SEED_CONCURRENCY: usize = 4;
/// One in this many entries of the large store is stale (`clear(Select::Expired)`
/// removes them, and they are put back, untimed, before each `clear`).
pub const EXPIRED_SHARE: usize = 100;

/// Entries of each payload size, for point reads.
#[derive(Debug)]
pub struct Hits {
    store: Arc<DynStore>,
    small: Vec<Key>,
    large: Vec<Key>,
}

/// Which payload a point read reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// 1 KiB.
    Small,
    /// 100 KiB.
    Large,
}

impl Size {
    /// The payload size in bytes.
    pub fn bytes(self) -> usize {
        match self {
            Size::Small => SMALL,
            Size::Large => LARGE,
        }
    }

    /// `1 KB` or `100 KB`, for the table.
    pub fn label(self) -> &'static str {
        match self {
            Size::Small => "1 KB",
            Size::Large => "100 KB",
        }
    }
}

impl Hits {
    /// Opens repository `hits` of `cache` and stores [`HIT_KEYS`] entries
    /// of each size.
    pub async fn seed(backend: &dyn Backend, cache: &Name) -> Result<Hits> {
        let store = backend.open_store(&data::spec(cache, "hits")?).await?;
        let small: Vec<Key> = (0..HIT_KEYS).map(|i| data::key("small", i)).collect();
        let large: Vec<Key> = (0..HIT_KEYS).map(|i| data::key("large", i)).collect();
        let mut entries = Vec::with_capacity(small.len() * 2);
        for (i, k) in small.iter().enumerate() {
            entries.push(data::fresh_entry(k.clone(), data::payload(SMALL, i as u64)));
        }
        for (i, k) in large.iter().enumerate() {
            entries.push(data::fresh_entry(k.clone(), data::payload(LARGE, i as u64)));
        }
        store.put_many(entries).await?;
        Ok(Hits {
            store,
            small,
            large,
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<DynStore> {
        &self.store
    }

    /// The key run `i` reads.
    pub fn key(&self, size: Size, i: u64) -> &Key {
        let keys = match size {
            Size::Small => &self.small,
            Size::Large => &self.large,
        };
        &keys[(i % HIT_KEYS) as usize]
    }

    /// One `get` that must hit, with the right payload size.
    pub async fn get(&self, size: Size, i: u64) -> Result<()> {
        match self.store.get(self.key(size, i)).await? {
            Some(e) if e.payload.len() == size.bytes() => Ok(()),
            Some(e) => {
                Err(format!("a {} B payload, not {} B", e.payload.len(), size.bytes()).into())
            }
            None => Err("a miss where a hit was expected".into()),
        }
    }
}

/// Writes: `put` of one entry, `put_many` and `get_many` of [`BATCH`].
#[derive(Debug)]
pub struct Writes {
    store: Arc<DynStore>,
    one: Vec<Entry>,
    batch: Vec<Entry>,
    batch_keys: Vec<Key>,
}

impl Writes {
    /// Opens repository `writes` of `cache` and stores the batch once (so
    /// `get_many` hits from the start).
    pub async fn seed(backend: &dyn Backend, cache: &Name) -> Result<Writes> {
        let store = backend.open_store(&data::spec(cache, "writes")?).await?;
        let one = (0..HIT_KEYS)
            .map(|i| data::fresh_entry(data::key("one", i), data::payload(SMALL, i)))
            .collect();
        let batch: Vec<Entry> = (0..BATCH as u64)
            .map(|i| data::fresh_entry(data::key("batch", i), data::payload(SMALL, i)))
            .collect();
        let batch_keys = batch.iter().map(|e| e.key.clone()).collect();
        store.put_many(batch.clone()).await?;
        Ok(Writes {
            store,
            one,
            batch,
            batch_keys,
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<DynStore> {
        &self.store
    }

    /// The entry run `i` of `put` writes (an insert for the first
    /// [`HIT_KEYS`] runs, then replacements).
    pub fn entry(&self, i: u64) -> Entry {
        self.one[(i % HIT_KEYS) as usize].clone()
    }

    /// One lease taken on a free key (`i` picks a fresh one) and released:
    /// what a miss pays for cross-process single flight.
    pub async fn lease(&self, i: u64) -> Result<()> {
        let key = data::key("lease", i);
        let ttl = std::time::Duration::from_secs(30);
        let Some(token) = self.store.acquire_lease(&key, ttl).await? else {
            return Err(format!("lease {i} was held").into());
        };
        if !self.store.release_lease(&key, &token).await? {
            return Err(format!("lease {i} was not released").into());
        }
        Ok(())
    }

    /// One `put` of a 1 KiB entry.
    pub async fn put(&self, entry: Entry) -> Result<()> {
        Ok(self.store.put(entry).await?)
    }

    /// The entries `put_many` writes (untimed: cloning is the caller's).
    pub fn batch(&self) -> Vec<Entry> {
        self.batch.clone()
    }

    /// One `put_many` of [`BATCH`] 1 KiB entries (replacements).
    pub async fn put_many(&self, entries: Vec<Entry>) -> Result<()> {
        Ok(self.store.put_many(entries).await?)
    }

    /// One `get_many` of [`BATCH`] keys, every one a hit.
    pub async fn get_many(&self) -> Result<()> {
        let got = self.store.get_many(&self.batch_keys).await?;
        let hits = got.iter().filter(|e| e.is_some()).count();
        if got.len() != BATCH || hits != BATCH {
            return Err(format!(
                "get_many: {hits} hits of {} slots, wanted {BATCH}",
                got.len()
            )
            .into());
        }
        Ok(())
    }
}

/// A store of `n` entries of 1 KiB, one in [`EXPIRED_SHARE`] stale.
#[derive(Debug)]
pub struct Large {
    store: Arc<DynStore>,
    n: usize,
    expired: Vec<Entry>,
    /// Whether a `clear` removed the stale entries since they were put.
    cleared: AtomicBool,
}

impl Large {
    /// The repository name of the large store.
    pub const REPOSITORY: &'static str = "large";

    /// Opens repository [`Large::REPOSITORY`] of `cache` and fills it with
    /// `n` entries: batches of [`BATCH`], [`SEED_CONCURRENCY`] at a time
    /// (seeding is untimed; services fill faster with a few in flight).
    pub async fn seed(backend: &dyn Backend, cache: &Name, n: usize) -> Result<Large> {
        let store = backend
            .open_store(&data::spec(cache, Large::REPOSITORY)?)
            .await?;
        let entry = |i: u64| {
            let payload = data::payload(SMALL, i);
            if i.is_multiple_of(EXPIRED_SHARE as u64) {
                data::stale_entry(data::key("n", i), payload)
            } else {
                data::fresh_entry(data::key("n", i), payload)
            }
        };
        let expired: Vec<Entry> = (0..n as u64).step_by(EXPIRED_SHARE).map(entry).collect();
        let batches = (0..n as u64).step_by(BATCH).map(|from| {
            let to = (from + BATCH as u64).min(n as u64);
            let batch: Vec<Entry> = (from..to).map(entry).collect();
            let store = Arc::clone(&store);
            async move { store.put_many(batch).await }
        });
        futures::stream::iter(batches)
            .buffer_unordered(SEED_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        Ok(Large {
            store,
            n,
            expired,
            cleared: AtomicBool::new(false),
        })
    }

    /// Opens the large store a [`Large::seed`] filled (in another process).
    pub async fn open(backend: &dyn Backend, cache: &Name, n: usize) -> Result<Large> {
        let store = backend
            .open_store(&data::spec(cache, Large::REPOSITORY)?)
            .await?;
        Ok(Large {
            store,
            n,
            expired: Vec::new(),
            cleared: AtomicBool::new(false),
        })
    }

    /// How many entries the store holds.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// How many entries are stale.
    pub fn expired_len(&self) -> usize {
        self.expired.len()
    }

    /// One `count(Select::Fresh)`, checked.
    pub async fn count_fresh(&self) -> Result<()> {
        let n = self.store.count(Select::Fresh, Timestamp::now()).await?;
        let want = (self.n - self.expired.len()) as u64;
        if n != want {
            return Err(format!("count(fresh) = {n}, wanted {want}").into());
        }
        Ok(())
    }

    /// Puts the stale entries back if a `clear` removed them (the untimed
    /// setup of each `clear`).
    pub async fn restore_expired(&self) -> Result<()> {
        if !self.cleared.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        for chunk in self.expired.chunks(BATCH) {
            self.store.put_many(chunk.to_vec()).await?;
        }
        Ok(())
    }

    /// One `clear(Select::Expired)`, which must remove exactly the stale
    /// entries.
    pub async fn clear_expired(&self) -> Result<()> {
        let n = self.store.clear(Select::Expired, Timestamp::now()).await?;
        self.cleared.store(true, Ordering::Release);
        if n != self.expired.len() as u64 {
            return Err(
                format!("clear(expired) removed {n}, wanted {}", self.expired.len()).into(),
            );
        }
        Ok(())
    }

    /// One full `scan(Select::All)`; returns the entries and payload bytes
    /// seen, and fails unless every entry was seen.
    pub async fn scan(&self) -> Result<(u64, u64)> {
        let mut stream = self.store.scan(Select::All, Timestamp::now());
        let (mut entries, mut bytes) = (0u64, 0u64);
        while let Some(entry) = stream.try_next().await? {
            entries += 1;
            bytes += entry.payload.len() as u64;
        }
        if entries != self.n as u64 {
            return Err(format!("scan saw {entries} entries, wanted {}", self.n).into());
        }
        Ok((entries, bytes))
    }
}

/// The payload of the `i`-th small hit entry, for baselines that store the
/// same bytes natively.
pub fn hit_payload(size: Size, i: u64) -> Bytes {
    data::payload(size.bytes(), i % HIT_KEYS)
}
