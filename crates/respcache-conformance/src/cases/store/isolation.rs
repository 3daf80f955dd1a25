//! Stores of different repositories and caches never see each other.

use bytes::Bytes;
use respcache_core::{Name, Select, StoreSpec};

use super::{entry, get_payload, ids, now, open, stale_since, text_schema};
use crate::cases::{Case, cases};
use crate::check::{CaseResult, Failure};
use crate::ensure_eq;
use crate::factory::TestContext;

pub(super) fn cases() -> Vec<Case> {
    cases![repositories_are_isolated, caches_are_isolated,]
}

async fn repositories_are_isolated(ctx: TestContext) -> CaseResult {
    let a = open(&ctx, "alpha").await?;
    let b = open(&ctx, "beta").await?;
    a.put(entry("same", "from alpha", None)).await?;
    b.put(entry("same", "from beta", None)).await?;
    b.put(entry("only-b", "b", stale_since())).await?;
    ensure_eq!(
        get_payload(a.as_ref(), "same").await?,
        Some(Bytes::from("from alpha")),
        "alpha's entry"
    );
    ensure_eq!(
        get_payload(b.as_ref(), "same").await?,
        Some(Bytes::from("from beta")),
        "beta's entry"
    );
    ensure_eq!(
        a.count(Select::All, now()).await?,
        1,
        "alpha counts only its own"
    );
    ensure_eq!(
        a.clear(Select::All, now()).await?,
        1,
        "clearing alpha clears only alpha"
    );
    ensure_eq!(
        b.count(Select::All, now()).await?,
        2,
        "beta untouched by alpha's clear"
    );
    ensure_eq!(
        ids(b.as_ref(), Select::All).await?,
        vec!["only-b", "same"],
        "beta's scan"
    );
    Ok(())
}

async fn caches_are_isolated(ctx: TestContext) -> CaseResult {
    let other = Name::new(format!("{}-2", ctx.cache))?;
    let a = open(&ctx, "shared").await?;
    let b = ctx
        .backend
        .open_store(&StoreSpec::new(
            other.clone(),
            Name::new("shared")?,
            text_schema(),
        ))
        .await?;
    let outcome = async {
        a.put(entry("k", "cache one", None)).await?;
        b.put(entry("k", "cache two", None)).await?;
        b.put(entry("k2", "cache two", None)).await?;
        ensure_eq!(
            get_payload(a.as_ref(), "k").await?,
            Some(Bytes::from("cache one")),
            "first cache"
        );
        ensure_eq!(
            get_payload(b.as_ref(), "k").await?,
            Some(Bytes::from("cache two")),
            "second cache"
        );
        ensure_eq!(
            a.clear(Select::All, now()).await?,
            1,
            "clear the first cache"
        );
        ensure_eq!(b.count(Select::All, now()).await?, 2, "second cache intact");
        ensure_eq!(
            ctx.backend.list_stores(&other).await?,
            vec![Name::new("shared")?],
            "second cache lists its own store"
        );
        Ok::<(), Failure>(())
    }
    .await;
    ctx.backend
        .drop_store(&other, &Name::new("shared")?)
        .await?;
    outcome
}
