//! Leases in MongoDB: a collection `_leases_<store collection>` next to each
//! store (its name starts with `_`, so it is never listed as a store; it is
//! dropped with the store), one document per lease:
//!
//! `{ _id: <Key::encode()>, owner: <token>, expires_ms: <i64>, purge_at: <date> }`
//!
//! - acquire: `insert_one`; the unique `_id` makes a second insert fail with
//!   a duplicate-key error (11000), which means *held*, unless the held
//!   lease has expired: then `delete_one({_id, expires_ms <= now})` removes
//!   it (only one racer's delete matches) and the insert is tried once more.
//! - release: `delete_one({_id, owner: token, expires_ms > now})`.
//!
//! A TTL index on `purge_at` lets the server remove forgotten leases, but
//! its monitor runs about once a minute: an expired lease document is free
//! by its `expires_ms` whether or not it was removed yet.

use std::time::Duration;

use mongodb::bson::{DateTime, Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use respcache_core::{Key, LeaseToken, Timestamp};

use crate::error::is_duplicate_key;

type DriverResult<T> = std::result::Result<T, mongodb::error::Error>;

/// The lease collection of the store collection `collection`.
pub(crate) fn collection_name(collection: &str) -> String {
    format!("_leases_{collection}")
}

/// The TTL index on `purge_at` (idempotent).
pub(crate) async fn ensure_index(leases: &Collection<Document>) -> DriverResult<()> {
    let index = IndexModel::builder()
        .keys(doc! { "purge_at": 1 })
        .options(IndexOptions::builder().expire_after(Duration::ZERO).build())
        .build();
    leases.create_index(index).await.map(|_| ())
}

/// Takes the lease on `key` until `expires` unless an unexpired one is held.
pub(crate) async fn acquire(
    leases: &Collection<Document>,
    key: &Key,
    token: &LeaseToken,
    expires: Timestamp,
    now: Timestamp,
) -> DriverResult<bool> {
    let id = key.encode();
    let document = doc! {
        "_id": &id,
        "owner": token.as_str(),
        "expires_ms": expires.as_millis(),
        "purge_at": DateTime::from_millis(expires.as_millis()),
    };
    for attempt in 0..2 {
        match leases.insert_one(document.clone()).await {
            Ok(_) => return Ok(true),
            Err(e) if is_duplicate_key(&e) => {
                if attempt > 0 {
                    return Ok(false);
                }
                let expired = doc! { "_id": &id, "expires_ms": { "$lte": now.as_millis() } };
                if leases.delete_one(expired).await?.deleted_count == 0 {
                    return Ok(false);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Frees the lease on `key` if `token` holds it and it has not expired.
pub(crate) async fn release(
    leases: &Collection<Document>,
    key: &Key,
    token: &LeaseToken,
    now: Timestamp,
) -> DriverResult<bool> {
    let filter = doc! {
        "_id": key.encode(),
        "owner": token.as_str(),
        "expires_ms": { "$gt": now.as_millis() },
    };
    Ok(leases.delete_one(filter).await?.deleted_count == 1)
}
