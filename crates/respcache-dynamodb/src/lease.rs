//! Leases in DynamoDB: one item per held lease in the partition
//! `<entries partition>#leases` of the store's table (names never contain
//! `#`, so it never meets an entries, parts or registry partition; dropping
//! the store wipes it):
//!
//! `{ pk: "<…>#leases", sk: <the entry's sort key>, owner: <token>, expires_ms: N, purge_at: N }`
//!
//! - acquire: `PutItem` with the condition
//!   `attribute_not_exists(pk) OR expires_ms <= :now`; a failed condition
//!   means *held*. The condition compares `expires_ms` itself, so an
//!   expired lease is taken over at once, whenever DynamoDB's TTL deletion
//!   (on `purge_at`, epoch seconds) gets to it.
//! - release: `DeleteItem` with the condition `owner = :me AND expires_ms > :now`.

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use respcache_core::{Key, LeaseToken, Result, Timestamp};

use crate::item::{self, ItemKey, PURGE_AT};
use crate::shared::Shared;

const OWNER: &str = "owner";
const EXPIRES_MS: &str = "expires_ms";

/// Takes the lease on `key` until `expires` unless an unexpired one is held.
pub(crate) async fn acquire(
    shared: &Shared,
    pk: &str,
    key: &Key,
    token: &LeaseToken,
    expires: Timestamp,
    now: Timestamp,
) -> Result<bool> {
    let mut lease = ItemKey::of(key).primary(pk);
    lease.insert(OWNER.to_owned(), item::s(token.as_str().to_owned()));
    lease.insert(EXPIRES_MS.to_owned(), item::n(expires.as_millis()));
    lease.insert(PURGE_AT.to_owned(), item::n(item::purge_seconds(expires)));
    let put = shared
        .client
        .put_item()
        .table_name(shared.table.clone())
        .set_item(Some(lease))
        .condition_expression("attribute_not_exists(#pk) OR #exp <= :now")
        .expression_attribute_names("#pk", item::PK)
        .expression_attribute_names("#exp", EXPIRES_MS)
        .expression_attribute_values(":now", item::n(now.as_millis()))
        .send()
        .await;
    match put {
        Ok(_) => Ok(true),
        Err(e) => match e.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
            _ => Err(shared.sdk_error(e)),
        },
    }
}

/// Frees the lease on `key` if `token` holds it and it has not expired.
pub(crate) async fn release(
    shared: &Shared,
    pk: &str,
    key: &Key,
    token: &LeaseToken,
    now: Timestamp,
) -> Result<bool> {
    let delete = shared
        .client
        .delete_item()
        .table_name(shared.table.clone())
        .set_key(Some(ItemKey::of(key).primary(pk)))
        .condition_expression("#owner = :me AND #exp > :now")
        .expression_attribute_names("#owner", OWNER)
        .expression_attribute_names("#exp", EXPIRES_MS)
        .expression_attribute_values(":me", item::s(token.as_str().to_owned()))
        .expression_attribute_values(":now", item::n(now.as_millis()))
        .send()
        .await;
    match delete {
        Ok(_) => Ok(true),
        Err(e) => match e.as_service_error() {
            Some(DeleteItemError::ConditionalCheckFailedException(_)) => Ok(false),
            _ => Err(shared.sdk_error(e)),
        },
    }
}
