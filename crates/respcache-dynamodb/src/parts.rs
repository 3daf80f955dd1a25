//! The parts of entries over DynamoDB's 400 KB item limit.
//!
//! A split entry is written in two steps: its parts first, under a fresh
//! random *generation*, then the manifest (the entry's own item) naming that
//! generation. The manifest write is the commit: a reader follows only the
//! generation its manifest names and checks it got every part and every
//! byte, so it never sees a mix of an old and a new version. The parts of a
//! replaced or deleted generation are removed afterwards; parts left by a
//! failed write are named by no manifest, so no reader ever returns them.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::{StreamExt, TryStreamExt};
use respcache_core::Result;

use crate::batch;
use crate::item::{self, DATA, Item, Manifest, PART_BYTES, PURGE_AT};
use crate::shared::Shared;

/// A fresh generation id: 128 random bits in hex.
pub(crate) fn new_generation() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The sort key of part `index` of generation `generation`.
fn part_sk(generation: &str, index: u32) -> String {
    format!("{generation}#{index:06}")
}

/// How many parts `len` bytes take.
pub(crate) fn part_count(len: usize) -> u32 {
    u32::try_from(len.div_ceil(PART_BYTES).max(1)).unwrap_or(u32::MAX)
}

/// Writes `bytes` as the parts of generation `generation`.
pub(crate) async fn write(
    shared: &Shared,
    parts_pk: &str,
    generation: &str,
    bytes: &[u8],
    purge: Option<i64>,
) -> Result<u32> {
    let mut writes = Vec::new();
    let mut index = 0u32;
    for chunk in bytes.chunks(PART_BYTES) {
        let mut part = item::primary(parts_pk, &part_sk(generation, index));
        part.insert(
            DATA.to_owned(),
            AttributeValue::B(Blob::new(chunk.to_vec())),
        );
        if let Some(p) = purge {
            part.insert(PURGE_AT.to_owned(), item::n(p));
        }
        writes.push(batch::put(part)?);
        index += 1;
    }
    batch::write_all(shared, writes).await?;
    Ok(index)
}

/// Reads the parts `manifest` names; `None` when any is missing or the
/// sizes do not add up (the generation was replaced, deleted or purged).
pub(crate) async fn read(
    shared: &Shared,
    parts_pk: &str,
    manifest: &Manifest,
) -> Result<Option<Vec<u8>>> {
    let keys = (0..manifest.parts)
        .map(|i| item::primary(parts_pk, &part_sk(&manifest.generation, i)))
        .collect();
    // Always consistent: a part just written must not read as missing.
    let mut parts: Vec<(String, Item)> = batch::get_all(shared, keys, None, true)
        .await?
        .into_iter()
        .filter_map(|part| Some((item::sort_key_of(&part)?.to_owned(), part)))
        .collect();
    if parts.len() != manifest.parts as usize {
        return Ok(None);
    }
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    let mut bytes = Vec::with_capacity(usize::try_from(manifest.size).unwrap_or(0));
    for (_, mut part) in parts {
        match part.remove(DATA) {
            Some(AttributeValue::B(b)) => bytes.extend_from_slice(b.as_ref()),
            _ => return Ok(None),
        }
    }
    if bytes.len() as u64 != manifest.size {
        return Ok(None);
    }
    Ok(Some(bytes))
}

/// Deletes the parts of every generation in `gens`, logging (not failing
/// on) errors: parts no manifest names are never read, and carry the
/// entry's TTL.
pub(crate) async fn delete_quietly(shared: &Shared, parts_pk: &str, gens: Vec<(String, u32)>) {
    if gens.is_empty() {
        return;
    }
    let writes: Result<Vec<_>> = gens
        .iter()
        .flat_map(|(generation, n)| {
            (0..*n).map(move |i| batch::delete(item::primary(parts_pk, &part_sk(generation, i))))
        })
        .collect();
    let outcome = match writes {
        Ok(writes) => batch::write_all(shared, writes).await,
        Err(e) => Err(e),
    };
    if let Err(e) = outcome {
        tracing::warn!(
            table = %shared.table,
            partition = parts_pk,
            error = %e,
            "respcache: could not delete the parts of a replaced entry; they are never read, \
             and are removed with the store or by their TTL"
        );
    }
}

/// Sets (or removes) the TTL of the parts of generation `generation`.
pub(crate) async fn set_purge(
    shared: &Shared,
    parts_pk: &str,
    generation: &str,
    parts: u32,
    purge: Option<i64>,
) -> Result<()> {
    futures::stream::iter(0..parts)
        .map(|i| {
            let mut update = shared
                .client
                .update_item()
                .table_name(shared.table.clone())
                .set_key(Some(item::primary(parts_pk, &part_sk(generation, i))))
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", item::PK)
                .expression_attribute_names("#purge", PURGE_AT);
            update = match purge {
                Some(p) => update
                    .update_expression("SET #purge = :purge")
                    .expression_attribute_values(":purge", item::n(p)),
                None => update.update_expression("REMOVE #purge"),
            };
            async move {
                match update.send().await {
                    Ok(_) => Ok(()),
                    // A missing part: the generation is gone already.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(shared.sdk_error(e)),
                }
            }
        })
        .buffer_unordered(shared.batch_concurrency)
        .try_collect::<()>()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_keys_sort_in_index_order() {
        let generation = new_generation();
        assert_eq!(generation.len(), 32);
        assert_ne!(generation, new_generation());
        let mut keys: Vec<String> = (0..1200).rev().map(|i| part_sk(&generation, i)).collect();
        keys.sort();
        assert_eq!(keys[0], part_sk(&generation, 0));
        assert_eq!(keys[1199], part_sk(&generation, 1199));
        assert_eq!(part_count(0), 1);
        assert_eq!(part_count(PART_BYTES), 1);
        assert_eq!(part_count(PART_BYTES + 1), 2);
    }
}
