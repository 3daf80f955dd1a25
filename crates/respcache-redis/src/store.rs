//! [`RedisStore`]: one repository's entries, as string keys under
//! `<cache>:<repository>:`.

use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use respcache_core::envelope::{self, HEADER_LEN, MAGIC, MAGIC_TAGGED};
use respcache_core::stats::record_undecodable;
use respcache_core::{
    Entry, Error, ErrorKind, Key, LeaseToken, Result, Select, Store, StoreSpec, Timestamp,
    async_trait,
};

use crate::NAME;
use crate::connection::Shared;
use crate::layout::{entry_prefix, lease_prefix, prefix_pattern, slot_tag, tag_prefix};
use crate::scripts::{DELETE_IF_HEADER, PURGE_TAGGED, RELEASE_LEASE, SET_EXPIRY};

/// Keys asked per `SCAN` step when only keys or headers are read.
const SCAN_COUNT: usize = 1000;
/// Keys asked per `SCAN` step when whole entries are streamed: bounds the
/// memory one page of `scan` holds.
const SCAN_COUNT_ENTRIES: usize = 200;
/// Redis refuses string values over 512 MiB (`proto-max-bulk-len`).
const MAX_VALUE_BYTES: usize = 512 * 1024 * 1024;

/// One repository's entries in Redis. Get it from
/// [`RedisBackend::open_store`](respcache_core::Backend::open_store) or
/// [`RedisBackend::store`](crate::RedisBackend::store).
///
/// Each entry is one string key, `<cache>:<repository>:<encoded key>`,
/// holding the core's [envelope](respcache_core::envelope), so:
///
/// | call | Redis |
/// |---|---|
/// | `get` | one `GET` |
/// | `put` | one `SET` (`PXAT <purge time>` when the store has a retention); with tags, `MULTI`/`SET`/`SADD <tag set> <key>`…/`EXEC` |
/// | `get_many` | one `MGET` |
/// | `put_many` | one `MULTI`/`SET`…/`EXEC` transaction (with the tags' `SADD`s), one round trip |
/// | `delete`, `delete_many` | one `UNLINK` |
/// | `contains` | one `GETRANGE 0 23` (the header, not the payload) |
/// | `set_expiry` | one Lua script: patches the header with `SETRANGE`, then `PEXPIREAT` or `PERSIST` |
/// | `count`, `clear` | `SCAN MATCH <prefix>* COUNT 1000`; for `Fresh`/`Expired`, a pipeline of `GETRANGE 0 23` per page, and for `clear` a compare-and-delete script per page |
/// | `scan` | `SCAN … COUNT 200` + one `MGET` per page, streamed |
/// | `purge_tag` | `SSCAN` of the tag's set, `MGET` of a page, then one Lua script per page that deletes the entries still carrying the tag and drops stale members |
/// | `acquire_lease` | one `SET <lease key> <token> NX PX <ttl>` |
/// | `release_lease` | one Lua compare-and-delete (`GET` = token → `DEL`) |
///
/// On a Redis Cluster every key of the store carries the hash tag
/// `{<cache>:<repository>}`: the store lives in one slot, so the same
/// commands, transactions and scripts run unchanged, and `SCAN` is sent to
/// the master of that slot.
///
/// `SCAN` may return a key more than once (when the keyspace is rehashed
/// during the iteration), so `scan` and `count` remember a 16-byte keyed
/// hash of every Redis key they met and skip repeats: about 16 bytes per
/// entry (some 40 with the hash set's overhead) for the length of one call.
/// `clear` needs no such memory (a repeated key is already gone).
///
/// Tags: each tag has a set, `<cache>:_tag:<repository>:<tag>` (on a
/// cluster `{<cache>:<repository>}_tag:<tag>`, the store's slot), of the
/// Redis keys of the entries written with it, added in the same
/// transaction as the entry. A set keeps members whose entry was deleted,
/// expired by Redis or rewritten without the tag; they are harmless (a
/// purge reads each entry and deletes it only if its own tags hold the
/// tag) and the next purge of that tag drops them; `clear(All)` and
/// `drop_store` remove the sets. That is the one index in the store, and it
/// grows only with tags written since their last purge.
/// An entry that cannot be decoded is a miss (logged and counted by
/// [`record_undecodable`]): `get` returns `None`, `contains`, `scan` and
/// `count(Fresh | Expired)` skip it, `set_expiry` reports `false` and leaves
/// it alone; only `count(All)`, which reads no values, counts it, and only
/// `clear(All)` and `delete` remove it.
pub struct RedisStore {
    shared: Arc<Shared>,
    spec: StoreSpec,
    prefix: String,
    pattern: String,
    lease_prefix: String,
    tag_prefix: String,
    /// A key in the store's slot (cluster): `SCAN` goes to its master.
    slot_key: String,
}

impl RedisStore {
    pub(crate) fn new(shared: Arc<Shared>, spec: StoreSpec) -> Self {
        let cluster = shared.is_cluster();
        let prefix = entry_prefix(&spec.cache, &spec.repository, cluster);
        let pattern = prefix_pattern(&prefix);
        let lease_prefix = lease_prefix(&spec.cache, &spec.repository, cluster);
        let slot_key = slot_tag(&spec.cache, &spec.repository);
        let tag_prefix = tag_prefix(&spec.cache, &spec.repository, cluster);
        RedisStore {
            shared,
            spec,
            prefix,
            pattern,
            lease_prefix,
            tag_prefix,
            slot_key,
        }
    }

    /// The Redis key of the lease on `key`.
    fn lease_key(&self, key: &Key) -> String {
        format!("{}{}", self.lease_prefix, key.encode())
    }

    /// The Redis key of `tag`'s set.
    fn tag_key(&self, tag: &str) -> String {
        format!("{}{tag}", self.tag_prefix)
    }

    /// Adds to `pipe` the commands that store `entry`: its `SET`, and an
    /// `SADD` of its Redis key to each of its tags' sets.
    fn add_write(&self, pipe: &mut redis::Pipeline, entry: &Entry) -> Result<()> {
        pipe.add_command(self.set_command(entry)?).ignore();
        if !entry.tags.is_empty() {
            let member = self.redis_key(&entry.key);
            for tag in &entry.tags {
                pipe.cmd("SADD")
                    .arg(self.tag_key(tag))
                    .arg(&member)
                    .ignore();
            }
        }
        Ok(())
    }

    /// The spec the store was opened with.
    pub fn spec(&self) -> &StoreSpec {
        &self.spec
    }

    /// The Redis key an entry under `key` is stored at:
    /// `<cache>:<repository>:<key.encode()>` (on a cluster,
    /// `{<cache>:<repository>}:<key.encode()>`).
    pub fn redis_key(&self, key: &Key) -> String {
        let encoded = key.encode();
        let mut out = String::with_capacity(self.prefix.len() + encoded.len());
        out.push_str(&self.prefix);
        out.push_str(&encoded);
        out
    }

    /// Decodes a stored value; an undecodable one (or one that holds
    /// another key's entry) is recorded and becomes a miss.
    fn decode(&self, bytes: &[u8], expected: &Key) -> Option<Entry> {
        decode_value(bytes, Some(expected), self.spec.repository.as_str())
    }

    /// `SET key envelope [PXAT purge]`.
    fn set_command(&self, entry: &Entry) -> Result<redis::Cmd> {
        let value = envelope::encode(entry);
        if value.len() > MAX_VALUE_BYTES {
            return Err(Error::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "an entry of {} bytes exceeds Redis's 512 MiB value limit",
                    value.len()
                ),
            )
            .with_backend(NAME));
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.redis_key(&entry.key)).arg(value);
        if let Some(purge) = self.spec.purge_at(entry.expires_at) {
            cmd.arg("PXAT").arg(purge_millis(purge));
        }
        Ok(cmd)
    }

    /// One step of `SCAN`: the next cursor (0 = done) and the keys found.
    async fn scan_step(&self, cursor: u64, count: usize) -> Result<(u64, Vec<Vec<u8>>)> {
        scan_step(&self.shared, &self.pattern, &self.slot_key, cursor, count).await
    }

    /// The 24-byte headers of `keys`, in one pipeline.
    async fn headers(&self, keys: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("GETRANGE").arg(key).arg(0).arg(HEADER_LEN - 1);
        }
        self.shared.query_pipeline(&pipe).await
    }

    /// Whether a raw header is selected; undecodable ones are recorded and
    /// never selected, missing ones (deleted meanwhile) are skipped.
    fn header_matches(&self, header: &[u8], select: Select, now: Timestamp) -> bool {
        if header.is_empty() {
            return false;
        }
        match envelope::decode_header(header) {
            Ok(h) => select.matches(h.expires_at, now),
            Err(e) => {
                record_undecodable(NAME, self.spec.repository.as_str(), &e);
                false
            }
        }
    }

    async fn count_inner(&self, select: Select, now: Timestamp) -> Result<u64> {
        let mut total = 0u64;
        let mut cursor = 0;
        let mut seen = Seen::default();
        loop {
            let (next, mut keys) = self.scan_step(cursor, SCAN_COUNT).await?;
            seen.retain_new(&mut keys);
            if !keys.is_empty() {
                if select == Select::All {
                    total += keys.len() as u64;
                } else {
                    let headers = self.headers(&keys).await?;
                    total += headers
                        .iter()
                        .filter(|h| self.header_matches(h, select, now))
                        .count() as u64;
                }
            }
            if next == 0 {
                return Ok(total);
            }
            cursor = next;
        }
    }

    async fn clear_inner(&self, select: Select, now: Timestamp) -> Result<u64> {
        if select == Select::All {
            // The tag sets first: a `put` racing the clear then indexes its
            // entry in a new set, never in one removed after it.
            unlink_matching(
                &self.shared,
                &prefix_pattern(&self.tag_prefix),
                &self.slot_key,
            )
            .await?;
        }
        let mut removed = 0u64;
        let mut cursor = 0;
        loop {
            let (next, keys) = self.scan_step(cursor, SCAN_COUNT).await?;
            if !keys.is_empty() {
                removed += if select == Select::All {
                    self.shared
                        .query::<u64>(redis::cmd("UNLINK").arg(&keys))
                        .await?
                } else {
                    let headers = self.headers(&keys).await?;
                    let mut invocation = DELETE_IF_HEADER.prepare_invoke();
                    let mut any = false;
                    for (key, header) in keys.iter().zip(&headers) {
                        if self.header_matches(header, select, now) {
                            invocation.key(key).arg(header);
                            any = true;
                        }
                    }
                    if any {
                        self.shared.invoke::<u64>(&invocation).await?
                    } else {
                        0
                    }
                };
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

/// Members of a tag set read per `SSCAN` step (and so keys per purge script).
const TAG_PAGE: usize = 500;

impl RedisStore {
    async fn purge_tag_inner(&self, tag: &str) -> Result<u64> {
        let set = self.tag_key(tag);
        let mut removed = 0u64;
        let mut cursor = 0u64;
        // Bounded: SSCAN ends, and every step is a server round trip.
        loop {
            let (next, members): (u64, Vec<Vec<u8>>) = self
                .shared
                .query(
                    redis::cmd("SSCAN")
                        .arg(&set)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(TAG_PAGE),
                )
                .await?;
            if !members.is_empty() {
                removed += self.purge_page(&set, tag, &members).await?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// Reads the entries of one page of a tag's set and hands the script
    /// what it saw of each and whether it carries the tag.
    async fn purge_page(&self, set: &str, tag: &str, members: &[Vec<u8>]) -> Result<u64> {
        let values: Vec<Option<Vec<u8>>> =
            self.shared.query(redis::cmd("MGET").arg(members)).await?;
        let mut call = PURGE_TAGGED.key(set);
        let mut seen = Vec::with_capacity(members.len());
        let mut delete = Vec::with_capacity(members.len());
        for (member, value) in members.iter().zip(&values) {
            call.key(member);
            match value {
                Some(bytes) => {
                    let mut head = bytes.get(..HEADER_LEN).unwrap_or(bytes).to_vec();
                    head.extend_from_slice(bytes.len().to_string().as_bytes());
                    seen.push(head);
                    let carries = decode_value(bytes, None, self.spec.repository.as_str())
                        .is_some_and(|e| {
                            e.tags.contains(tag) && self.redis_key(&e.key).as_bytes() == member
                        });
                    delete.push(if carries { "1" } else { "0" });
                }
                None => {
                    seen.push(Vec::new());
                    delete.push("0");
                }
            }
        }
        for s in &seen {
            call.arg(s.as_slice());
        }
        for d in delete {
            call.arg(d);
        }
        self.shared.invoke::<u64>(&call).await
    }
}

/// `UNLINK`s every key matching `pattern` (on the node of `slot_key`'s
/// slot), a `SCAN` page at a time.
pub(crate) async fn unlink_matching(shared: &Shared, pattern: &str, slot_key: &str) -> Result<()> {
    let mut cursor = 0u64;
    loop {
        let (next, keys) = scan_step(shared, pattern, slot_key, cursor, SCAN_COUNT).await?;
        if !keys.is_empty() {
            shared.query::<()>(redis::cmd("UNLINK").arg(&keys)).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Milliseconds for `PXAT` / `PEXPIREAT`, which refuse values below 1; a
/// purge time at or before the epoch is long past either way.
fn purge_millis(purge: Timestamp) -> i64 {
    purge.as_millis().max(1)
}

fn decode_value(bytes: &[u8], expected: Option<&Key>, repository: &str) -> Option<Entry> {
    match envelope::decode(bytes) {
        Ok(entry) if expected.is_none_or(|k| *k == entry.key) => Some(entry),
        Ok(entry) => {
            let e = Error::new(
                ErrorKind::Codec,
                format!("the value holds the entry of another key, {}", entry.key),
            )
            .with_backend(NAME);
            record_undecodable(NAME, repository, &e);
            None
        }
        Err(e) => {
            record_undecodable(NAME, repository, &e);
            None
        }
    }
}

/// One `SCAN` step on the node holding the store's slot (`slot_key`).
pub(crate) async fn scan_step(
    shared: &Shared,
    pattern: &str,
    slot_key: &str,
    cursor: u64,
    count: usize,
) -> Result<(u64, Vec<Vec<u8>>)> {
    shared
        .query_on_slot_of(
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(count),
            slot_key,
        )
        .await
}

/// The Redis keys one `SCAN` iteration already returned, as 128-bit keyed
/// hashes (a collision, which would skip an entry, has odds of about
/// n² / 2¹²⁹ for n keys): `SCAN` returns a key more than once when the
/// keyspace shrinks or grows during the iteration.
#[derive(Default)]
struct Seen {
    hashers: (RandomState, RandomState),
    hashes: HashSet<u128>,
}

impl Seen {
    /// Drops from `keys` those met before (in this call or earlier ones).
    fn retain_new(&mut self, keys: &mut Vec<Vec<u8>>) {
        keys.retain(|key| {
            let high = u128::from(self.hashers.0.hash_one(key));
            let low = u128::from(self.hashers.1.hash_one(key));
            self.hashes.insert(high << 64 | low)
        });
    }
}

/// State of a streaming `scan`: the next cursor, or done.
struct ScanState {
    shared: Arc<Shared>,
    pattern: String,
    slot_key: String,
    repository: String,
    select: Select,
    now: Timestamp,
    cursor: Option<u64>,
    seen: Seen,
}

impl ScanState {
    /// The next non-empty page of selected entries, or `None` at the end.
    async fn next_page(mut self) -> Result<Option<(Vec<Entry>, ScanState)>> {
        loop {
            let Some(cursor) = self.cursor else {
                return Ok(None);
            };
            let (next, mut keys) = scan_step(
                &self.shared,
                &self.pattern,
                &self.slot_key,
                cursor,
                SCAN_COUNT_ENTRIES,
            )
            .await?;
            self.cursor = (next != 0).then_some(next);
            self.seen.retain_new(&mut keys);
            if keys.is_empty() {
                continue;
            }
            let values: Vec<Option<Vec<u8>>> =
                self.shared.query(redis::cmd("MGET").arg(&keys)).await?;
            let page: Vec<Entry> = values
                .iter()
                .flatten()
                .filter_map(|bytes| decode_value(bytes, None, &self.repository))
                .filter(|entry| self.select.matches(entry.expires_at, self.now))
                .collect();
            if !page.is_empty() {
                return Ok(Some((page, self)));
            }
        }
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let value: Option<Vec<u8>> = self
            .shared
            .query(redis::cmd("GET").arg(self.redis_key(key)))
            .await?;
        Ok(value.and_then(|bytes| self.decode(&bytes, key)))
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entry>>> {
        if keys.is_empty() {
            self.shared.connection()?;
            return Ok(Vec::new());
        }
        let redis_keys: Vec<String> = keys.iter().map(|k| self.redis_key(k)).collect();
        let values: Vec<Option<Vec<u8>>> = self
            .shared
            .query(redis::cmd("MGET").arg(&redis_keys))
            .await?;
        Ok(values
            .into_iter()
            .zip(keys)
            .map(|(value, key)| value.and_then(|bytes| self.decode(&bytes, key)))
            .collect())
    }

    async fn put(&self, entry: Entry) -> Result<()> {
        if !entry.tags.is_empty() {
            let mut pipe = redis::pipe();
            pipe.atomic();
            self.add_write(&mut pipe, &entry)?;
            return self.shared.query_pipeline::<()>(&pipe).await;
        }
        let cmd = self.set_command(&entry)?;
        self.shared.query::<()>(&cmd).await
    }

    async fn put_many(&self, entries: Vec<Entry>) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for entry in &entries {
            self.add_write(&mut pipe, entry)?;
        }
        if entries.is_empty() {
            self.shared.connection()?;
            return Ok(());
        }
        self.shared.query_pipeline::<()>(&pipe).await
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        let n: u64 = self
            .shared
            .query(redis::cmd("UNLINK").arg(self.redis_key(key)))
            .await?;
        Ok(n > 0)
    }

    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        if keys.is_empty() {
            self.shared.connection()?;
            return Ok(0);
        }
        let redis_keys: Vec<String> = keys.iter().map(|k| self.redis_key(k)).collect();
        self.shared
            .query(redis::cmd("UNLINK").arg(&redis_keys))
            .await
    }

    async fn contains(&self, key: &Key, now: Timestamp) -> Result<bool> {
        let header: Vec<u8> = self
            .shared
            .query(
                redis::cmd("GETRANGE")
                    .arg(self.redis_key(key))
                    .arg(0)
                    .arg(HEADER_LEN - 1),
            )
            .await?;
        Ok(self.header_matches(&header, Select::Fresh, now))
    }

    async fn count(&self, select: Select, now: Timestamp) -> Result<u64> {
        self.count_inner(select, now).await
    }

    async fn clear(&self, select: Select, now: Timestamp) -> Result<u64> {
        self.clear_inner(select, now).await
    }

    fn scan(&self, select: Select, now: Timestamp) -> BoxStream<'static, Result<Entry>> {
        let repository = self.spec.repository.as_str().to_owned();
        let state = ScanState {
            shared: Arc::clone(&self.shared),
            pattern: self.pattern.clone(),
            slot_key: self.slot_key.clone(),
            repository: repository.clone(),
            select,
            now,
            cursor: Some(0),
            seen: Seen::default(),
        };
        futures::stream::try_unfold(state, ScanState::next_page)
            .map_ok(|page| futures::stream::iter(page.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    async fn set_expiry(&self, key: &Key, expires_at: Option<Timestamp>) -> Result<bool> {
        let purge = self
            .spec
            .purge_at(expires_at)
            .map(|p| purge_millis(p).to_string())
            .unwrap_or_default();
        let outcome: i64 = self
            .shared
            .invoke(
                SET_EXPIRY
                    .key(self.redis_key(key))
                    .arg(&MAGIC[..])
                    .arg(if expires_at.is_some() { "1" } else { "0" })
                    .arg(&expires_at.map_or(0, Timestamp::as_millis).to_be_bytes()[..])
                    .arg(purge)
                    .arg(&MAGIC_TAGGED[..]),
            )
            .await?;
        match outcome {
            1 => Ok(true),
            0 => Ok(false),
            _ => {
                let e = Error::new(
                    ErrorKind::Codec,
                    "set_expiry found a value that is not an entry envelope; left it untouched",
                )
                .with_backend(NAME);
                record_undecodable(NAME, self.spec.repository.as_str(), &e);
                Ok(false)
            }
        }
    }

    async fn purge_tag(&self, tag: &str) -> Result<u64> {
        respcache_core::tags::validate_tag(tag)?;
        self.purge_tag_inner(tag).await
    }

    /// `SET <lease key> <token> NX PX <ttl>`: one round trip, expiry by the
    /// server's clock.
    async fn acquire_lease(&self, key: &Key, ttl: Duration) -> Result<Option<LeaseToken>> {
        let token = LeaseToken::generate();
        let set: Option<String> = self
            .shared
            .query(
                redis::cmd("SET")
                    .arg(self.lease_key(key))
                    .arg(token.as_str())
                    .arg("NX")
                    .arg("PX")
                    .arg(respcache_core::lease::ttl_millis(ttl)),
            )
            .await?;
        Ok(set.map(|_| token))
    }

    /// A compare-and-delete script: one round trip.
    async fn release_lease(&self, key: &Key, token: &LeaseToken) -> Result<bool> {
        let deleted: i64 = self
            .shared
            .invoke(RELEASE_LEASE.key(self.lease_key(key)).arg(token.as_str()))
            .await?;
        Ok(deleted == 1)
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.shared.target)
            .field("prefix", &self.prefix)
            .field("retention", &self.spec.retention)
            .finish()
    }
}
