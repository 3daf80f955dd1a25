//! The collection a store lives in, and its two indexes.
//!
//! - `expires_at_1`: the freshness filters of `count`, `clear` and `scan`.
//! - `tags_1`, a multikey index (one index key per element of the `tags`
//!   array): `purge_tag`'s `delete_many({tags: t})`. Documents written
//!   before tags have no `tags` field and are simply not in it.
//! - `purge_at_1`, a TTL index with `expireAfterSeconds: 0`: MongoDB deletes
//!   a document once its `purge_at` date (`expires_at + retention`) has
//!   passed (the TTL monitor runs about once a minute, so deletion is late —
//!   reads never rely on it).
//!
//! Retention lives in the documents, not in the index: a store opened with
//! another retention writes other `purge_at` dates, while the index stays
//! exactly the same. Opening a store therefore never meets MongoDB's
//! "an index with the same name already exists with different options"
//! (`IndexOptionsConflict`). An index on `purge_at` that differs anyway (made
//! by hand or by another tool) is reconciled: `collMod` sets its
//! `expireAfterSeconds` to 0, and if the server will not, the index is
//! dropped and created again.

use std::time::Duration;

use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};

use crate::document::field;
use crate::error::{NAMESPACE_EXISTS, has_code};

type DriverResult<T> = std::result::Result<T, mongodb::error::Error>;

/// Whether `keys` is the single ascending key `field`.
fn is_ascending_on(keys: &Document, name: &str) -> bool {
    keys.len() == 1
        && match keys.get(name) {
            Some(Bson::Int32(1)) | Some(Bson::Int64(1)) => true,
            Some(Bson::Double(d)) => *d == 1.0,
            _ => false,
        }
}

fn ttl_index() -> IndexModel {
    IndexModel::builder()
        .keys(doc! { field::PURGE_AT: 1 })
        .options(IndexOptions::builder().expire_after(Duration::ZERO).build())
        .build()
}

fn tags_index() -> IndexModel {
    IndexModel::builder().keys(doc! { field::TAGS: 1 }).build()
}

fn expiry_index() -> IndexModel {
    IndexModel::builder()
        .keys(doc! { field::EXPIRES_AT: 1 })
        .build()
}

/// What [`ensure`] found and did, for logs and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TtlIndex {
    /// It was already right.
    Kept,
    /// It was missing and was created.
    Created,
    /// It had other options and was fixed.
    Reconciled,
}

/// Creates the collection and its indexes if missing, and reconciles a
/// TTL index on `purge_at` whose options differ.
pub(crate) async fn ensure(db: &Database, coll: &Collection<Document>) -> DriverResult<TtlIndex> {
    match db.create_collection(coll.name()).await {
        Ok(()) => {}
        Err(e) if has_code(&e, NAMESPACE_EXISTS) => {}
        Err(e) => return Err(e),
    }
    let existing: Vec<IndexModel> = coll.list_indexes().await?.try_collect().await?;
    let mut missing = Vec::new();
    if !existing
        .iter()
        .any(|i| is_ascending_on(&i.keys, field::EXPIRES_AT))
    {
        missing.push(expiry_index());
    }
    if !existing
        .iter()
        .any(|i| is_ascending_on(&i.keys, field::TAGS))
    {
        missing.push(tags_index());
    }
    let ttl = existing
        .iter()
        .find(|i| is_ascending_on(&i.keys, field::PURGE_AT));
    let outcome = match ttl {
        None => {
            missing.push(ttl_index());
            TtlIndex::Created
        }
        Some(index) if expire_after(index) == Some(Duration::ZERO) => TtlIndex::Kept,
        Some(index) => {
            reconcile(db, coll, index).await?;
            TtlIndex::Reconciled
        }
    };
    if !missing.is_empty() {
        coll.create_indexes(missing).await?;
    }
    Ok(outcome)
}

fn expire_after(index: &IndexModel) -> Option<Duration> {
    index.options.as_ref().and_then(|o| o.expire_after)
}

/// Makes the existing `purge_at` index a TTL index with
/// `expireAfterSeconds: 0`: `collMod` first, then drop and create if the
/// index still differs (servers that cannot turn an index into a TTL index
/// in place, or that accept `collMod` without applying it).
async fn reconcile(
    db: &Database,
    coll: &Collection<Document>,
    index: &IndexModel,
) -> DriverResult<()> {
    tracing::info!(
        collection = %coll.namespace(),
        expire_after = ?expire_after(index),
        "respcache: reconciling the purge_at TTL index to expireAfterSeconds 0"
    );
    let coll_mod = db
        .run_command(doc! {
            "collMod": coll.name(),
            "index": { "keyPattern": { field::PURGE_AT: 1 }, "expireAfterSeconds": 0i64 },
        })
        .await;
    if coll_mod.is_ok() {
        let now: Vec<IndexModel> = coll.list_indexes().await?.try_collect().await?;
        let fixed = now.iter().any(|i| {
            is_ascending_on(&i.keys, field::PURGE_AT) && expire_after(i) == Some(Duration::ZERO)
        });
        if fixed {
            return Ok(());
        }
    }
    if let Some(name) = index.options.as_ref().and_then(|o| o.name.as_deref()) {
        coll.drop_index(name).await?;
    }
    coll.create_index(ttl_index()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_patterns_are_compared_by_meaning() {
        assert!(is_ascending_on(&doc! { "purge_at": 1 }, "purge_at"));
        assert!(is_ascending_on(&doc! { "purge_at": 1i64 }, "purge_at"));
        assert!(is_ascending_on(&doc! { "purge_at": 1.0 }, "purge_at"));
        assert!(!is_ascending_on(&doc! { "purge_at": -1 }, "purge_at"));
        assert!(!is_ascending_on(
            &doc! { "purge_at": 1, "x": 1 },
            "purge_at"
        ));
        assert!(!is_ascending_on(&doc! { "expires_at": 1 }, "purge_at"));
    }
}
