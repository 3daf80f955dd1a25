//! Budget cases: least-recently-used eviction under `max_entries` and
//! `max_bytes`, for backends whose [`Factory`](crate::Factory) can connect
//! with a budget ([`Factory::with_budget`](crate::Factory::with_budget)).
//! Each case opens its own budgeted handle, so its trims never reach
//! another case's entries.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use respcache_core::budget::{Budget, Eviction, entry_size};
use respcache_core::{
    Backend, DynStore, Entry, Key, KeySchema, Name, Select, StoreSpec, Timestamp,
};

use super::{Case, cases};
use crate::check::{CaseResult, Failure};
use crate::factory::TestContext;
use crate::{ensure, ensure_eq};

pub(crate) fn cases() -> Vec<Case> {
    cases![
        over_the_budget_the_least_recently_used_go_first,
        a_recently_read_entry_survives_an_older_one,
        the_byte_budget_holds_within_ten_percent,
        trim_to_removes_the_least_recently_used_first,
    ]
}

/// A budgeted handle and one store in it.
async fn open(
    ctx: &TestContext,
    budget: Budget,
) -> Result<(Arc<dyn Backend>, Arc<DynStore>), Failure> {
    let backend = ctx
        .factory
        .connect_with_budget(budget)
        .await
        .ok_or_else(|| Failure("the factory has no budgeted connect".into()))??;
    let spec = StoreSpec::new(
        ctx.cache.clone(),
        Name::new("budget")?,
        KeySchema::new([("id", respcache_core::FieldKind::Text)])?,
    );
    let store = backend.open_store(&spec).await?;
    Ok((backend, store))
}

fn key(i: usize) -> Key {
    Key::new("GET", [format!("k{i:04}").into()])
}

fn entry(i: usize, size: usize) -> Entry {
    Entry::new(
        key(i),
        Timestamp::from_millis(1_000),
        Bytes::from(vec![b'x'; size]),
    )
}

fn eviction(backend: &Arc<dyn Backend>) -> Result<&dyn Eviction, Failure> {
    backend
        .eviction()
        .ok_or_else(|| Failure("a budgeted backend has no eviction()".into()))
}

/// Backends order uses by a clock; a small pause keeps each write's use
/// distinct even where that clock is coarse.
async fn pause() {
    tokio::time::sleep(Duration::from_millis(2)).await;
}

async fn present(store: &DynStore, i: usize) -> Result<bool, Failure> {
    Ok(store.get(&key(i)).await?.is_some())
}

async fn over_the_budget_the_least_recently_used_go_first(ctx: TestContext) -> CaseResult {
    let (backend, store) = open(&ctx, Budget::entries(10)).await?;
    for i in 0..15 {
        store.put(entry(i, 100)).await?;
        pause().await;
    }
    let count = store.count(Select::All, Timestamp::from_millis(0)).await?;
    ensure!(
        (9..=10).contains(&count),
        "10-entry budget holds {count} entries"
    );
    for i in 0..5 {
        ensure!(!present(store.as_ref(), i).await?, "old entry {i} survived");
    }
    for i in 10..15 {
        ensure!(
            present(store.as_ref(), i).await?,
            "new entry {i} was evicted"
        );
    }
    let usage = eviction(&backend)?.usage().await?;
    ensure_eq!(usage.entries, count, "usage().entries");
    backend.close().await?;
    Ok(())
}

async fn a_recently_read_entry_survives_an_older_one(ctx: TestContext) -> CaseResult {
    let (backend, store) = open(&ctx, Budget::entries(10)).await?;
    for i in 0..10 {
        store.put(entry(i, 100)).await?;
        pause().await;
    }
    ensure!(
        present(store.as_ref(), 0).await?,
        "entry 0 missing before the budget was reached"
    );
    pause().await;
    for i in 10..13 {
        store.put(entry(i, 100)).await?;
        pause().await;
    }
    ensure!(
        present(store.as_ref(), 0).await?,
        "the entry read last was evicted"
    );
    ensure!(
        !present(store.as_ref(), 1).await?,
        "an older, unread entry survived the read one"
    );
    backend.close().await?;
    Ok(())
}

async fn the_byte_budget_holds_within_ten_percent(ctx: TestContext) -> CaseResult {
    let one = entry_size(&entry(0, 1000));
    let budget = 100 * one;
    let (backend, store) = open(&ctx, Budget::bytes(budget)).await?;
    for chunk in 0..30 {
        let batch: Vec<Entry> = (chunk * 10..chunk * 10 + 10)
            .map(|i| entry(i, 1000))
            .collect();
        store.put_many(batch).await?;
        for i in chunk * 10..chunk * 10 + 10 {
            store.put(entry(i, 1000)).await?;
        }
    }
    let stored: Vec<Entry> = store
        .scan(Select::All, Timestamp::from_millis(0))
        .try_collect()
        .await?;
    let bytes: u64 = stored.iter().map(entry_size).sum();
    ensure!(
        bytes <= budget + budget / 10,
        "{bytes} bytes stored over a {budget}-byte budget"
    );
    ensure!(
        bytes >= budget * 8 / 10,
        "only {bytes} bytes kept of a {budget}-byte budget"
    );
    let usage = eviction(&backend)?.usage().await?;
    let off = usage.bytes.abs_diff(bytes);
    ensure!(
        off <= bytes / 10,
        "usage() says {} bytes, the entries add up to {bytes}",
        usage.bytes
    );
    ensure!(
        present(store.as_ref(), 299).await?,
        "the newest entry was evicted"
    );
    backend.close().await?;
    Ok(())
}

async fn trim_to_removes_the_least_recently_used_first(ctx: TestContext) -> CaseResult {
    let (backend, store) = open(&ctx, Budget::NONE).await?;
    for i in 0..10 {
        store.put(entry(i, 100)).await?;
        pause().await;
    }
    ensure!(present(store.as_ref(), 0).await?, "entry 0 missing");
    pause().await;
    let eviction = eviction(&backend)?;
    let done = eviction.trim_to(Budget::entries(3), &|_| {}).await?;
    ensure_eq!(done.removed, 7, "entries trimmed");
    let count = store.count(Select::All, Timestamp::from_millis(0)).await?;
    ensure_eq!(count, 3, "entries left");
    ensure!(
        present(store.as_ref(), 0).await?,
        "the entry read last was trimmed"
    );
    ensure!(
        present(store.as_ref(), 9).await?,
        "the newest entry was trimmed"
    );
    ensure!(
        !present(store.as_ref(), 1).await?,
        "the oldest unread entry survived"
    );
    backend.close().await?;
    Ok(())
}
