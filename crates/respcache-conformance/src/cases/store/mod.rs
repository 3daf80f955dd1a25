//! Store-level cases: the `Store` and `Backend` contract, bullet by bullet,
//! a file per topic; the helpers they share are here.

mod concurrency;
mod expiry;
mod isolation;
mod keys;
mod lifecycle;
mod round_trip;
mod scan;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use respcache_core::{
    DynStore, Entry, FieldKind, Key, KeyPart, KeySchema, Name, Select, StoreSpec, Timestamp,
};

use super::Case;
use crate::check::Failure;
use crate::factory::TestContext;

pub(super) fn cases() -> Vec<Case> {
    [
        round_trip::cases(),
        expiry::cases(),
        keys::cases(),
        isolation::cases(),
        scan::cases(),
        concurrency::cases(),
        lifecycle::cases(),
    ]
    .concat()
}

// ---------------------------------------------------------------- helpers

fn text_schema() -> KeySchema {
    KeySchema::new([("id", FieldKind::Text)]).unwrap_or_default()
}

fn spec(ctx: &TestContext, repo: &str, schema: KeySchema) -> Result<StoreSpec, Failure> {
    Ok(StoreSpec::new(ctx.cache.clone(), Name::new(repo)?, schema))
}

async fn open(ctx: &TestContext, repo: &str) -> Result<Arc<DynStore>, Failure> {
    Ok(ctx
        .backend
        .open_store(&spec(ctx, repo, text_schema())?)
        .await?)
}

fn key(id: &str) -> Key {
    Key::new("GET", [KeyPart::Text(id.to_owned())])
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn fresh_until() -> Option<Timestamp> {
    Some(now().saturating_add(Duration::from_secs(3600)))
}

fn stale_since() -> Option<Timestamp> {
    Some(now().saturating_sub(Duration::from_secs(60)))
}

fn entry(id: &str, payload: impl Into<Bytes>, expires_at: Option<Timestamp>) -> Entry {
    Entry::new(key(id), now(), payload).with_expires_at(expires_at)
}

async fn get_payload(store: &DynStore, id: &str) -> Result<Option<Bytes>, Failure> {
    Ok(store.get(&key(id)).await?.map(|e| e.payload))
}

async fn put_fresh_and_stale(store: &DynStore) -> Result<(), Failure> {
    store
        .put_many(vec![
            entry("fresh-1", "f1", fresh_until()),
            entry("fresh-2", "f2", None),
            entry("stale-1", "s1", stale_since()),
            entry("stale-2", "s2", stale_since()),
            entry("stale-3", "s3", stale_since()),
        ])
        .await?;
    Ok(())
}

async fn ids(store: &DynStore, select: Select) -> Result<Vec<String>, Failure> {
    let entries: Vec<Entry> = store.scan(select, now()).try_collect().await?;
    let mut ids: Vec<String> = entries
        .iter()
        .filter_map(|e| {
            e.key
                .fields()
                .first()
                .and_then(KeyPart::as_text)
                .map(str::to_owned)
        })
        .collect();
    ids.sort();
    Ok(ids)
}
