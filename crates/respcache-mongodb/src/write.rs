//! How entries are written: one `$set` upsert each, or — for a write that
//! carries a purge date on a server that cannot `$set` dates
//! ([`DateWrites::Reinsert`](crate::DateWrites::Reinsert)) — a delete and an
//! insert of the whole document. Several writes go in one ordered client
//! bulk write (one round trip on MongoDB 8.0+); on older servers they run as
//! single calls, several at a time.

use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{Document, doc};
use mongodb::error::ErrorKind as MongoKind;
use mongodb::options::{DeleteOneModel, InsertOneModel, UpdateOneModel, WriteModel};
use mongodb::{Client, Collection, Namespace};

use crate::error::{is_duplicate_key, is_incompatible_server};

type DriverResult<T> = std::result::Result<T, mongodb::error::Error>;

/// How many times a write is retried after a duplicate-key collision with a
/// concurrent writer of the same key.
const MAX_ATTEMPTS: usize = 10;

/// How many single writes run at once when the server has no bulk write.
const FALLBACK_CONCURRENCY: usize = 16;

/// One entry's write.
#[derive(Clone, Debug)]
pub(crate) enum Write {
    /// `updateOne({_id}, update, {upsert: true})`: atomic.
    Update {
        /// The `_id`.
        id: String,
        /// `{$set, $unset}` from [`crate::document::update_document`].
        update: Document,
    },
    /// `deleteOne({_id})` then `insertOne(document)`.
    Reinsert {
        /// The `_id`.
        id: String,
        /// The whole document.
        document: Document,
    },
}

impl Write {
    fn id(&self) -> &str {
        match self {
            Write::Update { id, .. } | Write::Reinsert { id, .. } => id,
        }
    }

    fn push_models(&self, ns: &Namespace, models: &mut Vec<WriteModel>) {
        match self {
            Write::Update { id, update } => models.push(WriteModel::UpdateOne(
                UpdateOneModel::builder()
                    .namespace(ns.clone())
                    .filter(doc! { "_id": id.as_str() })
                    .update(update.clone())
                    .upsert(true)
                    .build(),
            )),
            Write::Reinsert { id, document } => {
                models.push(WriteModel::DeleteOne(
                    DeleteOneModel::builder()
                        .namespace(ns.clone())
                        .filter(doc! { "_id": id.as_str() })
                        .build(),
                ));
                models.push(WriteModel::InsertOne(
                    InsertOneModel::builder()
                        .namespace(ns.clone())
                        .document(document.clone())
                        .build(),
                ));
            }
        }
    }
}

/// Runs `writes` in order (a later write of a key wins), as one ordered
/// bulk write when the server has one. `no_bulk_write` remembers a server
/// older than 8.0.
pub(crate) async fn run(
    client: &Client,
    coll: &Collection<Document>,
    writes: Vec<Write>,
    no_bulk_write: &std::sync::atomic::AtomicBool,
) -> DriverResult<()> {
    use std::sync::atomic::Ordering;
    if writes.len() <= 1 && writes.iter().all(|w| matches!(w, Write::Update { .. })) {
        // Nothing, or one atomic update: a plain updateOne on every server.
        for w in writes {
            run_one(coll, w).await?;
        }
        return Ok(());
    }
    if !no_bulk_write.load(Ordering::Relaxed) {
        match run_bulk(client, &coll.namespace(), &writes).await {
            Err(e) if is_incompatible_server(&e) => {
                tracing::debug!(
                    "respcache: server has no bulkWrite (MongoDB < 8.0); writing one by one"
                );
                no_bulk_write.store(true, Ordering::Relaxed);
            }
            other => return other,
        }
    }
    // Older servers: single writes, several at a time. Only the last write
    // of a key is kept, so concurrency cannot reorder two writes of one key.
    let mut last = std::collections::HashMap::new();
    for (i, w) in writes.iter().enumerate() {
        last.insert(w.id().to_owned(), i);
    }
    let kept: Vec<Write> = writes
        .into_iter()
        .enumerate()
        .filter(|(i, w)| last.get(w.id()) == Some(i))
        .map(|(_, w)| w)
        .collect();
    futures::stream::iter(kept)
        .map(|w| run_one(coll, w))
        .buffer_unordered(FALLBACK_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// One ordered bulk write; after a duplicate-key collision (a concurrent
/// writer inserted the key between our delete and insert) it resumes from
/// the write that failed.
async fn run_bulk(client: &Client, ns: &Namespace, writes: &[Write]) -> DriverResult<()> {
    let mut start = 0;
    let mut attempt = 0;
    loop {
        let mut models = Vec::new();
        let mut owner = Vec::new();
        for (i, w) in writes.iter().enumerate().skip(start) {
            let before = models.len();
            w.push_models(ns, &mut models);
            owner.extend(std::iter::repeat_n(i, models.len() - before));
        }
        let err = match client.bulk_write(models).ordered(true).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        attempt += 1;
        let failed_at = match err.kind.as_ref() {
            MongoKind::BulkWrite(b) if attempt < MAX_ATTEMPTS && is_duplicate_key(&err) => b
                .write_errors
                .keys()
                .min()
                .and_then(|m| owner.get(*m))
                .copied(),
            _ => None,
        };
        match failed_at {
            Some(i) => start = i,
            None => return Err(err),
        }
    }
}

/// One write as single calls, retried after a duplicate-key collision.
async fn run_one(coll: &Collection<Document>, write: Write) -> DriverResult<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match &write {
            Write::Update { id, update } => coll
                .update_one(doc! { "_id": id.as_str() }, update.clone())
                .upsert(true)
                .await
                .map(drop),
            Write::Reinsert { id, document } => {
                coll.delete_one(doc! { "_id": id.as_str() }).await?;
                coll.insert_one(document.clone()).await.map(drop)
            }
        };
        match result {
            Err(e) if attempt < MAX_ATTEMPTS && is_duplicate_key(&e) => continue,
            other => return other,
        }
    }
}
