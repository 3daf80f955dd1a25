//! [`DynamoDbStore`]: one repository's entries, a partition of the table.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use respcache_core::entry::is_fresh;
use respcache_core::stats::record_undecodable;
use respcache_core::{
    Entry, Error, ErrorKind, Key, Result, Select, Store, StoreSpec, Timestamp, envelope,
};

use crate::NAME;
use crate::batch;
use crate::error::backend_error;
use crate::item::{
    self, EXPIRES_AT, GEN, INLINE_LIMIT, Item, ItemKey, Manifest, PARTS, PK, PURGE_AT, Stored, TAGS,
};
use crate::parts;
use crate::query::{self, QuerySpec};
use crate::shared::Shared;

/// How often a conditional write is retried when concurrent writers keep
/// replacing the entry under it.
const MAX_REPLACE_ATTEMPTS: usize = 10;
/// How often a reader re-reads a manifest whose parts went missing (the
/// entry was replaced while it read).
const MAX_READ_ATTEMPTS: usize = 3;

/// One repository's entries: the partition `<cache>#<repository>` of the
/// backend's shared table (parts of split entries live in
/// `<cache>#<repository>#parts`), or the partition `<repository>` of the
/// cache's own table (parts in `<repository>#parts`).
///
/// Reads are strongly consistent unless the backend was configured
/// otherwise; entries past their purge time (`expires_at + retention`) are
/// hidden from every read even before DynamoDB's TTL deletes them.
#[derive(Clone)]
pub struct DynamoDbStore {
    shared: Arc<Shared>,
    spec: Arc<StoreSpec>,
    pk: Arc<str>,
    parts_pk: Arc<str>,
    leases_pk: Arc<str>,
}

impl DynamoDbStore {
    pub(crate) fn new(shared: Arc<Shared>, layout: item::Layout, spec: &StoreSpec) -> Self {
        DynamoDbStore {
            shared,
            pk: layout.entries_pk(&spec.cache, &spec.repository).into(),
            parts_pk: layout.parts_pk(&spec.cache, &spec.repository).into(),
            leases_pk: layout.leases_pk(&spec.cache, &spec.repository).into(),
            spec: Arc::new(spec.clone()),
        }
    }

    /// The partition key of this store's entries.
    pub fn partition_key(&self) -> &str {
        &self.pk
    }

    fn undecodable(&self, error: &Error) {
        record_undecodable(NAME, self.spec.repository.as_str(), error);
    }

    /// The TTL value for an entry expiring at `expires_at`.
    fn purge(&self, expires_at: Option<Timestamp>) -> Option<i64> {
        self.spec.purge_at(expires_at).map(item::purge_seconds)
    }

    async fn get_item(&self, sk: &str, projection: Option<&[&str]>) -> Result<Option<Item>> {
        let mut request = self
            .shared
            .client
            .get_item()
            .table_name(self.shared.table.clone())
            .set_key(Some(item::primary(&self.pk, sk)))
            .consistent_read(self.shared.consistent_read);
        if let Some(attributes) = projection {
            let (expression, names) = batch::projection_of(attributes);
            request = request
                .projection_expression(expression)
                .set_expression_attribute_names(Some(names));
        }
        let out = request.send().await.map_err(|e| self.shared.sdk_error(e))?;
        Ok(out.item)
    }

    /// The generation the item under `sk` names, if it is a manifest.
    async fn current_generation(&self, sk: &str) -> Result<Option<(String, u32)>> {
        Ok(self
            .get_item(sk, Some(&[GEN, PARTS]))
            .await?
            .and_then(|i| item::generation_of(&i)))
    }

    /// Puts the item `make` builds, conditioned on knowing which generation
    /// it replaces; returns that generation (whose parts the caller
    /// deletes). The condition makes "read the old generation, replace it"
    /// atomic, so no concurrent writer's parts are ever deleted.
    async fn put_replacing(
        &self,
        sk: &str,
        make: &(dyn Fn() -> Item + Send + Sync),
    ) -> Result<Option<(String, u32)>> {
        let mut expected: Option<(String, u32)> = None;
        for _ in 0..MAX_REPLACE_ATTEMPTS {
            let mut request = self
                .shared
                .client
                .put_item()
                .table_name(self.shared.table.clone())
                .set_item(Some(make()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .expression_attribute_names("#gen", GEN);
            request = match &expected {
                None => request.condition_expression("attribute_not_exists(#gen)"),
                Some((generation, _)) => request
                    .condition_expression("#gen = :gen")
                    .expression_attribute_values(":gen", item::s(generation.clone())),
            };
            match request.send().await {
                Ok(_) => return Ok(expected),
                Err(e) => {
                    let old = match e.as_service_error() {
                        Some(PutItemError::ConditionalCheckFailedException(c)) => {
                            Some(c.item().cloned())
                        }
                        _ => None,
                    };
                    expected = match old {
                        None => return Err(self.shared.sdk_error(e)),
                        Some(Some(old)) => item::generation_of(&old),
                        // The server did not return the old item.
                        Some(None) => self.current_generation(sk).await?,
                    };
                }
            }
        }
        Err(contention())
    }

    /// Puts one entry, inline or split.
    async fn put_entry(&self, entry: &Entry) -> Result<()> {
        let key = ItemKey::of(&entry.key);
        let purge = self.purge(entry.expires_at);
        if item::inline_size(&self.pk, &key, entry) > INLINE_LIMIT {
            return self.put_split(entry, &key, purge).await;
        }
        let make = || item::inline_item(&self.pk, &key, entry, purge);
        if let Some(old) = self.put_replacing(&key.sk, &make).await? {
            parts::delete_quietly(&self.shared, &self.parts_pk, vec![old]).await;
        }
        Ok(())
    }

    /// Puts an entry over the item limit: parts under a fresh generation
    /// first, then the manifest (the commit), then the replaced
    /// generation's parts are deleted.
    async fn put_split(&self, entry: &Entry, key: &ItemKey, purge: Option<i64>) -> Result<()> {
        let bytes = envelope::encode(entry);
        let generation = parts::new_generation();
        let count = match parts::write(&self.shared, &self.parts_pk, &generation, &bytes, purge)
            .await
        {
            Ok(count) => count,
            Err(e) => {
                // No manifest names this generation: its parts are unreachable.
                let written = parts::part_count(bytes.len());
                parts::delete_quietly(&self.shared, &self.parts_pk, vec![(generation, written)])
                    .await;
                return Err(e);
            }
        };
        let manifest = Manifest {
            generation,
            parts: count,
            size: bytes.len() as u64,
            expires_at: entry.expires_at,
        };
        let make = || item::manifest_item(&self.pk, key, entry, purge, &manifest);
        match self.put_replacing(&key.sk, &make).await {
            Ok(old) => {
                parts::delete_quietly(&self.shared, &self.parts_pk, old.into_iter().collect())
                    .await;
                Ok(())
            }
            Err(e) => {
                if e.is_temporary() {
                    // The manifest may have been written after all: keep the
                    // parts (they carry the entry's TTL).
                    tracing::warn!(
                        table = %self.shared.table,
                        error = %e,
                        "respcache: a split entry's manifest write failed ambiguously; \
                         its parts are kept"
                    );
                } else {
                    parts::delete_quietly(
                        &self.shared,
                        &self.parts_pk,
                        vec![(manifest.generation, manifest.parts)],
                    )
                    .await;
                }
                Err(e)
            }
        }
    }

    /// The entry an item holds: `None` when purged, undecodable (counted as
    /// such), or not `key`'s.
    async fn resolve(&self, key: Option<&Key>, sk: &str, item: Item) -> Result<Option<Entry>> {
        if item::is_purged(&item, Timestamp::now()) {
            return Ok(None);
        }
        match item::decode(item) {
            Ok(Stored::Inline(entry)) => Ok(self.matching(key, entry)),
            Ok(Stored::Split(manifest)) => self.load_split(key, sk, manifest).await,
            Err(e) => {
                self.undecodable(&e);
                Ok(None)
            }
        }
    }

    fn matching(&self, key: Option<&Key>, entry: Entry) -> Option<Entry> {
        if key.is_some_and(|k| *k != entry.key) {
            self.undecodable(&backend_error(
                ErrorKind::Codec,
                format!("the item for {:?} holds the entry of {:?}", key, entry.key),
            ));
            return None;
        }
        Some(entry)
    }

    /// Reads the parts a manifest names and decodes the entry. When parts
    /// are missing (the entry was replaced or deleted meanwhile) the
    /// manifest is read again, so a reader gets the old or the new version,
    /// never a mix.
    async fn load_split(
        &self,
        key: Option<&Key>,
        sk: &str,
        mut manifest: Manifest,
    ) -> Result<Option<Entry>> {
        for _ in 0..MAX_READ_ATTEMPTS {
            if let Some(bytes) = parts::read(&self.shared, &self.parts_pk, &manifest).await? {
                return match envelope::decode(&bytes) {
                    Ok(mut entry) => {
                        // set_expiry changes the manifest only.
                        entry.expires_at = manifest.expires_at;
                        Ok(self.matching(key, entry))
                    }
                    Err(e) => {
                        self.undecodable(&e);
                        Ok(None)
                    }
                };
            }
            let Some(item) = self.get_item(sk, None).await? else {
                return Ok(None);
            };
            if item::is_purged(&item, Timestamp::now()) {
                return Ok(None);
            }
            match item::decode(item) {
                Ok(Stored::Split(newer)) if newer.generation != manifest.generation => {
                    manifest = newer
                }
                Ok(Stored::Split(_)) => break,
                Ok(Stored::Inline(entry)) => return Ok(self.matching(key, entry)),
                Err(e) => {
                    self.undecodable(&e);
                    return Ok(None);
                }
            }
        }
        self.undecodable(&backend_error(
            ErrorKind::Codec,
            format!(
                "parts of generation {} of a split entry are missing",
                manifest.generation
            ),
        ));
        Ok(None)
    }

    /// Whether any split entry has parts in this repository.
    async fn has_parts(&self) -> Result<bool> {
        let spec = QuerySpec::partition(self.parts_pk.as_ref())
            .project(&[])
            .limit(1);
        match query::pages(Arc::clone(&self.shared), spec).next().await {
            Some(page) => Ok(!page?.items.is_empty()),
            None => Ok(false),
        }
    }

    /// Deletes the items whose keys are in `items` unconditionally, then the
    /// parts of those that were manifests (`clear(Select::All)`: anything
    /// written meanwhile is cleared too, which is what "all" asks for).
    async fn delete_items(&self, items: Vec<Item>) -> Result<()> {
        let mut gens = Vec::new();
        let mut writes = Vec::with_capacity(items.len());
        for found in items {
            if let Some(generation) = item::generation_of(&found) {
                gens.push(generation);
            }
            if let Some(sk) = item::sort_key_of(&found) {
                writes.push(batch::delete(item::primary(&self.pk, sk))?);
            }
        }
        batch::write_all(&self.shared, writes).await?;
        parts::delete_quietly(&self.shared, &self.parts_pk, gens).await;
        Ok(())
    }

    /// Deletes the item under `sk` if it exists and, with `only`, if it
    /// still matches that selection at `now` (a DynamoDB condition, so an
    /// entry rewritten since it was read is left alone). Returns the deleted
    /// item, `None` when there was none or the condition failed.
    async fn delete_one(&self, sk: &str, only: Only<'_>) -> Result<Option<Item>> {
        let mut request = self
            .shared
            .client
            .delete_item()
            .table_name(self.shared.table.clone())
            .set_key(Some(item::primary(&self.pk, sk)))
            .return_values(ReturnValue::AllOld);
        let condition = match only {
            Only::Selected(Select::Expired, _) => Some("#exp <= :now"),
            // `expires_at` is absent when the entry never goes stale (a
            // missing item passes too, and returns nothing).
            Only::Selected(Select::Fresh, _) => Some("attribute_not_exists(#exp) OR #exp > :now"),
            Only::Selected(Select::All, _) | Only::Any => None,
            Only::Tagged(_) => Some("contains(#tags, :tag)"),
        };
        match (condition, only) {
            (Some(condition), Only::Selected(_, now)) => {
                request = request
                    .condition_expression(condition)
                    .expression_attribute_names("#exp", EXPIRES_AT)
                    .expression_attribute_values(":now", item::n(now.as_millis()));
            }
            (Some(condition), Only::Tagged(tag)) => {
                request = request
                    .condition_expression(condition)
                    .expression_attribute_names("#tags", TAGS)
                    .expression_attribute_values(":tag", item::s(tag));
            }
            _ => {}
        }
        match request.send().await {
            Ok(out) => Ok(out.attributes.filter(|a| !a.is_empty())),
            Err(e) => match e.as_service_error() {
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => Ok(None),
                _ => Err(self.shared.sdk_error(e)),
            },
        }
    }

    /// Deletes the items under `sks` one request each (`batch_concurrency`
    /// in flight), each conditioned as [`delete_one`](Self::delete_one)
    /// says, then the parts of the manifests really deleted (whichever
    /// generation they named by then). Returns how many live (not purged)
    /// entries were deleted.
    async fn delete_each(&self, sks: impl Iterator<Item = String>, only: Only<'_>) -> Result<u64> {
        let outcomes: Vec<Result<Option<Item>>> = futures::stream::iter(sks)
            .map(|sk| async move { self.delete_one(&sk, only).await })
            .buffer_unordered(self.shared.batch_concurrency.max(1))
            .collect()
            .await;
        let mut deleted = Vec::with_capacity(outcomes.len());
        let mut failed = None;
        for outcome in outcomes {
            match outcome {
                Ok(old) => deleted.extend(old),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        // Even when some deletes failed, the parts of those that happened
        // go too (nothing else would ever delete them).
        let gens = deleted.iter().filter_map(item::generation_of).collect();
        parts::delete_quietly(&self.shared, &self.parts_pk, gens).await;
        if let Some(e) = failed {
            return Err(e);
        }
        let now = Timestamp::now();
        Ok(deleted.iter().filter(|i| !item::is_purged(i, now)).count() as u64)
    }

    async fn get_many_inner(&self, keys: &[Key]) -> Result<Vec<Option<Entry>>> {
        let item_keys: Vec<ItemKey> = keys.iter().map(ItemKey::of).collect();
        let unique: HashSet<&str> = item_keys.iter().map(|k| k.sk.as_str()).collect();
        let primaries = unique
            .iter()
            .map(|sk| item::primary(&self.pk, sk))
            .collect();
        let mut found: HashMap<String, Item> = batch::get_all(&self.shared, primaries, None, false)
            .await?
            .into_iter()
            .filter_map(|i| Some((item::sort_key_of(&i)?.to_owned(), i)))
            .collect();
        let mut resolved: HashMap<&str, Option<Entry>> = HashMap::with_capacity(unique.len());
        let mut out = Vec::with_capacity(keys.len());
        for (key, item_key) in keys.iter().zip(&item_keys) {
            let sk = item_key.sk.as_str();
            if !resolved.contains_key(sk) {
                let entry = match found.remove(sk) {
                    Some(i) => self.resolve(Some(key), sk, i).await?,
                    None => None,
                };
                resolved.insert(sk, entry);
            }
            out.push(resolved.get(sk).cloned().flatten());
        }
        Ok(out)
    }

    async fn put_many_inner(&self, entries: Vec<Entry>) -> Result<()> {
        // The last entry of a repeated key wins, as with `put` in order.
        let mut by_sk: HashMap<String, (ItemKey, Entry)> = HashMap::with_capacity(entries.len());
        for entry in entries {
            let key = ItemKey::of(&entry.key);
            by_sk.insert(key.sk.clone(), (key, entry));
        }
        let (small, large): (Vec<_>, Vec<_>) = by_sk
            .into_values()
            .partition(|(key, entry)| item::inline_size(&self.pk, key, entry) <= INLINE_LIMIT);
        futures::stream::iter(large)
            .map(|(key, entry)| async move {
                let purge = self.purge(entry.expires_at);
                self.put_split(&entry, &key, purge).await
            })
            .buffer_unordered(self.shared.batch_concurrency)
            .try_collect::<()>()
            .await?;
        if small.is_empty() {
            return Ok(());
        }
        // A batch write cannot be conditional: find the split entries it
        // replaces first (only when the repository has any), and delete
        // their parts after.
        let replaced = if self.has_parts().await? {
            let keys = small.iter().map(|(key, _)| key.primary(&self.pk)).collect();
            batch::get_all(&self.shared, keys, Some(&[GEN, PARTS]), true)
                .await?
                .iter()
                .filter_map(item::generation_of)
                .collect()
        } else {
            Vec::new()
        };
        let writes = small
            .iter()
            .map(|(key, entry)| {
                batch::put(item::inline_item(
                    &self.pk,
                    key,
                    entry,
                    self.purge(entry.expires_at),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        drop(small);
        batch::write_all(&self.shared, writes).await?;
        parts::delete_quietly(&self.shared, &self.parts_pk, replaced).await;
        Ok(())
    }

    async fn delete_inner(&self, key: &Key) -> Result<bool> {
        let key = ItemKey::of(key);
        let out = self
            .shared
            .client
            .delete_item()
            .table_name(self.shared.table.clone())
            .set_key(Some(key.primary(&self.pk)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| self.shared.sdk_error(e))?;
        let Some(old) = out.attributes else {
            return Ok(false);
        };
        if let Some(generation) = item::generation_of(&old) {
            parts::delete_quietly(&self.shared, &self.parts_pk, vec![generation]).await;
        }
        Ok(!item::is_purged(&old, Timestamp::now()))
    }

    async fn delete_many_inner(&self, keys: &[Key]) -> Result<u64> {
        // One DeleteItem per key, counting what each really deleted: a key
        // deleted concurrently by someone else is not counted twice.
        let unique: HashSet<String> = keys.iter().map(|k| ItemKey::of(k).sk).collect();
        self.delete_each(unique.into_iter(), Only::Any).await
    }

    async fn contains_inner(&self, key: &Key, now: Timestamp) -> Result<bool> {
        let key = ItemKey::of(key);
        let Some(found) = self
            .get_item(&key.sk, Some(&[EXPIRES_AT, PURGE_AT]))
            .await?
        else {
            return Ok(false);
        };
        if item::is_purged(&found, Timestamp::now()) {
            return Ok(false);
        }
        match item::read_i64(&found, EXPIRES_AT) {
            Ok(expires_at) => Ok(is_fresh(expires_at.map(Timestamp::from_millis), now)),
            Err(e) => {
                self.undecodable(&e);
                Ok(false)
            }
        }
    }

    async fn clear_inner(&self, select: Select, now: Timestamp) -> Result<u64> {
        let spec = QuerySpec::partition(self.pk.as_ref())
            .entries(select, now, Timestamp::now())
            .project(&[GEN, PARTS]);
        // The next page is read while the previous one is deleted.
        let pages = query::pages(Arc::clone(&self.shared), spec);
        if select == Select::All {
            return pages
                .map(|page| async move {
                    let items = page?.items;
                    let n = items.len() as u64;
                    self.delete_items(items).await?;
                    Ok::<u64, Error>(n)
                })
                .buffer_unordered(2)
                .try_fold(0u64, |total, n| async move { Ok(total + n) })
                .await;
        }
        // A filtered clear deletes only what still matches the selection
        // when deleted: an entry rewritten since the Query read it (a fresh
        // `put`, `set_expiry`) is kept, and only deletes that happened count.
        pages
            .map(|page| async move {
                let items = page?.items;
                let sks = items
                    .iter()
                    .filter_map(item::sort_key_of)
                    .map(str::to_owned)
                    .collect::<Vec<_>>();
                self.delete_each(sks.into_iter(), Only::Selected(select, now))
                    .await
            })
            .buffer_unordered(2)
            .try_fold(0u64, |total, n| async move { Ok(total + n) })
            .await
    }

    /// Queries the store's partition for items whose `tags` contain `tag`
    /// (a filter: DynamoDB reads, and bills, the whole partition; see the
    /// crate README, "Tags") and deletes each on the condition that it
    /// still carries the tag, split entries' parts included.
    async fn purge_tag_inner(&self, tag: &str) -> Result<u64> {
        let spec = QuerySpec::partition(self.pk.as_ref())
            .tagged(tag)
            .project(&[GEN, PARTS]);
        query::pages(Arc::clone(&self.shared), spec)
            .map(|page| async move {
                let sks = page?
                    .items
                    .iter()
                    .filter_map(item::sort_key_of)
                    .map(str::to_owned)
                    .collect::<Vec<_>>();
                self.delete_each(sks.into_iter(), Only::Tagged(tag)).await
            })
            .buffer_unordered(2)
            .try_fold(0u64, |total, n| async move { Ok(total + n) })
            .await
    }

    async fn set_expiry_inner(&self, key: &Key, expires_at: Option<Timestamp>) -> Result<bool> {
        let key = ItemKey::of(key);
        let purge = self.purge(expires_at);
        let mut set = Vec::new();
        let mut remove = Vec::new();
        match expires_at {
            Some(_) => set.push("#exp = :exp"),
            None => remove.push("#exp"),
        }
        match purge {
            Some(_) => set.push("#purge = :purge"),
            None => remove.push("#purge"),
        }
        let mut update = String::new();
        if !set.is_empty() {
            update.push_str("SET ");
            update.push_str(&set.join(", "));
        }
        if !remove.is_empty() {
            update.push_str(" REMOVE ");
            update.push_str(&remove.join(", "));
        }
        // Parts already given this TTL.
        let mut expected: Option<(String, u32)> = None;
        for _ in 0..MAX_REPLACE_ATTEMPTS {
            let wall = item::purged_through(Timestamp::now());
            let mut request = self
                .shared
                .client
                .update_item()
                .table_name(self.shared.table.clone())
                .set_key(Some(key.primary(&self.pk)))
                .update_expression(update.trim())
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#gen", GEN)
                .expression_attribute_names("#exp", EXPIRES_AT)
                .expression_attribute_names("#purge", PURGE_AT)
                .expression_attribute_values(":wall", item::n(wall));
            if let Some(e) = expires_at {
                request = request.expression_attribute_values(":exp", item::n(e.as_millis()));
            }
            if let Some(p) = purge {
                request = request.expression_attribute_values(":purge", item::n(p));
            }
            let exists =
                "attribute_exists(#pk) AND (attribute_not_exists(#purge) OR #purge > :wall)";
            request = match &expected {
                None => {
                    request.condition_expression(format!("{exists} AND attribute_not_exists(#gen)"))
                }
                Some((generation, _)) => request
                    .condition_expression(format!("{exists} AND #gen = :gen"))
                    .expression_attribute_values(":gen", item::s(generation.clone())),
            };
            let failed = match request.send().await {
                Ok(_) => return Ok(true),
                Err(e) => e,
            };
            let old = match failed.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => c.item().cloned(),
                _ => return Err(self.shared.sdk_error(failed)),
            };
            let old = match old {
                Some(old) => Some(old),
                None => {
                    self.get_item(&key.sk, Some(&[GEN, PARTS, PURGE_AT]))
                        .await?
                }
            };
            let Some(old) = old else {
                return Ok(false);
            };
            if item::is_purged(&old, Timestamp::now()) {
                return Ok(false);
            }
            let generation = item::generation_of(&old);
            // A split entry: its parts must live as long as it does.
            if let Some((g, n)) = &generation
                && expected.as_ref() != generation.as_ref()
            {
                parts::set_purge(&self.shared, &self.parts_pk, g, *n, purge).await?;
            }
            expected = generation;
        }
        Err(contention())
    }
}

/// Which items a conditional delete may remove.
#[derive(Clone, Copy, Debug)]
enum Only<'a> {
    /// Any item (unconditional).
    Any,
    /// Items `select` still matches at the time.
    Selected(Select, Timestamp),
    /// Items whose `tags` still contain the tag.
    Tagged(&'a str),
}

fn contention() -> Error {
    backend_error(
        ErrorKind::Contention,
        format!(
            "the entry was replaced by concurrent writers {MAX_REPLACE_ATTEMPTS} times in a row; \
             try again"
        ),
    )
}

/// Deletes every item of partition `pk` (no filter: purged items too).
pub(crate) async fn wipe_partition(shared: &Arc<Shared>, pk: &str) -> Result<u64> {
    query::pages(Arc::clone(shared), QuerySpec::partition(pk).project(&[]))
        .map(|page| async move {
            let items = page?.items;
            let writes = items
                .iter()
                .filter_map(item::sort_key_of)
                .map(|sk| batch::delete(item::primary(pk, sk)))
                .collect::<Result<Vec<_>>>()?;
            batch::write_all(shared, writes).await?;
            Ok::<u64, Error>(items.len() as u64)
        })
        .buffer_unordered(2)
        .try_fold(0u64, |total, n| async move { Ok(total + n) })
        .await
}

#[async_trait]
impl Store for DynamoDbStore {
    async fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let item_key = ItemKey::of(key);
        match self.get_item(&item_key.sk, None).await? {
            Some(found) => self.resolve(Some(key), &item_key.sk, found).await,
            None => Ok(None),
        }
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entry>>> {
        self.get_many_inner(keys).await
    }

    async fn put(&self, entry: Entry) -> Result<()> {
        self.put_entry(&entry).await
    }

    async fn put_many(&self, entries: Vec<Entry>) -> Result<()> {
        self.put_many_inner(entries).await
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        self.delete_inner(key).await
    }

    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        self.delete_many_inner(keys).await
    }

    async fn contains(&self, key: &Key, now: Timestamp) -> Result<bool> {
        self.contains_inner(key, now).await
    }

    async fn count(&self, select: Select, now: Timestamp) -> Result<u64> {
        let spec = QuerySpec::partition(self.pk.as_ref()).entries(select, now, Timestamp::now());
        query::count(Arc::clone(&self.shared), spec).await
    }

    async fn clear(&self, select: Select, now: Timestamp) -> Result<u64> {
        self.clear_inner(select, now).await
    }

    fn scan(&self, select: Select, now: Timestamp) -> BoxStream<'static, Result<Entry>> {
        let store = self.clone();
        let spec = QuerySpec::partition(self.pk.as_ref()).entries(select, now, Timestamp::now());
        query::pages(Arc::clone(&self.shared), spec)
            .then(move |page| {
                let store = store.clone();
                async move {
                    let page = match page {
                        Ok(page) => page,
                        Err(e) => return vec![Err(e)],
                    };
                    let mut out = Vec::with_capacity(page.items.len());
                    for found in page.items {
                        let Some(sk) = item::sort_key_of(&found).map(str::to_owned) else {
                            continue;
                        };
                        match store.resolve(None, &sk, found).await {
                            // A split entry may have changed while it was read.
                            Ok(Some(entry)) if select.matches(entry.expires_at, now) => {
                                out.push(Ok(entry));
                            }
                            Ok(_) => {}
                            Err(e) => {
                                out.push(Err(e));
                                break;
                            }
                        }
                    }
                    out
                }
            })
            .flat_map(futures::stream::iter)
            .boxed()
    }

    async fn purge_tag(&self, tag: &str) -> Result<u64> {
        respcache_core::tags::validate_tag(tag)?;
        self.purge_tag_inner(tag).await
    }

    async fn set_expiry(&self, key: &Key, expires_at: Option<Timestamp>) -> Result<bool> {
        self.set_expiry_inner(key, expires_at).await
    }

    /// A conditional `PutItem` (see [`crate::lease`]).
    async fn acquire_lease(
        &self,
        key: &Key,
        ttl: std::time::Duration,
    ) -> Result<Option<respcache_core::LeaseToken>> {
        let token = respcache_core::LeaseToken::generate();
        let now = Timestamp::now();
        let expires = now.saturating_add(std::time::Duration::from_millis(
            respcache_core::lease::ttl_millis(ttl),
        ));
        let taken =
            crate::lease::acquire(&self.shared, &self.leases_pk, key, &token, expires, now).await?;
        Ok(taken.then_some(token))
    }

    /// A conditional `DeleteItem`.
    async fn release_lease(&self, key: &Key, token: &respcache_core::LeaseToken) -> Result<bool> {
        crate::lease::release(&self.shared, &self.leases_pk, key, token, Timestamp::now()).await
    }
}

impl fmt::Debug for DynamoDbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDbStore")
            .field("table", &self.shared.table)
            .field("partition", &self.pk)
            .finish_non_exhaustive()
    }
}
