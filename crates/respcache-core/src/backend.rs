//! The storage contract a backend implements: [`Backend`] (connections,
//! stores) and [`Store`] (one repository's entries).
//!
//! Every rule — keys, expiry, codecs, routing — lives in the core; a backend
//! only maps these primitives onto its native store. The conformance suite
//! (`respcache-conformance`) has one case per contract bullet below.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::entry::{Entry, Select};
use crate::error::{Operation, Result};
use crate::key::{Key, KeySchema};
use crate::lease::{self, LeaseToken};
use crate::name::Name;
use crate::time::Timestamp;

/// What a backend needs to open one repository's store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSpec {
    /// The cache the repository belongs to.
    pub cache: Name,
    /// The repository.
    pub repository: Name,
    /// The key fields (after the method).
    pub schema: KeySchema,
    /// How long a stale entry is kept before a backend with native expiry
    /// may purge it on its own (`expires_at + retention`). `None`: stale
    /// entries stay until `clear` removes them.
    pub retention: Option<Duration>,
}

impl StoreSpec {
    /// A spec with no retention limit.
    pub fn new(cache: Name, repository: Name, schema: KeySchema) -> Self {
        StoreSpec {
            cache,
            repository,
            schema,
            retention: None,
        }
    }

    /// Sets the retention.
    pub fn with_retention(mut self, retention: Option<Duration>) -> Self {
        self.retention = retention;
        self
    }

    /// When a backend with native expiry may purge an entry expiring at
    /// `expires_at`: `expires_at + retention`, or never.
    pub fn purge_at(&self, expires_at: Option<Timestamp>) -> Option<Timestamp> {
        match (expires_at, self.retention) {
            (Some(e), Some(r)) => Some(e.saturating_add(r)),
            _ => None,
        }
    }
}

/// Hard limits of a backend. They never switch behaviour off; they only say
/// which outcome (success or [`PayloadTooLarge`](crate::ErrorKind::PayloadTooLarge))
/// a caller should expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Limits {
    /// The largest payload accepted, in bytes, if there is a limit.
    pub max_payload_bytes: Option<usize>,
}

impl Limits {
    /// No limits.
    pub const NONE: Limits = Limits {
        max_payload_bytes: None,
    };

    /// A payload limit of `bytes`.
    pub const fn max_payload(bytes: usize) -> Self {
        Limits {
            max_payload_bytes: Some(bytes),
        }
    }
}

/// One repository's entries in a backend: a table in SQLite, a folder on
/// disk, a key prefix in Redis, a collection in MongoDB, a partition in
/// DynamoDB.
///
/// # Contract
///
/// - `get` returns an entry whether fresh or stale; a missing key is `None`.
/// - `put` inserts or replaces the whole entry.
/// - `get_many` answers one slot per key, in the order given.
/// - `delete` of a missing key is `Ok(false)`, not an error.
/// - `contains`, `count(Select::Fresh)` and `scan(Select::Fresh)` skip stale
///   entries; stale entries stay stored until `clear` removes them.
/// - `now` always comes from the caller (the core's [`Clock`](crate::Clock)).
/// - `clear(Select::Expired)` removes exactly the stale entries.
/// - `set_expiry` changes only `expires_at`: it can revive a stale entry.
/// - `scan` is a stream: it never loads the whole store into memory.
/// - After the backend is closed every call is a
///   [`Closed`](crate::ErrorKind::Closed) error.
/// - An entry that cannot be decoded is a miss (see [`crate::stats`]).
///
/// Tags (see [`Tags`](crate::Tags)):
///
/// - `get`, `get_many` and `scan` return an entry's tags as `put` stored
///   them; `set_expiry` and `set_meta` keep them.
/// - `purge_tag(t)` removes every entry of this store whose tags contain
///   `t` at the time of the call, and no other, and returns how many it
///   removed. An entry replaced by one without `t` is not removed; a
///   deleted, cleared or evicted entry is not counted. Other stores (other
///   repositories, other caches) are never touched.
/// - An invalid tag is an [`InvalidKey`](crate::ErrorKind::InvalidKey)
///   error.
///
/// Leases (optional; the defaults answer
/// [`Unsupported`](crate::ErrorKind::Unsupported), see [`crate::lease`]):
///
/// - `acquire_lease` takes the lease on a key of this store for `ttl` and
///   returns a fresh token, or `None` while another holder's lease has not
///   expired. At most one holder at a time, across every handle and
///   process sharing the store.
/// - A lease expires `ttl` after it was taken (by the server's clock where
///   the backend has native expiry, else by the system clocks of the
///   processes, which must agree to well within `ttl`); then anyone may
///   take it, so a holder that dies never blocks the key for longer.
/// - `release_lease` frees the lease only for the token that holds it
///   (`true`); any other token, or an expired lease, is `false` and
///   changes nothing.
/// - Leases are not entries: `get`, `count`, `scan` and `clear` never see
///   them, and stores of different repositories or caches never share one.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// The entry under `key`, fresh or stale.
    async fn get(&self, key: &Key) -> Result<Option<Entry>>;

    /// The entries under `keys`, one slot per key in order.
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entry>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }

    /// Inserts or replaces `entry`.
    async fn put(&self, entry: Entry) -> Result<()>;

    /// Inserts or replaces every entry (in one transaction where the backend
    /// has them).
    async fn put_many(&self, entries: Vec<Entry>) -> Result<()> {
        for entry in entries {
            self.put(entry).await?;
        }
        Ok(())
    }

    /// Deletes the entry under `key`; `true` if it existed.
    async fn delete(&self, key: &Key) -> Result<bool>;

    /// Deletes the entries under `keys`; returns how many existed.
    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        let mut n = 0;
        for key in keys {
            if self.delete(key).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Whether a fresh entry exists under `key` at `now`.
    async fn contains(&self, key: &Key, now: Timestamp) -> Result<bool> {
        Ok(self.get(key).await?.is_some_and(|e| e.is_fresh(now)))
    }

    /// How many entries `select` matches at `now`.
    async fn count(&self, select: Select, now: Timestamp) -> Result<u64>;

    /// Removes the entries `select` matches at `now`; returns how many.
    async fn clear(&self, select: Select, now: Timestamp) -> Result<u64>;

    /// Streams the entries `select` matches at `now`, in no particular order.
    fn scan(&self, select: Select, now: Timestamp) -> BoxStream<'static, Result<Entry>>;

    /// Sets `expires_at` of the entry under `key` without rewriting its
    /// payload; `false` if there is no such entry.
    async fn set_expiry(&self, key: &Key, expires_at: Option<Timestamp>) -> Result<bool>;

    /// Replaces the metadata and `expires_at` of the entry under `key`,
    /// keeping its payload, name and `cached_at`; `false` if there is no
    /// such entry. The HTTP layer calls it when a `304 Not Modified`
    /// freshens a stored response.
    ///
    /// The default reads the entry and writes it back whole; backends that
    /// can update two fields in place override it so the payload is not
    /// sent again.
    async fn set_meta(
        &self,
        key: &Key,
        meta: Option<Bytes>,
        expires_at: Option<Timestamp>,
    ) -> Result<bool> {
        match self.get(key).await? {
            Some(mut entry) => {
                entry.meta = meta;
                entry.expires_at = expires_at;
                self.put(entry).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Removes every entry carrying `tag`; returns how many it removed.
    ///
    /// The default ([`crate::purge::purge_tag_by_scan`]) scans the whole
    /// store and deletes the matching keys, so a custom backend passes the
    /// conformance cases unchanged; every built-in backend overrides it
    /// with an index (a tag → keys map, a tags table, marker files, a Redis
    /// set, a multikey index, index items).
    ///
    /// # Errors
    ///
    /// [`InvalidKey`](crate::ErrorKind::InvalidKey) for an invalid tag
    /// ([`crate::tags::validate_tag`]); the backend's errors otherwise.
    async fn purge_tag(&self, tag: &str) -> Result<u64> {
        crate::purge::purge_tag_by_scan(self, tag).await
    }

    /// Takes the lease on `key` for `ttl`: a new token, or `None` while an
    /// unexpired lease is held. The default answers
    /// [`Unsupported`](crate::ErrorKind::Unsupported).
    async fn acquire_lease(&self, _key: &Key, _ttl: Duration) -> Result<Option<LeaseToken>> {
        Err(lease::unsupported(Operation::AcquireLease))
    }

    /// Frees the lease on `key` if `token` holds it; `true` when it did.
    /// The default answers [`Unsupported`](crate::ErrorKind::Unsupported).
    async fn release_lease(&self, _key: &Key, _token: &LeaseToken) -> Result<bool> {
        Err(lease::unsupported(Operation::ReleaseLease))
    }
}

/// A store behind a pointer, as the core holds it.
pub type DynStore = dyn Store;

/// A storage backend: owns the connections and opens one [`Store`] per
/// repository. Object-safe, so a program can choose one at run time.
///
/// # Contract
///
/// - `open_store` creates what the store needs if missing, and is idempotent.
/// - Stores of different caches, and of different repositories of one
///   cache, never see each other's entries.
/// - `close` makes every later call on the backend and its stores a
///   [`Closed`](crate::ErrorKind::Closed) error.
/// - Every error of a store names the backend, the repository and the
///   operation.
///
/// A backend keeps the last two promises the way every built-in one does:
/// it holds one [`BackendGuard`](crate::BackendGuard), returns each store
/// from `open_store` through [`BackendGuard::wrap`](crate::BackendGuard::wrap),
/// checks the guard in its own calls and closes it in `close`. Its store
/// code then neither checks a closed flag nor adds context.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// A short lowercase name: `memory`, `sqlite`, `fs`, `redis`, ...
    fn name(&self) -> &'static str;

    /// The backend's hard limits.
    fn limits(&self) -> Limits {
        Limits::NONE
    }

    /// Creates the store if missing and returns it.
    async fn open_store(&self, spec: &StoreSpec) -> Result<Arc<DynStore>>;

    /// Removes a store and all its entries; `Ok` if it did not exist.
    ///
    /// Handles opened before the drop may go on working on the emptied
    /// store or fail with an error until the store is opened again; either
    /// way they never show a dropped entry, and a write one of them
    /// acknowledges after the drop is visible to handles opened later.
    async fn drop_store(&self, cache: &Name, repository: &Name) -> Result<()>;

    /// The repositories that have a store in `cache`.
    async fn list_stores(&self, cache: &Name) -> Result<Vec<Name>>;

    /// The key schema an existing store was created with, for tools that
    /// open stores they did not define (the `respcache` command).
    ///
    /// Backends whose stored keys describe themselves (every built-in one
    /// but SQLite, whose key columns are typed) accept any schema when a
    /// store is opened for reading, and keep this default: `Ok(None)`.
    async fn stored_schema(&self, _cache: &Name, _repository: &Name) -> Result<Option<KeySchema>> {
        Ok(None)
    }

    /// Closes the connections.
    async fn close(&self) -> Result<()>;

    /// The backend's size accounting and least-recently-used trimming, if
    /// it has them (the local backends do; see [`crate::budget`]).
    fn eviction(&self) -> Option<&dyn crate::budget::Eviction> {
        None
    }
}

/// A backend behind a pointer, as the core holds it.
pub type DynBackend = dyn Backend;
