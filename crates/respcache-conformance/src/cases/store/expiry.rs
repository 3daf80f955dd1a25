//! Fresh and stale: what `contains`, `count`, `scan` and `clear` select,
//! and how `set_expiry` and `set_meta` change an entry.

use std::sync::Arc;

use bytes::Bytes;
use respcache_core::{Select, Timestamp};

use super::{entry, fresh_until, ids, key, now, open, put_fresh_and_stale, stale_since};
use crate::cases::{Case, cases};
use crate::check::{CaseResult, Failure};
use crate::factory::TestContext;
use crate::{ensure, ensure_eq};

pub(super) fn cases() -> Vec<Case> {
    cases![
        contains_skips_stale_entries,
        count_selects_fresh_stale_or_all,
        scan_fresh_skips_stale_entries,
        get_returns_stale_entries,
        clear_all_removes_everything,
        clear_expired_removes_exactly_the_stale_entries,
        clear_expired_never_deletes_a_concurrent_fresh_write,
        set_expiry_revives_a_stale_entry,
        set_expiry_keeps_payload_name_and_cached_at,
        set_expiry_on_missing_key_is_false,
        set_expiry_to_never,
        set_meta_replaces_meta_and_expiry_and_keeps_the_rest,
        never_expiring_entries_stay_fresh,
        expiry_boundary_is_exclusive,
        overwriting_a_stale_entry_makes_it_fresh,
    ]
}

async fn contains_skips_stale_entries(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    put_fresh_and_stale(s.as_ref()).await?;
    ensure!(
        s.contains(&key("fresh-1"), now()).await?,
        "fresh entry is contained"
    );
    ensure!(
        s.contains(&key("fresh-2"), now()).await?,
        "never-expiring entry is contained"
    );
    ensure!(
        !s.contains(&key("stale-1"), now()).await?,
        "stale entry is not contained"
    );
    Ok(())
}

async fn count_selects_fresh_stale_or_all(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    put_fresh_and_stale(s.as_ref()).await?;
    ensure_eq!(s.count(Select::All, now()).await?, 5, "count(All)");
    ensure_eq!(s.count(Select::Fresh, now()).await?, 2, "count(Fresh)");
    ensure_eq!(s.count(Select::Expired, now()).await?, 3, "count(Expired)");
    Ok(())
}

async fn scan_fresh_skips_stale_entries(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    put_fresh_and_stale(s.as_ref()).await?;
    ensure_eq!(
        ids(s.as_ref(), Select::Fresh).await?,
        vec!["fresh-1", "fresh-2"],
        "scan(Fresh)"
    );
    ensure_eq!(
        ids(s.as_ref(), Select::Expired).await?,
        vec!["stale-1", "stale-2", "stale-3"],
        "scan(Expired)"
    );
    ensure_eq!(ids(s.as_ref(), Select::All).await?.len(), 5, "scan(All)");
    Ok(())
}

async fn get_returns_stale_entries(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    let expired = stale_since();
    s.put(entry("old", "still here", expired)).await?;
    let got = s
        .get(&key("old"))
        .await?
        .ok_or_else(|| Failure("stale entry not returned by get".into()))?;
    ensure_eq!(got.payload, Bytes::from("still here"), "stale payload");
    ensure_eq!(got.expires_at, expired, "stale expiry");
    Ok(())
}

async fn clear_all_removes_everything(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    put_fresh_and_stale(s.as_ref()).await?;
    ensure_eq!(
        s.clear(Select::All, now()).await?,
        5,
        "clear(All) reports 5"
    );
    ensure_eq!(
        s.count(Select::All, now()).await?,
        0,
        "empty after clear(All)"
    );
    ensure_eq!(s.get(&key("fresh-1")).await?, None, "fresh entry gone");
    Ok(())
}

async fn clear_expired_removes_exactly_the_stale_entries(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    put_fresh_and_stale(s.as_ref()).await?;
    ensure_eq!(
        s.clear(Select::Expired, now()).await?,
        3,
        "clear(Expired) reports the stale ones"
    );
    ensure_eq!(
        ids(s.as_ref(), Select::All).await?,
        vec!["fresh-1", "fresh-2"],
        "the fresh entries are kept"
    );
    Ok(())
}

async fn clear_expired_never_deletes_a_concurrent_fresh_write(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "race").await?;
    let n = 500;
    for round in 0..3 {
        let ids: Vec<String> = (0..n).map(|i| format!("r{round}-{i}")).collect();
        s.put_many(
            ids.iter()
                .map(|id| entry(id, "stale", stale_since()))
                .collect(),
        )
        .await?;
        let writer = {
            let s = Arc::clone(&s);
            let ids = ids.clone();
            tokio::spawn(async move {
                for id in &ids {
                    s.put(entry(id, "fresh", fresh_until())).await?;
                }
                Ok::<(), respcache_core::Error>(())
            })
        };
        s.clear(Select::Expired, now()).await?;
        writer
            .await
            .map_err(|e| Failure(format!("writer task failed: {e}")))??;
        let got = s
            .get_many(&ids.iter().map(|id| key(id)).collect::<Vec<_>>())
            .await?;
        let lost: Vec<&String> = ids
            .iter()
            .zip(&got)
            .filter(|(_, e)| e.as_ref().map(|e| e.payload.as_ref()) != Some(b"fresh".as_ref()))
            .map(|(id, _)| id)
            .collect();
        ensure!(
            lost.is_empty(),
            "round {round}: clear(Expired) deleted {} fresh entries written during it, e.g. {:?}",
            lost.len(),
            lost.first()
        );
    }
    Ok(())
}

async fn set_expiry_revives_a_stale_entry(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    s.put(entry("k", "v", stale_since())).await?;
    ensure!(!s.contains(&key("k"), now()).await?, "stale before");
    let later = fresh_until();
    ensure!(
        s.set_expiry(&key("k"), later).await?,
        "set_expiry of an existing key is true"
    );
    ensure!(
        s.contains(&key("k"), now()).await?,
        "fresh after set_expiry"
    );
    ensure_eq!(
        s.get(&key("k")).await?.and_then(|e| e.expires_at),
        later,
        "new expires_at"
    );
    ensure_eq!(s.count(Select::Fresh, now()).await?, 1, "counted as fresh");
    Ok(())
}

async fn set_expiry_keeps_payload_name_and_cached_at(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    let original = entry("k", "payload", stale_since())
        .with_name("Name")
        .with_meta("meta");
    s.put(original.clone()).await?;
    s.set_expiry(&key("k"), fresh_until()).await?;
    let got = s
        .get(&key("k"))
        .await?
        .ok_or_else(|| Failure("entry vanished".into()))?;
    ensure_eq!(got.payload, original.payload, "payload kept");
    ensure_eq!(got.name, original.name, "name kept");
    ensure_eq!(got.meta, original.meta, "meta kept");
    ensure_eq!(got.cached_at, original.cached_at, "cached_at kept");
    Ok(())
}

async fn set_expiry_on_missing_key_is_false(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    ensure!(
        !s.set_expiry(&key("missing"), fresh_until()).await?,
        "set_expiry of a missing key is false"
    );
    ensure_eq!(s.get(&key("missing")).await?, None, "and creates nothing");
    Ok(())
}

async fn set_expiry_to_never(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    s.put(entry("k", "v", stale_since())).await?;
    s.set_expiry(&key("k"), None).await?;
    ensure_eq!(
        s.get(&key("k")).await?.map(|e| e.expires_at),
        Some(None),
        "never expires now"
    );
    ensure!(s.contains(&key("k"), now()).await?, "fresh");
    Ok(())
}

async fn set_meta_replaces_meta_and_expiry_and_keeps_the_rest(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    let original = entry("k", "the body", stale_since())
        .with_name("Name")
        .with_meta("old headers");
    s.put(original.clone()).await?;
    let later = fresh_until();
    ensure!(
        s.set_meta(&key("k"), Some(Bytes::from("new headers")), later)
            .await?,
        "set_meta of an existing key is true"
    );
    let got = s
        .get(&key("k"))
        .await?
        .ok_or_else(|| Failure("entry vanished".into()))?;
    ensure_eq!(got.meta, Some(Bytes::from("new headers")), "meta replaced");
    ensure_eq!(got.expires_at, later, "expiry replaced");
    ensure_eq!(got.payload, original.payload, "payload kept");
    ensure_eq!(got.name, original.name, "name kept");
    ensure_eq!(got.cached_at, original.cached_at, "cached_at kept");
    ensure!(s.contains(&key("k"), now()).await?, "fresh again");
    s.set_meta(&key("k"), None, None).await?;
    ensure_eq!(
        s.get(&key("k")).await?.map(|e| (e.meta, e.expires_at)),
        Some((None, None)),
        "meta removed, never expires"
    );
    ensure!(
        !s.set_meta(&key("missing"), Some(Bytes::from("m")), later)
            .await?,
        "set_meta of a missing key is false"
    );
    ensure_eq!(s.get(&key("missing")).await?, None, "and creates nothing");
    Ok(())
}

async fn never_expiring_entries_stay_fresh(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    s.put(entry("forever", "v", None)).await?;
    let far = Timestamp::from_millis(i64::MAX / 2);
    ensure!(
        s.contains(&key("forever"), far).await?,
        "fresh in the far future"
    );
    ensure_eq!(
        s.count(Select::Fresh, far).await?,
        1,
        "counted fresh in the far future"
    );
    ensure_eq!(
        s.clear(Select::Expired, far).await?,
        0,
        "never cleared as expired"
    );
    Ok(())
}

async fn expiry_boundary_is_exclusive(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    let at = Timestamp::from_millis(now().as_millis() + 10_000);
    s.put(entry("k", "v", Some(at))).await?;
    let just_before = Timestamp::from_millis(at.as_millis() - 1);
    ensure!(
        s.contains(&key("k"), just_before).await?,
        "fresh 1 ms before expires_at"
    );
    ensure!(!s.contains(&key("k"), at).await?, "stale at expires_at");
    ensure_eq!(
        s.count(Select::Fresh, just_before).await?,
        1,
        "count fresh 1 ms before"
    );
    ensure_eq!(
        s.count(Select::Fresh, at).await?,
        0,
        "count fresh at expires_at"
    );
    Ok(())
}

async fn overwriting_a_stale_entry_makes_it_fresh(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    s.put(entry("k", "old", stale_since())).await?;
    s.put(entry("k", "new", fresh_until())).await?;
    ensure!(s.contains(&key("k"), now()).await?, "fresh after overwrite");
    ensure_eq!(
        s.count(Select::Expired, now()).await?,
        0,
        "nothing stale left"
    );
    Ok(())
}
