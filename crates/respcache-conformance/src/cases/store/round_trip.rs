//! What goes in comes out: payloads, names, timestamps, meta, and the
//! single and batch operations.

use bytes::Bytes;
use futures::TryStreamExt;
use respcache_core::{Entry, ErrorKind, Name, Select, Timestamp};

use super::{entry, fresh_until, get_payload, ids, key, now, open, stale_since};
use crate::cases::{Case, cases};
use crate::check::{CaseResult, Failure};
use crate::factory::TestContext;
use crate::{ensure, ensure_eq};

pub(super) fn cases() -> Vec<Case> {
    cases![
        open_store_is_idempotent,
        empty_payload_round_trips,
        all_byte_values_round_trip,
        five_megabyte_payload_round_trips,
        missing_key_is_none,
        put_overwrites,
        delete_reports_whether_it_existed,
        delete_many_counts_only_existing_keys,
        delete_many_with_no_keys,
        get_many_keeps_order_and_reports_misses,
        get_many_with_no_keys,
        put_many_ten_thousand_then_count,
        put_many_with_no_entries,
        name_is_stored_and_returned,
        timestamps_round_trip_at_millisecond_precision,
        meta_round_trips,
    ]
}

async fn open_store_is_idempotent(ctx: TestContext) -> CaseResult {
    let a = open(&ctx, "tracks").await?;
    a.put(entry("x", "1", None)).await?;
    let b = open(&ctx, "tracks").await?;
    ensure_eq!(
        get_payload(b.as_ref(), "x").await?,
        Some(Bytes::from("1")),
        "a second open sees the first one's entry"
    );
    let stores = ctx.backend.list_stores(&ctx.cache).await?;
    ensure_eq!(
        stores,
        vec![Name::new("tracks")?],
        "list_stores after opening twice"
    );
    Ok(())
}

async fn empty_payload_round_trips(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    s.put(entry("empty", Bytes::new(), None)).await?;
    ensure_eq!(
        get_payload(s.as_ref(), "empty").await?,
        Some(Bytes::new()),
        "empty payload"
    );
    Ok(())
}

async fn all_byte_values_round_trip(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    let payload: Vec<u8> = (0..=255u8).cycle().take(256 * 4).collect();
    s.put(entry("bin", payload.clone(), None)).await?;
    ensure_eq!(
        get_payload(s.as_ref(), "bin").await?,
        Some(Bytes::from(payload)),
        "binary payload with every byte value"
    );
    Ok(())
}

async fn five_megabyte_payload_round_trips(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    let payload: Vec<u8> = (0..5 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let result = s.put(entry("big", payload.clone(), None)).await;
    match ctx.backend.limits().max_payload_bytes {
        Some(limit) if payload.len() > limit => {
            ensure_eq!(
                result.err().map(|e| e.kind()),
                Some(ErrorKind::PayloadTooLarge),
                "5 MB over the backend's limit"
            );
            ensure_eq!(s.get(&key("big")).await?, None, "nothing half-written");
        }
        _ => {
            result?;
            let got = get_payload(s.as_ref(), "big").await?;
            ensure!(
                got.as_deref() == Some(payload.as_slice()),
                "5 MB payload came back different ({:?} bytes)",
                got.map(|b| b.len())
            );
        }
    }
    Ok(())
}

async fn missing_key_is_none(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    ensure_eq!(s.get(&key("nope")).await?, None, "get of a missing key");
    ensure!(
        !s.contains(&key("nope"), now()).await?,
        "contains of a missing key"
    );
    Ok(())
}

async fn put_overwrites(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    s.put(entry("k", "first", None).with_name("one")).await?;
    s.put(entry("k", "second", fresh_until())).await?;
    let got = s
        .get(&key("k"))
        .await?
        .ok_or_else(|| Failure("entry vanished".into()))?;
    ensure_eq!(
        got.payload,
        Bytes::from("second"),
        "payload after overwrite"
    );
    ensure_eq!(got.name, None, "the name is replaced too (whole entry)");
    ensure!(got.expires_at.is_some(), "expiry replaced");
    ensure_eq!(
        s.count(Select::All, now()).await?,
        1,
        "one entry after overwrite"
    );
    Ok(())
}

async fn delete_reports_whether_it_existed(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    s.put(entry("k", "v", None)).await?;
    ensure!(
        s.delete(&key("k")).await?,
        "delete of an existing key is true"
    );
    ensure!(!s.delete(&key("k")).await?, "second delete is false");
    ensure_eq!(s.get(&key("k")).await?, None, "deleted entry is gone");
    Ok(())
}

async fn delete_many_counts_only_existing_keys(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    s.put_many(vec![
        entry("a", "1", None),
        entry("b", "2", None),
        entry("c", "3", None),
    ])
    .await?;
    let n = s.delete_many(&[key("a"), key("missing"), key("c")]).await?;
    ensure_eq!(n, 2, "delete_many counts existing keys only");
    ensure_eq!(
        ids(s.as_ref(), Select::All).await?,
        vec!["b".to_owned()],
        "what is left"
    );
    Ok(())
}

async fn delete_many_with_no_keys(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    s.put(entry("a", "1", None)).await?;
    ensure_eq!(s.delete_many(&[]).await?, 0, "delete_many of nothing");
    ensure_eq!(s.count(Select::All, now()).await?, 1, "nothing deleted");
    Ok(())
}

async fn get_many_keeps_order_and_reports_misses(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    s.put_many(vec![entry("a", "1", None), entry("c", "3", stale_since())])
        .await?;
    let got = s
        .get_many(&[key("c"), key("missing"), key("a"), key("c")])
        .await?;
    let payloads: Vec<Option<Bytes>> = got.into_iter().map(|e| e.map(|e| e.payload)).collect();
    ensure_eq!(
        payloads,
        vec![
            Some(Bytes::from("3")),
            None,
            Some(Bytes::from("1")),
            Some(Bytes::from("3"))
        ],
        "get_many answers one slot per key, in order, stale included"
    );
    Ok(())
}

async fn get_many_with_no_keys(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    ensure!(
        s.get_many(&[]).await?.is_empty(),
        "get_many of nothing is empty"
    );
    Ok(())
}

async fn put_many_ten_thousand_then_count(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    let entries: Vec<Entry> = (0..10_000)
        .map(|i| entry(&format!("k{i}"), format!("v{i}"), None))
        .collect();
    s.put_many(entries).await?;
    ensure_eq!(
        s.count(Select::All, now()).await?,
        10_000,
        "count after put_many(10 000)"
    );
    ensure_eq!(
        get_payload(s.as_ref(), "k9999").await?,
        Some(Bytes::from("v9999")),
        "last entry readable"
    );
    ensure_eq!(
        get_payload(s.as_ref(), "k0").await?,
        Some(Bytes::from("v0")),
        "first entry readable"
    );
    Ok(())
}

async fn put_many_with_no_entries(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    s.put_many(Vec::new()).await?;
    ensure_eq!(s.count(Select::All, now()).await?, 0, "nothing stored");
    Ok(())
}

async fn name_is_stored_and_returned(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    s.put(entry("named", "v", None).with_name("Bohemian Rhapsody — Queen"))
        .await?;
    s.put(entry("anonymous", "v", None)).await?;
    ensure_eq!(
        s.get(&key("named")).await?.and_then(|e| e.name),
        Some("Bohemian Rhapsody — Queen".to_owned()),
        "name"
    );
    ensure_eq!(
        s.get(&key("anonymous")).await?.map(|e| e.name),
        Some(None),
        "no name stays None"
    );
    Ok(())
}

async fn timestamps_round_trip_at_millisecond_precision(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    let cached_at = Timestamp::from_millis(1_700_000_000_123);
    let expires_at = Some(Timestamp::from_millis(4_102_444_800_999));
    s.put(Entry::new(key("t"), cached_at, "v").with_expires_at(expires_at))
        .await?;
    let got = s
        .get(&key("t"))
        .await?
        .ok_or_else(|| Failure("entry vanished".into()))?;
    ensure_eq!(got.cached_at, cached_at, "cached_at");
    ensure_eq!(got.expires_at, expires_at, "expires_at");
    let scanned: Vec<Entry> = s.scan(Select::All, now()).try_collect().await?;
    ensure_eq!(
        scanned.first().map(|e| (e.cached_at, e.expires_at)),
        Some((cached_at, expires_at)),
        "timestamps through scan"
    );
    Ok(())
}

async fn meta_round_trips(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    let meta: Vec<u8> = (0..=255u8).rev().collect();
    s.put(entry("with", "v", None).with_meta(meta.clone()))
        .await?;
    s.put(entry("without", "v", None)).await?;
    s.put(entry("empty", "v", None).with_meta(Bytes::new()))
        .await?;
    ensure_eq!(
        s.get(&key("with")).await?.and_then(|e| e.meta),
        Some(Bytes::from(meta)),
        "meta bytes"
    );
    ensure_eq!(
        s.get(&key("without")).await?.map(|e| e.meta),
        Some(None),
        "no meta stays None"
    );
    ensure_eq!(
        s.get(&key("empty")).await?.and_then(|e| e.meta),
        Some(Bytes::new()),
        "empty meta stays empty, not None"
    );
    Ok(())
}
