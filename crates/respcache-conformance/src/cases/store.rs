//! Store-level cases: the `Store` and `Backend` contract, bullet by bullet.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use respcache_core::{
    DynStore, Entry, ErrorKind, FieldKind, Key, KeyPart, KeySchema, Name, Select, StoreSpec,
    Timestamp,
};

use super::{Case, cases};
use crate::check::{CaseResult, Failure};
use crate::factory::TestContext;
use crate::{ensure, ensure_eq};

pub(super) fn cases() -> Vec<Case> {
    let mut list = cases![
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
        keys_with_separators_never_collide,
        keys_with_quotes_unicode_and_empty_strings,
        text_that_looks_like_integers_never_collides,
        integer_keys_round_trip_extremes,
        method_is_part_of_the_key,
        repositories_are_isolated,
        caches_are_isolated,
        name_is_stored_and_returned,
        timestamps_round_trip_at_millisecond_precision,
        meta_round_trips,
        scan_returns_every_entry_once,
        scan_of_100k_entries_streams,
        concurrent_writers_on_one_key,
        concurrent_writers_and_readers_on_many_keys,
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

// ---------------------------------------------------------------- cases

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

async fn distinct_keys_round_trip(s: &DynStore, keys: &[Key]) -> CaseResult {
    let entries: Vec<Entry> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Entry::new(k.clone(), now(), format!("v{i}")))
        .collect();
    s.put_many(entries).await?;
    ensure_eq!(
        s.count(Select::All, now()).await?,
        keys.len() as u64,
        "every distinct key is its own entry"
    );
    for (i, k) in keys.iter().enumerate() {
        let got = s.get(k).await?;
        ensure_eq!(
            got.as_ref().map(|e| e.payload.clone()),
            Some(Bytes::from(format!("v{i}"))),
            "payload of {k}"
        );
        ensure_eq!(
            got.map(|e| e.key),
            Some(k.clone()),
            "key of {k} round-trips"
        );
    }
    let scanned: HashSet<Key> = s
        .scan(Select::All, now())
        .map_ok(|e| e.key)
        .try_collect()
        .await?;
    ensure_eq!(
        scanned,
        keys.iter().cloned().collect::<HashSet<_>>(),
        "scan returns the same keys"
    );
    Ok(())
}

async fn keys_with_separators_never_collide(ctx: TestContext) -> CaseResult {
    let schema = KeySchema::new([("a", FieldKind::Text), ("b", FieldKind::Text)])?;
    let s = ctx.backend.open_store(&spec(&ctx, "sep", schema)?).await?;
    let k = |a: &str, b: &str| Key::new("GET", [a.into(), b.into()]);
    distinct_keys_round_trip(
        s.as_ref(),
        &[
            k("a|b", ""),
            k("a", "|b"),
            k("a|", "b"),
            k("a:b", ""),
            k("a", ":b"),
            k("1:a", "b"),
            k("a/b", "c"),
            k("a", "b/c"),
            k("%", "_"),
            k("*", "?"),
            k("a\\b", "\n"),
        ],
    )
    .await
}

async fn keys_with_quotes_unicode_and_empty_strings(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "quotes").await?;
    let keys: Vec<Key> = [
        "",
        " ",
        "'",
        "\"",
        "x\"; DROP TABLE y; --",
        "Robert'); DROP TABLE students;--",
        "日本語",
        "emoji 🎵",
        "e\u{301}",
        "\u{e9}",
        "\0nul",
        "tab\there",
        "$where",
        "{\"$gt\": \"\"}",
    ]
    .iter()
    .map(|t| key(t))
    .collect();
    distinct_keys_round_trip(s.as_ref(), &keys).await
}

async fn text_that_looks_like_integers_never_collides(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "looks-int").await?;
    let keys: Vec<Key> = ["12", "#12", "012", "-0", "0", "1e3", "12 "]
        .iter()
        .map(|t| key(t))
        .collect();
    distinct_keys_round_trip(s.as_ref(), &keys).await
}

async fn integer_keys_round_trip_extremes(ctx: TestContext) -> CaseResult {
    let schema = KeySchema::new([("n", FieldKind::Integer), ("t", FieldKind::Text)])?;
    let s = ctx.backend.open_store(&spec(&ctx, "ints", schema)?).await?;
    let k = |n: i64, t: &str| Key::new("GET", [KeyPart::Int(n), t.into()]);
    distinct_keys_round_trip(
        s.as_ref(),
        &[
            k(0, ""),
            k(12, ""),
            k(-12, ""),
            k(i64::MIN, ""),
            k(i64::MAX, ""),
            k(1, "2"),
            k(12, "x"),
            k(2_147_483_648, ""),
        ],
    )
    .await
}

async fn method_is_part_of_the_key(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "methods").await?;
    let keys = [
        Key::new("GET", ["x".into()]),
        Key::new("HEAD", ["x".into()]),
        Key::new("POST", ["x".into()]),
    ];
    distinct_keys_round_trip(s.as_ref(), &keys).await
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

async fn scan_returns_every_entry_once(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    let n = 1_000;
    s.put_many(
        (0..n)
            .map(|i| entry(&format!("k{i}"), format!("v{i}"), None))
            .collect(),
    )
    .await?;
    let entries: Vec<Entry> = s.scan(Select::All, now()).try_collect().await?;
    ensure_eq!(entries.len(), n, "scan yields every entry");
    let unique: HashSet<Key> = entries.iter().map(|e| e.key.clone()).collect();
    ensure_eq!(unique.len(), n, "no entry twice");
    for e in &entries {
        let id = e
            .key
            .fields()
            .first()
            .and_then(KeyPart::as_text)
            .unwrap_or_default();
        ensure_eq!(
            e.payload,
            Bytes::from(format!("v{}", id.trim_start_matches('k'))),
            "payload of {id}"
        );
    }
    Ok(())
}

async fn scan_of_100k_entries_streams(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "big-scan").await?;
    let n = 100_000usize;
    for chunk in 0..(n / 5_000) {
        let entries = (chunk * 5_000..(chunk + 1) * 5_000)
            .map(|i| {
                entry(
                    &format!("{i:06}"),
                    Bytes::from_static(b"0123456789abcdef"),
                    None,
                )
            })
            .collect();
        s.put_many(entries).await?;
    }
    // Stopping after a few entries must work and be quick.
    let first: Vec<Entry> = s.scan(Select::All, now()).take(10).try_collect().await?;
    ensure_eq!(first.len(), 10, "a partial scan");

    let started = Instant::now();
    let mut stream = s.scan(Select::All, now());
    let mut first_after = None;
    let mut seen = 0usize;
    while let Some(item) = stream.next().await {
        item?;
        seen += 1;
        if first_after.is_none() {
            first_after = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    ensure_eq!(seen, n, "every entry scanned");
    let first_after = first_after.unwrap_or(total);
    // A scan that loads everything before yielding makes the first item wait
    // for (nearly) the whole scan; a stream yields it after one page.
    ensure!(
        first_after < total / 2,
        "scan is not incremental: first entry after {first_after:?} of {total:?}"
    );
    Ok(())
}

async fn concurrent_writers_on_one_key(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    let writers: Vec<_> = (0..100)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let payload = format!("version-{i:03}-").repeat(100);
                s.put(entry("hot", payload, None)).await?;
                s.get(&key("hot")).await
            })
        })
        .collect();
    for w in writers {
        let read = w
            .await
            .map_err(|e| Failure(format!("task failed: {e}")))??;
        let payload = read
            .ok_or_else(|| Failure("a reader saw no entry after its own write".into()))?
            .payload;
        ensure!(
            is_whole_version(&payload),
            "a reader saw a torn payload of {} bytes",
            payload.len()
        );
    }
    ensure_eq!(s.count(Select::All, now()).await?, 1, "one key, one entry");
    let last = get_payload(s.as_ref(), "hot").await?.unwrap_or_default();
    ensure!(
        is_whole_version(&last),
        "final payload is one whole version"
    );
    Ok(())
}

fn is_whole_version(payload: &[u8]) -> bool {
    payload.len() == 1200
        && payload.chunks(12).all(|c| c == &payload[..12])
        && payload.starts_with(b"version-")
}

async fn concurrent_writers_and_readers_on_many_keys(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let id = format!("key-{i}");
                s.put(entry(&id, format!("value-{i}"), None)).await?;
                let own = s.get(&key(&id)).await?;
                let other = s.get(&key(&format!("key-{}", (i + 50) % 100))).await?;
                Ok::<_, respcache_core::Error>((i, own, other))
            })
        })
        .collect();
    for t in tasks {
        let (i, own, other) = t
            .await
            .map_err(|e| Failure(format!("task failed: {e}")))??;
        ensure_eq!(
            own.map(|e| e.payload),
            Some(Bytes::from(format!("value-{i}"))),
            "read-your-write of key-{i}"
        );
        if let Some(other) = other {
            let j = (i + 50) % 100;
            ensure_eq!(
                other.payload,
                Bytes::from(format!("value-{j}")),
                "a concurrent read of key-{j}"
            );
        }
    }
    ensure_eq!(s.count(Select::All, now()).await?, 100, "no write lost");
    Ok(())
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
