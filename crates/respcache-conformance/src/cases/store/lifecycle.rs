//! A backend's life: errors that name what failed, `close`, `drop_store`,
//! `list_stores`, reopening.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use respcache_core::{Entry, ErrorKind, Name, Select};

use super::{entry, fresh_until, get_payload, key, now, open, spec, stale_since, text_schema};
use crate::cases::{Case, cases};
use crate::check::{CaseResult, Failure};
use crate::factory::TestContext;
use crate::{ensure, ensure_eq};

pub(super) fn cases() -> Vec<Case> {
    let mut list = cases![
        use_after_close_is_a_closed_error,
        an_operation_error_names_backend_repository_and_operation,
        drop_store_removes_entries,
        a_handle_opened_before_drop_store_never_sees_old_entries_nor_loses_a_write,
        list_stores_lists_the_cache_repositories,
    ];
    list.push(Case {
        name: "reopened_backend_sees_its_data",
        needs_persistence: true,
        run: |ctx| Box::pin(reopened_backend_sees_its_data(ctx)),
    });
    list
}

/// A store's own error (here an invalid tag, which every backend refuses)
/// names the backend, the repository and the operation in `Display`, as
/// every error of a store does.
async fn an_operation_error_names_backend_repository_and_operation(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    let name = ctx.backend.name();
    let Err(e) = s.purge_tag("a\nb").await else {
        return Err(Failure("purge_tag of an invalid tag succeeded".to_owned()));
    };
    ensure_eq!(e.kind(), ErrorKind::InvalidKey, "{e}");
    ensure_eq!(e.backend(), Some(name), "{e}");
    ensure_eq!(e.repository(), Some("r"), "{e}");
    ensure_eq!(e.operation().map(|o| o.as_str()), Some("purge_tag"), "{e}");
    let shown = format!("{name}: purge_tag in repository \"r\": invalid key: ");
    ensure!(
        e.to_string().starts_with(&shown),
        "{e} starts with {shown:?}"
    );
    Ok(())
}

async fn use_after_close_is_a_closed_error(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    s.put(entry("k", "v", None)).await?;
    let backend = ctx.factory.connect().await?;
    let name = backend.name();
    let s2 = backend.open_store(&spec(&ctx, "r", text_schema())?).await?;
    let mut running = s2.scan(Select::All, now());
    backend.close().await?;
    // Each call fails with `Closed`, and its error names the backend, the
    // repository (for calls on a store) and the operation.
    let check = |call: &str,
                 repository: Option<&str>,
                 result: Result<(), respcache_core::Error>|
     -> Result<(), Failure> {
        let Err(e) = result else {
            return Err(Failure(format!("{call} after close succeeded")));
        };
        ensure_eq!(e.kind(), ErrorKind::Closed, "{call} after close: {e}");
        ensure_eq!(
            e.backend(),
            Some(name),
            "the backend of {call}'s error: {e}"
        );
        ensure_eq!(
            e.operation().map(|o| o.as_str()),
            Some(call),
            "the operation of {call}'s error: {e}"
        );
        if let Some(repository) = repository {
            ensure_eq!(
                e.repository(),
                Some(repository),
                "the repository of {call}'s error: {e}"
            );
            let shown = format!("{name}: {call} in repository {repository:?}: closed");
            ensure!(
                e.to_string().starts_with(&shown),
                "{call}'s error shows {shown:?}: {e}"
            );
        }
        Ok(())
    };
    let k = key("k");
    let r = Some("r");
    check("get", r, s2.get(&k).await.map(|_| ()))?;
    check("put", r, s2.put(entry("k", "v", None)).await)?;
    check("count", r, s2.count(Select::All, now()).await.map(|_| ()))?;
    check("delete", r, s2.delete(&k).await.map(|_| ()))?;
    check(
        "delete_many",
        r,
        s2.delete_many(std::slice::from_ref(&k)).await.map(|_| ()),
    )?;
    check(
        "get_many",
        r,
        s2.get_many(std::slice::from_ref(&k)).await.map(|_| ()),
    )?;
    check(
        "put_many",
        r,
        s2.put_many(vec![entry("k", "v", None)]).await,
    )?;
    check("contains", r, s2.contains(&k, now()).await.map(|_| ()))?;
    check("set_expiry", r, s2.set_expiry(&k, None).await.map(|_| ()))?;
    check("set_meta", r, s2.set_meta(&k, None, None).await.map(|_| ()))?;
    check("clear", r, s2.clear(Select::All, now()).await.map(|_| ()))?;
    check("purge_tag", r, s2.purge_tag("t").await.map(|_| ()))?;
    check(
        "acquire_lease",
        r,
        s2.acquire_lease(&k, Duration::from_secs(1))
            .await
            .map(|_| ()),
    )?;
    let scanned: Vec<Result<Entry, _>> = s2.scan(Select::All, now()).collect().await;
    let first_error = scanned.into_iter().find_map(Result::err);
    check("scan", r, first_error.map_or(Ok(()), Err))?;
    // A scan that was running when the backend closed ends with `Closed`.
    let rest: Vec<Result<Entry, _>> = (&mut running).collect().await;
    let first_error = rest.into_iter().find_map(Result::err);
    check("scan", r, first_error.map_or(Ok(()), Err))?;
    check(
        "open_store",
        Some("r2"),
        backend
            .open_store(&spec(&ctx, "r2", text_schema())?)
            .await
            .map(|_| ()),
    )?;
    check(
        "list_stores",
        None,
        backend.list_stores(&ctx.cache).await.map(|_| ()),
    )?;
    check(
        "drop_store",
        r,
        backend.drop_store(&ctx.cache, &Name::new("r")?).await,
    )?;
    // The other handle is unaffected.
    ensure_eq!(
        get_payload(s.as_ref(), "k").await?,
        Some(Bytes::from("v")),
        "another handle still works"
    );
    Ok(())
}

async fn drop_store_removes_entries(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "doomed").await?;
    let keep = open(&ctx, "kept").await?;
    s.put_many(vec![entry("a", "1", None), entry("b", "2", stale_since())])
        .await?;
    keep.put(entry("a", "1", None)).await?;
    ctx.backend
        .drop_store(&ctx.cache, &Name::new("doomed")?)
        .await?;
    ensure_eq!(
        ctx.backend.list_stores(&ctx.cache).await?,
        vec![Name::new("kept")?],
        "list after drop"
    );
    let again = open(&ctx, "doomed").await?;
    ensure_eq!(
        again.count(Select::All, now()).await?,
        0,
        "a dropped store reopens empty"
    );
    ensure_eq!(
        keep.count(Select::All, now()).await?,
        1,
        "other stores untouched"
    );
    ctx.backend
        .drop_store(&ctx.cache, &Name::new("never-existed")?)
        .await?;
    Ok(())
}

/// A handle opened before `drop_store` may go on working on the emptied
/// store or fail with an error, but it never shows the dropped entries, and
/// a write it acknowledges is never lost: a handle opened afterwards sees it.
async fn a_handle_opened_before_drop_store_never_sees_old_entries_nor_loses_a_write(
    ctx: TestContext,
) -> CaseResult {
    let old = open(&ctx, "doomed").await?;
    old.put_many(vec![entry("a", "1", None), entry("b", "2", None)])
        .await?;
    ctx.backend
        .drop_store(&ctx.cache, &Name::new("doomed")?)
        .await?;
    if let Ok(found) = old.get(&key("a")).await {
        ensure!(
            found.is_none(),
            "a dropped entry read through an old handle"
        );
    }
    if let Ok(n) = old.count(Select::All, now()).await {
        ensure_eq!(n, 0, "dropped entries counted through an old handle");
    }
    let written = old.put(entry("c", "3", None)).await.is_ok();
    let new = open(&ctx, "doomed").await?;
    if written {
        ensure_eq!(
            get_payload(new.as_ref(), "c").await?,
            Some(Bytes::from("3")),
            "a write an old handle acknowledged after the drop is lost to a new handle"
        );
    }
    ensure_eq!(
        get_payload(new.as_ref(), "a").await?,
        None,
        "a dropped entry read through a new handle"
    );
    // And the new handle works whatever the old one did.
    new.put(entry("d", "4", None)).await?;
    ensure_eq!(
        get_payload(new.as_ref(), "d").await?,
        Some(Bytes::from("4")),
        "a new handle after the drop"
    );
    Ok(())
}

async fn list_stores_lists_the_cache_repositories(ctx: TestContext) -> CaseResult {
    ensure!(
        ctx.backend.list_stores(&ctx.cache).await?.is_empty(),
        "a new cache has no stores"
    );
    for repo in ["tracks", "albums", "artists-v2"] {
        open(&ctx, repo).await?.put(entry("x", "y", None)).await?;
    }
    let mut stores = ctx.backend.list_stores(&ctx.cache).await?;
    stores.sort();
    let expected: Result<Vec<Name>, _> = ["albums", "artists-v2", "tracks"]
        .into_iter()
        .map(Name::new)
        .collect();
    ensure_eq!(stores, expected?, "list_stores");
    Ok(())
}

async fn reopened_backend_sees_its_data(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "durable").await?;
    let written = entry("k", "survives", fresh_until())
        .with_name("n")
        .with_meta("m");
    s.put(written.clone()).await?;
    let reopened = ctx.factory.connect().await?;
    let s2 = reopened
        .open_store(&spec(&ctx, "durable", text_schema())?)
        .await?;
    let got = s2.get(&key("k")).await?;
    reopened.close().await?;
    ensure_eq!(got, Some(written), "a new handle sees the entry, whole");
    Ok(())
}
