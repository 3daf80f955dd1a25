//! BatchGetItem in chunks of 100 and BatchWriteItem in chunks of 25, a few
//! requests in flight, retrying unprocessed items with backoff for a
//! bounded time.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest};
use futures::{StreamExt, TryStreamExt};
use respcache_core::{ErrorKind, Result};
use tokio::time::Instant;

use crate::error::backend_error;
use crate::item::{Item, PK, SK};
use crate::shared::{Shared, build_error};

/// DynamoDB's most writes per BatchWriteItem.
pub(crate) const MAX_WRITES: usize = 25;
/// DynamoDB's most keys per BatchGetItem.
pub(crate) const MAX_GETS: usize = 100;

/// A put of `item`.
pub(crate) fn put(item: Item) -> Result<WriteRequest> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(build_error)?;
    Ok(WriteRequest::builder().put_request(put).build())
}

/// A delete of the item whose primary key is `key`.
pub(crate) fn delete(key: Item) -> Result<WriteRequest> {
    let delete = DeleteRequest::builder()
        .set_key(Some(key))
        .build()
        .map_err(build_error)?;
    Ok(WriteRequest::builder().delete_request(delete).build())
}

/// Runs every write, [`MAX_WRITES`] per request and
/// `batch_concurrency` requests in flight.
///
/// # Errors
///
/// The first request's error; or, when DynamoDB keeps leaving items
/// unprocessed (throttling) past `batch_retry_timeout`, a
/// [`Timeout`](ErrorKind::Timeout) error saying how many were not written.
pub(crate) async fn write_all(shared: &Shared, writes: Vec<WriteRequest>) -> Result<()> {
    if writes.is_empty() {
        return Ok(());
    }
    futures::stream::iter(chunks(writes, MAX_WRITES))
        .map(|chunk| write_chunk(shared, chunk))
        .buffer_unordered(shared.batch_concurrency)
        .try_collect::<()>()
        .await
}

async fn write_chunk(shared: &Shared, mut pending: Vec<WriteRequest>) -> Result<()> {
    let total = pending.len();
    let deadline = Instant::now() + shared.batch_retry_timeout;
    let mut backoff = Backoff::default();
    loop {
        let sent = pending.len();
        let out = shared
            .client
            .batch_write_item()
            .request_items(shared.table.clone(), pending)
            .send()
            .await
            .map_err(|e| shared.sdk_error(e))?;
        pending = out
            .unprocessed_items
            .and_then(|mut by_table| by_table.remove(&shared.table))
            .unwrap_or_default();
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(backend_error(
                ErrorKind::Throttled,
                format!(
                    "{} of {total} items in a BatchWriteItem were not written: DynamoDB left them \
                     unprocessed (throttling) for {:?}; writes of other batches in the same call \
                     may not have been made either",
                    pending.len(),
                    shared.batch_retry_timeout
                ),
            ));
        }
        backoff.wait(pending.len() < sent, deadline).await;
    }
}

/// Reads the items under `keys` (primary keys), [`MAX_GETS`] per request
/// and `batch_concurrency` requests in flight, in no particular order;
/// missing items are simply absent. `projection` lists attribute names to
/// read (the primary key is always read). Reads are strongly consistent
/// when `consistent` is, or when the backend is configured so.
pub(crate) async fn get_all(
    shared: &Shared,
    keys: Vec<Item>,
    projection: Option<&[&str]>,
    consistent: bool,
) -> Result<Vec<Item>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let pages: Vec<Vec<Item>> = futures::stream::iter(chunks(keys, MAX_GETS))
        .map(|chunk| {
            get_chunk(
                shared,
                chunk,
                projection,
                consistent || shared.consistent_read,
            )
        })
        .buffer_unordered(shared.batch_concurrency)
        .try_collect()
        .await?;
    Ok(pages.into_iter().flatten().collect())
}

async fn get_chunk(
    shared: &Shared,
    mut pending: Vec<Item>,
    projection: Option<&[&str]>,
    consistent: bool,
) -> Result<Vec<Item>> {
    let total = pending.len();
    let deadline = Instant::now() + shared.batch_retry_timeout;
    let mut backoff = Backoff::default();
    let mut found = Vec::with_capacity(total);
    loop {
        let sent = pending.len();
        let mut request = KeysAndAttributes::builder()
            .set_keys(Some(pending))
            .consistent_read(consistent);
        if let Some(attributes) = projection {
            let (expression, names) = projection_of(attributes);
            request = request
                .projection_expression(expression)
                .set_expression_attribute_names(Some(names));
        }
        let out = shared
            .client
            .batch_get_item()
            .request_items(shared.table.clone(), request.build().map_err(build_error)?)
            .send()
            .await
            .map_err(|e| shared.sdk_error(e))?;
        if let Some(items) = out
            .responses
            .and_then(|mut by_table| by_table.remove(&shared.table))
        {
            found.extend(items);
        }
        pending = out
            .unprocessed_keys
            .and_then(|mut by_table| by_table.remove(&shared.table))
            .map(|k| k.keys)
            .unwrap_or_default();
        if pending.is_empty() {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            return Err(backend_error(
                ErrorKind::Throttled,
                format!(
                    "{} of {total} keys in a BatchGetItem were not read: DynamoDB left them \
                     unprocessed (throttling) for {:?}",
                    pending.len(),
                    shared.batch_retry_timeout
                ),
            ));
        }
        // A response over 16 MB also leaves keys unprocessed: progress was
        // made, so only a short pause.
        backoff.wait(pending.len() < sent, deadline).await;
    }
}

/// A projection expression reading `attributes` and the primary key, with
/// its `#name` placeholders (attribute names such as `size` are reserved
/// words in expressions).
pub(crate) fn projection_of(attributes: &[&str]) -> (String, HashMap<String, String>) {
    let mut names = HashMap::new();
    let mut parts = Vec::new();
    for attribute in [PK, SK].iter().chain(attributes) {
        let placeholder = format!("#{attribute}");
        if names
            .insert(placeholder.clone(), (*attribute).to_owned())
            .is_none()
        {
            parts.push(placeholder);
        }
    }
    (parts.join(", "), names)
}

fn chunks<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::with_capacity(items.len().div_ceil(size));
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        out.push(items.by_ref().take(size).collect());
    }
    out
}

/// Exponential backoff with full jitter, reset whenever a round made
/// progress.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    const BASE: Duration = Duration::from_millis(25);
    const MAX: Duration = Duration::from_secs(2);

    async fn wait(&mut self, progressed: bool, deadline: Instant) {
        if progressed {
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
        }
        let ceiling = Self::BASE
            .saturating_mul(1u32 << self.failures.min(10))
            .min(Self::MAX);
        let jittered = ceiling.mul_f64(rand::random::<f64>().max(0.2));
        let until = (Instant::now() + jittered).min(deadline);
        tokio::time::sleep_until(until).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_every_item_in_order() {
        let v: Vec<u32> = (0..60).collect();
        let c = chunks(v.clone(), 25);
        assert_eq!(c.iter().map(Vec::len).collect::<Vec<_>>(), vec![25, 25, 10]);
        assert_eq!(c.concat(), v);
        assert!(chunks(Vec::<u32>::new(), 25).is_empty());
    }

    #[test]
    fn projections_always_read_the_primary_key() {
        let (expr, names) = projection_of(&["gen", "size", "pk"]);
        assert_eq!(expr, "#pk, #sk, #gen, #size");
        assert_eq!(names.len(), 4);
        assert_eq!(names.get("#size").map(String::as_str), Some("size"));
    }
}
