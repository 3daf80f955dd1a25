//! Purging by tag without an index: the default of
//! [`Store::purge_tag`](crate::Store::purge_tag), for custom backends.

use futures::TryStreamExt;

use crate::backend::Store;
use crate::entry::Select;
use crate::error::{Operation, Result};
use crate::key::Key;
use crate::tags::validate_tag;
use crate::time::Timestamp;

/// Keys deleted per `delete_many` call.
const DELETE_BATCH: usize = 256;

/// Scans every entry of `store`, keeps the keys of those carrying `tag`,
/// then deletes them `DELETE_BATCH` at a time; returns how many were
/// deleted.
///
/// It holds the matching keys (not the entries) in memory. An entry
/// replaced between the scan and its delete is deleted even if its new
/// version no longer carries `tag`: a later miss, never a wrong hit.
///
/// # Errors
///
/// [`InvalidKey`](crate::ErrorKind::InvalidKey) for an invalid tag, or the
/// store's own error.
pub async fn purge_tag_by_scan<S: Store + ?Sized>(store: &S, tag: &str) -> Result<u64> {
    validate_tag(tag).map_err(|e| e.with_operation(Operation::PurgeTag))?;
    // `Select::All` ignores the time.
    let keys: Vec<Key> = store
        .scan(Select::All, Timestamp::from_millis(0))
        .try_filter_map(|entry| async move { Ok(entry.tags.contains(tag).then_some(entry.key)) })
        .try_collect()
        .await?;
    let mut removed = 0;
    for batch in keys.chunks(DELETE_BATCH) {
        removed += store.delete_many(batch).await?;
    }
    Ok(removed)
}
