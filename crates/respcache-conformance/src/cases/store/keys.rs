//! Keys: distinct keys never collide, whatever their parts hold.

use std::collections::HashSet;

use bytes::Bytes;
use futures::TryStreamExt;
use respcache_core::{DynStore, Entry, FieldKind, Key, KeyPart, KeySchema, Select};

use super::{key, now, open, spec};
use crate::cases::{Case, cases};
use crate::check::CaseResult;
use crate::ensure_eq;
use crate::factory::TestContext;

pub(super) fn cases() -> Vec<Case> {
    cases![
        keys_with_separators_never_collide,
        keys_with_quotes_unicode_and_empty_strings,
        text_that_looks_like_integers_never_collides,
        integer_keys_round_trip_extremes,
        method_is_part_of_the_key,
    ]
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
