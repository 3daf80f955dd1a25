//! [`MongoDbStore`]: one repository's entries, a collection.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{Document, doc};
use mongodb::{Collection, Cursor};
use respcache_core::stats::record_undecodable;
use respcache_core::{Entry, Error, Key, LeaseToken, Result, Select, Store, StoreSpec, Timestamp};

use crate::NAME;
use crate::backend::Shared;
use crate::document::{
    check_size, entry_from_document, expiry_update, full_document, id_filter, id_of, ids_filter,
    select_filter, tag_filter, update_document,
};
use crate::error::{is_duplicate_key, operation_timed_out};
use crate::write::{self, Write};

/// The most keys one `$in` query or delete names; longer lists are split.
const KEYS_PER_QUERY: usize = 10_000;

/// Writes per bulk write of `put_many`: each is one round trip under the
/// operation timeout, so a large `put_many` gets a deadline per 1000
/// entries instead of one for all.
const WRITES_PER_CALL: usize = 1000;

/// One repository's entries in a [`MongoDbBackend`](crate::MongoDbBackend):
/// the collection `<repository>` in the database `<cache>`.
///
/// Made by [`Backend::open_store`](respcache_core::Backend::open_store); see
/// [`MongoDbBackend`](crate::MongoDbBackend) for the semantics.
pub struct MongoDbStore {
    shared: Arc<Shared>,
    coll: Collection<Document>,
    spec: StoreSpec,
    reinsert_dates: bool,
    /// The store's leases (see [`crate::lease`]).
    leases: Collection<Document>,
    /// Whether this handle has made sure of the leases' TTL index.
    leases_ready: AtomicBool,
}

impl MongoDbStore {
    pub(crate) fn new(
        shared: Arc<Shared>,
        coll: Collection<Document>,
        spec: StoreSpec,
        reinsert_dates: bool,
    ) -> Self {
        let leases = coll
            .client()
            .database(&coll.namespace().db)
            .collection(&crate::lease::collection_name(coll.name()));
        MongoDbStore {
            shared,
            coll,
            spec,
            reinsert_dates,
            leases,
            leases_ready: AtomicBool::new(false),
        }
    }

    /// The driver's collection, for anything respcache does not do.
    pub fn collection(&self) -> &Collection<Document> {
        &self.coll
    }

    /// The entry in `doc`, or a miss (logged and counted) if it does not decode.
    fn decode(&self, doc: Document) -> Option<Entry> {
        decode(doc, self.spec.repository.as_str())
    }

    /// How `entry` is written: a `$set` upsert, or a whole-document rewrite
    /// when it carries a purge date and the server cannot `$set` dates.
    fn plan(&self, entry: &Entry) -> Write {
        let purge_at = self.spec.purge_at(entry.expires_at);
        let id = entry.key.encode();
        if purge_at.is_some() && self.reinsert_dates {
            Write::Reinsert {
                id,
                document: full_document(entry, &self.spec.schema, purge_at),
            }
        } else {
            Write::Update {
                id,
                update: update_document(entry, &self.spec.schema, purge_at),
            }
        }
    }

    /// Runs `writes` in order, [`WRITES_PER_CALL`] per round trip, each
    /// round trip under the operation timeout.
    async fn write(&self, mut writes: Vec<Write>) -> Result<()> {
        let client = self.coll.client();
        while !writes.is_empty() {
            let rest = writes.split_off(writes.len().min(WRITES_PER_CALL));
            let chunk = std::mem::replace(&mut writes, rest);
            self.shared
                .call(write::run(
                    client,
                    &self.coll,
                    chunk,
                    &self.shared.no_bulk_write,
                ))
                .await?;
        }
        Ok(())
    }
}

fn decode(doc: Document, repository: &str) -> Option<Entry> {
    match entry_from_document(doc) {
        Ok(entry) => Some(entry),
        Err(error) => {
            record_undecodable(NAME, repository, &error);
            None
        }
    }
}

#[async_trait]
impl Store for MongoDbStore {
    async fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let found = self.shared.call(self.coll.find_one(id_filter(key))).await?;
        Ok(found.and_then(|doc| self.decode(doc)))
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entry>>> {
        let mut found: HashMap<String, Entry> = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let docs: Vec<Document> = self
                .shared
                .call(async {
                    self.coll
                        .find(ids_filter(chunk))
                        // all in the first reply (up to 16 MiB): one round trip
                        .batch_size(u32::try_from(chunk.len()).unwrap_or(u32::MAX))
                        .await?
                        .try_collect()
                        .await
                })
                .await?;
            for doc in docs {
                let Some(id) = id_of(&doc).map(str::to_owned) else {
                    continue;
                };
                if let Some(entry) = self.decode(doc) {
                    found.insert(id, entry);
                }
            }
        }
        Ok(keys
            .iter()
            .map(|k| found.get(&k.encode()).cloned())
            .collect())
    }

    async fn put(&self, entry: Entry) -> Result<()> {
        check_size(&entry)?;
        self.write(vec![self.plan(&entry)]).await
    }

    async fn put_many(&self, entries: Vec<Entry>) -> Result<()> {
        // Refuse before sending anything: nothing is half-written.
        for entry in &entries {
            check_size(entry)?;
        }
        let writes = entries.iter().map(|e| self.plan(e)).collect();
        drop(entries);
        self.write(writes).await
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        let result = self
            .shared
            .call(self.coll.delete_one(id_filter(key)))
            .await?;
        Ok(result.deleted_count > 0)
    }

    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        let mut deleted = 0;
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let result = self
                .shared
                .call(self.coll.delete_many(ids_filter(chunk)))
                .await?;
            deleted += result.deleted_count;
        }
        Ok(deleted)
    }

    async fn contains(&self, key: &Key, now: Timestamp) -> Result<bool> {
        let mut filter = id_filter(key);
        filter.extend(select_filter(Select::Fresh, now));
        let found = self
            .shared
            .call(self.coll.find_one(filter).projection(doc! { "_id": 1 }))
            .await?;
        Ok(found.is_some())
    }

    async fn count(&self, select: Select, now: Timestamp) -> Result<u64> {
        self.shared
            .call_whole_store(self.coll.count_documents(select_filter(select, now)))
            .await
    }

    async fn clear(&self, select: Select, now: Timestamp) -> Result<u64> {
        let result = self
            .shared
            .call_whole_store(self.coll.delete_many(select_filter(select, now)))
            .await?;
        Ok(result.deleted_count)
    }

    /// `delete_many({tags: tag})`, answered by the multikey index `tags_1`.
    async fn purge_tag(&self, tag: &str) -> Result<u64> {
        respcache_core::tags::validate_tag(tag)?;
        let result = self
            .shared
            .call_whole_store(self.coll.delete_many(tag_filter(tag)))
            .await?;
        Ok(result.deleted_count)
    }

    fn scan(&self, select: Select, now: Timestamp) -> BoxStream<'static, Result<Entry>> {
        let shared = Arc::clone(&self.shared);
        let coll = self.coll.clone();
        let repository = self.spec.repository.as_str().to_owned();
        futures::stream::once(async move {
            let cursor = shared
                .call_whole_store(coll.find(select_filter(select, now)))
                .await?;
            Ok::<_, Error>(entries(cursor, shared, repository))
        })
        .try_flatten()
        .boxed()
    }

    async fn set_expiry(&self, key: &Key, expires_at: Option<Timestamp>) -> Result<bool> {
        let purge_at = self.spec.purge_at(expires_at);
        if purge_at.is_none() || !self.reinsert_dates {
            let result = self
                .shared
                .call(
                    self.coll
                        .update_one(id_filter(key), expiry_update(expires_at, purge_at)),
                )
                .await?;
            return Ok(result.matched_count > 0);
        }
        // The server cannot `$set` a date: take the document and insert it
        // again whole, with the new expiry and purge date.
        let taken = self
            .shared
            .call(self.coll.find_one_and_delete(id_filter(key)))
            .await?;
        let Some(mut entry) = taken.and_then(|doc| self.decode(doc)) else {
            return Ok(false);
        };
        entry.expires_at = expires_at;
        let document = full_document(&entry, &self.spec.schema, purge_at);
        self.shared
            .call(async {
                match self.coll.insert_one(document).await {
                    // A concurrent put wrote the key in between: its entry
                    // is newer than ours, so it stands.
                    Err(e) if is_duplicate_key(&e) => Ok(()),
                    other => other.map(drop),
                }
            })
            .await?;
        Ok(true)
    }

    /// `insert_one` of a unique `_id` (see [`crate::lease`]).
    async fn acquire_lease(&self, key: &Key, ttl: Duration) -> Result<Option<LeaseToken>> {
        if !self.leases_ready.load(Ordering::Acquire) {
            self.shared
                .call(crate::lease::ensure_index(&self.leases))
                .await?;
            self.leases_ready.store(true, Ordering::Release);
        }
        let token = LeaseToken::generate();
        let now = Timestamp::now();
        let expires = now.saturating_add(Duration::from_millis(respcache_core::lease::ttl_millis(
            ttl,
        )));
        let taken = self
            .shared
            .call(crate::lease::acquire(
                &self.leases,
                key,
                &token,
                expires,
                now,
            ))
            .await?;
        Ok(taken.then_some(token))
    }

    /// One conditional `delete_one`.
    async fn release_lease(&self, key: &Key, token: &LeaseToken) -> Result<bool> {
        self.shared
            .call(crate::lease::release(
                &self.leases,
                key,
                token,
                Timestamp::now(),
            ))
            .await
    }
}

/// The cursor's documents as entries, batch by batch; undecodable documents
/// are skipped (logged and counted). Each wait for the next document (a
/// batch of up to 16 MiB when the cursor asks for more) is bounded by the
/// whole-store timeout, and a closed backend ends the stream
/// with a `Closed` error.
fn entries(
    cursor: Cursor<Document>,
    shared: Arc<Shared>,
    repository: String,
) -> BoxStream<'static, Result<Entry>> {
    futures::stream::try_unfold(cursor, move |mut cursor| {
        let shared = Arc::clone(&shared);
        let repository = repository.clone();
        async move {
            loop {
                let next = match shared.whole_store_timeout() {
                    Some(limit) => tokio::time::timeout(limit, cursor.next())
                        .await
                        .map_err(|_| operation_timed_out(limit))?,
                    None => cursor.next().await,
                };
                match next {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(shared.map(e)),
                    Some(Ok(doc)) => {
                        if let Some(entry) = decode(doc, &repository) {
                            return Ok(Some((entry, cursor)));
                        }
                    }
                }
            }
        }
    })
    .boxed()
}

impl fmt::Debug for MongoDbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoDbStore")
            .field("namespace", &self.coll.namespace().to_string())
            .field("retention", &self.spec.retention)
            .field("reinsert_dates", &self.reinsert_dates)
            .finish()
    }
}
