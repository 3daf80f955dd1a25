//! Key/value cache cases (`KeyValueCache`): what every backend must give a
//! user of the plain key/value face — values, TTLs to the millisecond,
//! single-flight `get_or_set_with`, `remove`, `update_timeout`, close and
//! reconnect.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use respcache_core::kv::REPOSITORY;
use respcache_core::{
    BincodeCodec, BytesCodec, Codec, Error, ErrorKind, JsonCodec, KeyValueCache, ManualClock, Name,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::{Case, cases};
use crate::check::{CaseResult, Failure};
use crate::factory::TestContext;
use crate::{ensure, ensure_eq};

pub(super) fn cases() -> Vec<Case> {
    let mut list = cases![
        kv_missing_key_reads_as_none_default_or_not_found,
        kv_set_then_get_round_trips_a_json_value,
        kv_set_overwrites_value_and_ttl,
        kv_bincode_and_bytes_codecs_round_trip,
        kv_ttl_is_exact_to_the_millisecond,
        kv_expired_key_reads_as_missing,
        kv_no_ttl_never_expires,
        kv_get_or_set_keeps_a_fresh_value,
        kv_get_or_set_replaces_a_missing_or_expired_value,
        kv_get_or_set_with_computes_once_for_100_concurrent_callers,
        kv_get_or_set_with_error_reaches_every_waiter_and_stores_nothing,
        kv_get_or_set_with_skips_the_computation_on_a_hit,
        kv_get_or_set_with_passes_the_key_to_the_computation,
        kv_remove_is_true_only_when_every_key_existed,
        kv_update_timeout_revives_an_expired_key,
        kv_update_timeout_shortens_and_clears_the_ttl,
        kv_update_timeout_of_a_missing_key_is_not_found,
        kv_keys_are_opaque_text,
        kv_namespaces_are_isolated,
        kv_undecodable_value_is_a_miss,
        kv_close_fails_every_call_until_reconnect,
        kv_close_leaves_the_backend_open_for_others,
    ];
    list.push(Case {
        name: "kv_values_survive_a_new_backend_handle",
        needs_persistence: true,
        run: |ctx| Box::pin(kv_values_survive_a_new_backend_handle(ctx)),
    });
    list
}

// ---------------------------------------------------------------- helpers

/// How long a case waits for concurrent callers before calling it a hang.
const HANG: Duration = Duration::from_secs(30);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new())
}

/// A JSON cache in the case's namespace on `clock`.
fn json_cache<V>(ctx: &TestContext, clock: &Arc<ManualClock>) -> Result<KeyValueCache<V>, Failure>
where
    V: Clone + Send + Sync + 'static,
    JsonCodec: Codec<V>,
{
    Ok(
        KeyValueCache::builder(Arc::clone(&ctx.backend), ctx.cache.as_str())
            .clock(clock.clone())
            .build()?,
    )
}

/// The error of `result`, which must be of `kind`.
fn expect_err<T: Debug>(
    result: respcache_core::Result<T>,
    kind: ErrorKind,
    what: &str,
) -> Result<Error, Failure> {
    match result {
        Err(e) if e.kind() == kind => Ok(e),
        Err(e) => Err(Failure(format!("{what}: expected a {kind} error, got {e}"))),
        Ok(v) => Err(Failure(format!(
            "{what}: expected a {kind} error, got Ok({v:?})"
        ))),
    }
}

/// Waits until `cond` holds; a failure after [`HANG`].
async fn until(what: &str, cond: impl Fn() -> bool) -> CaseResult {
    let waited = tokio::time::timeout(HANG, async {
        while !cond() {
            tokio::time::sleep(ms(1)).await;
        }
    })
    .await;
    ensure!(
        waited.is_ok(),
        "timed out after {HANG:?} waiting until {what}"
    );
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Token {
    access_token: String,
    scopes: Vec<String>,
    expires_in: u32,
    refresh: Option<String>,
}

fn token(n: u32) -> Token {
    Token {
        access_token: format!("tok-{n}-é✓"),
        scopes: vec!["read".into(), "write:all".into()],
        expires_in: 3600 + n,
        refresh: None,
    }
}

// ---------------------------------------------------------------- reads and writes

async fn kv_missing_key_reads_as_none_default_or_not_found(ctx: TestContext) -> CaseResult {
    let kv = json_cache::<u64>(&ctx, &clock())?;
    ensure_eq!(kv.get("nope").await?, None, "get of a missing key");
    ensure_eq!(kv.get_or("nope", 7).await?, 7, "get_or of a missing key");
    ensure!(!kv.contains("nope").await?, "contains of a missing key");
    let e = expect_err(
        kv.get_or_fail("nope").await,
        ErrorKind::NotFound,
        "get_or_fail of a missing key",
    )?;
    ensure!(
        e.to_string().contains("\"nope\""),
        "the NotFound error names the key: {e}"
    );
    Ok(())
}

async fn kv_set_then_get_round_trips_a_json_value(ctx: TestContext) -> CaseResult {
    let kv = json_cache::<Token>(&ctx, &clock())?;
    kv.set("token", &token(1), None).await?;
    ensure_eq!(kv.get("token").await?, Some(token(1)), "get after set");
    ensure_eq!(
        kv.get_or_fail("token").await?,
        token(1),
        "get_or_fail after set"
    );
    ensure_eq!(
        kv.get_or("token", token(9)).await?,
        token(1),
        "get_or after set"
    );
    ensure!(kv.contains("token").await?, "contains after set");
    // A second handle on the same namespace reads the same value.
    let other = json_cache::<serde_json::Value>(&ctx, &clock())?;
    let raw = other.get("token").await?;
    ensure_eq!(
        raw.as_ref().and_then(|v| v.get("access_token")).cloned(),
        Some(serde_json::Value::from("tok-1-é✓")),
        "the value is stored as JSON"
    );
    Ok(())
}

async fn kv_set_overwrites_value_and_ttl(ctx: TestContext) -> CaseResult {
    let clock = clock();
    let kv = json_cache::<String>(&ctx, &clock)?;
    kv.set("k", &"first".to_owned(), Some(ms(1000))).await?;
    kv.set("k", &"second".to_owned(), None).await?;
    ensure_eq!(
        kv.get("k").await?.as_deref(),
        Some("second"),
        "the new value wins"
    );
    clock.advance(Duration::from_secs(5));
    ensure_eq!(
        kv.get("k").await?.as_deref(),
        Some("second"),
        "the new ttl (none) replaced the old one"
    );
    kv.set("k", &"third".to_owned(), Some(ms(10))).await?;
    clock.advance(ms(10));
    ensure_eq!(kv.get("k").await?, None, "the newest ttl applies");
    Ok(())
}

async fn kv_bincode_and_bytes_codecs_round_trip(ctx: TestContext) -> CaseResult {
    let ns = ctx.cache.as_str();
    let bin = KeyValueCache::<Token>::builder(Arc::clone(&ctx.backend), ns)
        .codec(BincodeCodec)
        .build()?;
    bin.set("bin", &token(2), None).await?;
    ensure_eq!(bin.get("bin").await?, Some(token(2)), "bincode value");

    let raw = KeyValueCache::<Bytes>::builder(Arc::clone(&ctx.backend), ns)
        .codec(BytesCodec)
        .build()?;
    let every_byte: Bytes = (0..=255u8).collect::<Vec<u8>>().into();
    raw.set("raw", &every_byte, None).await?;
    raw.set("empty", &Bytes::new(), None).await?;
    ensure_eq!(raw.get("raw").await?, Some(every_byte), "every byte value");
    ensure_eq!(
        raw.get("empty").await?,
        Some(Bytes::new()),
        "an empty value is a value, not a miss"
    );

    let vecs = KeyValueCache::<Vec<u8>>::builder(Arc::clone(&ctx.backend), ns)
        .codec(BytesCodec)
        .build()?;
    ensure_eq!(
        vecs.get("raw").await?.map(|v| v.len()),
        Some(256),
        "Vec<u8> reads what Bytes wrote"
    );
    Ok(())
}

// ---------------------------------------------------------------- expiry

async fn kv_ttl_is_exact_to_the_millisecond(ctx: TestContext) -> CaseResult {
    let clock = clock();
    let kv = json_cache::<u32>(&ctx, &clock)?;
    kv.set("a", &1, Some(ms(1500))).await?;
    kv.set("b", &2, Some(ms(1))).await?;
    clock.advance(ms(1));
    ensure_eq!(kv.get("b").await?, None, "ttl 1 ms: expired at +1 ms");
    clock.advance(ms(1497));
    ensure_eq!(
        kv.get("a").await?,
        Some(1),
        "ttl 1500 ms: fresh at +1498 ms"
    );
    clock.advance(ms(1));
    ensure_eq!(
        kv.get("a").await?,
        Some(1),
        "ttl 1500 ms: fresh at +1499 ms (not rounded to seconds)"
    );
    ensure!(kv.contains("a").await?, "contains at +1499 ms");
    clock.advance(ms(1));
    ensure_eq!(kv.get("a").await?, None, "ttl 1500 ms: expired at +1500 ms");
    ensure!(!kv.contains("a").await?, "contains at +1500 ms");
    Ok(())
}

async fn kv_expired_key_reads_as_missing(ctx: TestContext) -> CaseResult {
    let clock = clock();
    let kv = json_cache::<String>(&ctx, &clock)?;
    kv.set("k", &"v".to_owned(), Some(ms(250))).await?;
    clock.advance(ms(250));
    ensure_eq!(kv.get("k").await?, None, "get of an expired key");
    ensure_eq!(
        kv.get_or("k", "default".to_owned()).await?,
        "default",
        "get_or of an expired key"
    );
    ensure!(!kv.contains("k").await?, "contains of an expired key");
    let e = expect_err(
        kv.get_or_fail("k").await,
        ErrorKind::NotFound,
        "get_or_fail of an expired key",
    )?;
    ensure!(
        e.to_string().contains("\"k\""),
        "the error names the key: {e}"
    );
    Ok(())
}

async fn kv_no_ttl_never_expires(ctx: TestContext) -> CaseResult {
    let clock = clock();
    let kv = json_cache::<u8>(&ctx, &clock)?;
    kv.set("forever", &1, None).await?;
    clock.advance(Duration::from_secs(100 * 365 * 24 * 3600));
    ensure_eq!(
        kv.get("forever").await?,
        Some(1),
        "no ttl: fresh a century later"
    );
    Ok(())
}

// ---------------------------------------------------------------- get_or_set

async fn kv_get_or_set_keeps_a_fresh_value(ctx: TestContext) -> CaseResult {
    let clock = clock();
    let kv = json_cache::<String>(&ctx, &clock)?;
    kv.set("k", &"kept".to_owned(), Some(ms(1000))).await?;
    let got = kv.get_or_set("k", "new".to_owned(), None).await?;
    ensure_eq!(got, "kept", "get_or_set returns the fresh value");
    clock.advance(ms(999));
    ensure_eq!(
        kv.get("k").await?.as_deref(),
        Some("kept"),
        "and leaves it (and its ttl) alone"
    );
    clock.advance(ms(1));
    ensure_eq!(kv.get("k").await?, None, "the original ttl still applies");
    Ok(())
}

async fn kv_get_or_set_replaces_a_missing_or_expired_value(ctx: TestContext) -> CaseResult {
    let clock = clock();
    let kv = json_cache::<String>(&ctx, &clock)?;
    let got = kv.get_or_set("k", "one".to_owned(), Some(ms(100))).await?;
    ensure_eq!(got, "one", "get_or_set of a missing key returns the value");
    ensure_eq!(kv.get("k").await?.as_deref(), Some("one"), "and stores it");
    clock.advance(ms(100));
    let got = kv.get_or_set("k", "two".to_owned(), Some(ms(100))).await?;
    ensure_eq!(
        got,
        "two",
        "get_or_set of an expired key returns the new value"
    );
    clock.advance(ms(99));
    ensure_eq!(
        kv.get("k").await?.as_deref(),
        Some("two"),
        "stored with the new ttl"
    );
    clock.advance(ms(1));
    ensure_eq!(kv.get("k").await?, None, "which expires on time");
    Ok(())
}

async fn kv_get_or_set_with_computes_once_for_100_concurrent_callers(
    ctx: TestContext,
) -> CaseResult {
    let kv = json_cache::<Token>(&ctx, &clock())?;
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let tasks: Vec<_> = (0..100u32)
        .map(|i| {
            let (kv, runs, gate) = (kv.clone(), Arc::clone(&runs), Arc::clone(&gate));
            tokio::spawn(async move {
                kv.get_or_set_with(
                    "token",
                    |_| async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        // Hold the computation until every caller waits.
                        let _permit = gate.acquire().await;
                        Ok::<_, Error>(token(i))
                    },
                    Some(Duration::from_secs(3600)),
                )
                .await
            })
        })
        .collect();
    let all_waiting = until("99 callers wait for the one computing", || {
        kv.waiters("token") == 99
    })
    .await;
    gate.add_permits(1);
    all_waiting?;
    let mut values = Vec::new();
    for task in tasks {
        match task.await {
            Ok(result) => values.push(result?),
            Err(e) => return Err(Failure(format!("a caller task failed: {e}"))),
        }
    }
    ensure_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "computations for 100 callers"
    );
    let first = values.first().cloned();
    ensure!(
        values.iter().all(|v| Some(v) == first.as_ref()),
        "every caller gets the one computed value"
    );
    ensure_eq!(
        kv.get("token").await?,
        first,
        "the computed value is stored"
    );
    ensure_eq!(
        kv.in_flight(),
        0,
        "keys in flight once every caller returned"
    );
    Ok(())
}

async fn kv_get_or_set_with_error_reaches_every_waiter_and_stores_nothing(
    ctx: TestContext,
) -> CaseResult {
    let kv = json_cache::<String>(&ctx, &clock())?;
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (kv, runs, gate) = (kv.clone(), Arc::clone(&runs), Arc::clone(&gate));
            tokio::spawn(async move {
                kv.get_or_set_with(
                    "token",
                    |_| async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let _permit = gate.acquire().await;
                        Err::<String, _>(std::io::Error::other("token endpoint is down"))
                    },
                    None,
                )
                .await
            })
        })
        .collect();
    let all_waiting = until("19 callers wait", || kv.waiters("token") == 19).await;
    gate.add_permits(1);
    all_waiting?;
    for task in tasks {
        let result = task
            .await
            .map_err(|e| Failure(format!("a caller task failed: {e}")))?;
        let e = expect_err(
            result,
            ErrorKind::Computation,
            "a caller of a failing computation",
        )?;
        ensure!(
            e.to_string().contains("token endpoint is down"),
            "every caller sees the computation's error: {e}"
        );
    }
    ensure_eq!(runs.load(Ordering::SeqCst), 1, "computations");
    ensure_eq!(
        kv.get("token").await?,
        None,
        "nothing is stored after an error"
    );
    ensure_eq!(kv.in_flight(), 0, "keys in flight after the error");
    let v = kv
        .get_or_set_with("token", |_| async { Ok::<_, Error>("ok".to_owned()) }, None)
        .await?;
    ensure_eq!(v, "ok", "the next call computes again");
    ensure_eq!(kv.get("token").await?.as_deref(), Some("ok"), "and stores");
    Ok(())
}

async fn kv_get_or_set_with_skips_the_computation_on_a_hit(ctx: TestContext) -> CaseResult {
    let kv = json_cache::<u32>(&ctx, &clock())?;
    kv.set("k", &1, None).await?;
    let runs = AtomicUsize::new(0);
    let got = kv
        .get_or_set_with(
            "k",
            |_| async {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Error>(2)
            },
            None,
        )
        .await?;
    ensure_eq!(got, 1, "a fresh value is returned");
    ensure_eq!(runs.load(Ordering::SeqCst), 0, "computations on a hit");
    Ok(())
}

async fn kv_get_or_set_with_passes_the_key_to_the_computation(ctx: TestContext) -> CaseResult {
    let kv = json_cache::<String>(&ctx, &clock())?;
    let describe = |key: String| async move { Ok::<_, Error>(format!("value of {key}")) };
    for key in ["a", "b", "ünïcode key"] {
        let v = kv.get_or_set_with(key, describe, None).await?;
        ensure_eq!(
            v,
            format!("value of {key}"),
            "the computed value of {key:?}"
        );
    }
    ensure_eq!(
        kv.get("b").await?.as_deref(),
        Some("value of b"),
        "each key's value is stored under it"
    );
    Ok(())
}

// ---------------------------------------------------------------- remove, update_timeout

async fn kv_remove_is_true_only_when_every_key_existed(ctx: TestContext) -> CaseResult {
    let clock = clock();
    let kv = json_cache::<u8>(&ctx, &clock)?;
    for k in ["a", "b", "c", "d"] {
        kv.set(k, &1, None).await?;
    }
    ensure!(kv.remove(["a"]).await?, "remove of one stored key");
    ensure_eq!(kv.get("a").await?, None, "a removed key is gone");
    ensure!(kv.remove(["b", "c"]).await?, "remove of two stored keys");
    ensure!(
        !kv.remove(["d", "missing"]).await?,
        "remove with a missing key is false"
    );
    ensure_eq!(
        kv.get("d").await?,
        None,
        "the stored key is removed even when another was missing"
    );
    ensure!(!kv.remove(["d"]).await?, "remove of a removed key is false");
    kv.set("e", &1, None).await?;
    ensure!(
        kv.remove(vec!["e".to_owned(), "e".to_owned()]).await?,
        "a key named twice counts once"
    );
    kv.set("stale", &1, Some(ms(10))).await?;
    clock.advance(ms(10));
    ensure!(
        kv.remove(["stale"]).await?,
        "an expired value is still stored: remove finds it"
    );
    ensure!(
        expect_err(
            kv.update_timeout("stale", None).await,
            ErrorKind::NotFound,
            "update_timeout after remove"
        )
        .is_ok(),
        "the expired value was removed"
    );
    ensure!(kv.remove(Vec::<String>::new()).await?, "remove of no keys");
    Ok(())
}

async fn kv_update_timeout_revives_an_expired_key(ctx: TestContext) -> CaseResult {
    let clock = clock();
    let kv = json_cache::<Token>(&ctx, &clock)?;
    kv.set("k", &token(3), Some(ms(1000))).await?;
    clock.advance(ms(2000));
    ensure_eq!(kv.get("k").await?, None, "expired before update_timeout");
    kv.update_timeout("k", Some(ms(1500))).await?;
    ensure_eq!(kv.get("k").await?, Some(token(3)), "revived, value intact");
    clock.advance(ms(1499));
    ensure_eq!(
        kv.get("k").await?,
        Some(token(3)),
        "fresh at +1499 ms of the new ttl"
    );
    clock.advance(ms(1));
    ensure_eq!(
        kv.get("k").await?,
        None,
        "expired at +1500 ms of the new ttl"
    );
    Ok(())
}

async fn kv_update_timeout_shortens_and_clears_the_ttl(ctx: TestContext) -> CaseResult {
    let clock = clock();
    let kv = json_cache::<u8>(&ctx, &clock)?;
    kv.set("short", &1, None).await?;
    kv.update_timeout("short", Some(ms(100))).await?;
    clock.advance(ms(100));
    ensure_eq!(
        kv.get("short").await?,
        None,
        "a never-expiring key given a ttl"
    );
    kv.set("long", &2, Some(ms(100))).await?;
    kv.update_timeout("long", None).await?;
    clock.advance(Duration::from_secs(86_400));
    ensure_eq!(
        kv.get("long").await?,
        Some(2),
        "update_timeout(None) never expires"
    );
    Ok(())
}

async fn kv_update_timeout_of_a_missing_key_is_not_found(ctx: TestContext) -> CaseResult {
    let kv = json_cache::<u8>(&ctx, &clock())?;
    let e = expect_err(
        kv.update_timeout("ghost", Some(ms(100))).await,
        ErrorKind::NotFound,
        "update_timeout of a missing key",
    )?;
    ensure!(
        e.to_string().contains("\"ghost\""),
        "the error names the key: {e}"
    );
    ensure_eq!(kv.get("ghost").await?, None, "nothing was created");
    Ok(())
}

// ---------------------------------------------------------------- keys, namespaces, decoding

async fn kv_keys_are_opaque_text(ctx: TestContext) -> CaseResult {
    let kv = json_cache::<usize>(&ctx, &clock())?;
    let long = "k".repeat(512);
    let keys = [
        "",
        " ",
        "a",
        "A",
        "a:b",
        "a|b",
        "a/b",
        "../etc/passwd",
        "1:a",
        "KV",
        "key",
        "*",
        "?",
        "%2F",
        "with space",
        "quote'\"",
        "naïve ☃ 東京 🦀",
        "line\nbreak",
        "nul\u{0}byte",
        long.as_str(),
    ];
    for (i, k) in keys.iter().enumerate() {
        kv.set(k, &i, None).await?;
    }
    for (i, k) in keys.iter().enumerate() {
        ensure_eq!(kv.get(k).await?, Some(i), "the value under key {k:?}");
    }
    ensure!(kv.remove(keys).await?, "every key is stored");
    Ok(())
}

async fn kv_namespaces_are_isolated(ctx: TestContext) -> CaseResult {
    let other = Name::new(format!("{}-2", ctx.cache))?;
    let a = json_cache::<String>(&ctx, &clock())?;
    let b = KeyValueCache::<String>::new(Arc::clone(&ctx.backend), other.as_str())?;
    let outcome = async {
        a.set("k", &"in a".to_owned(), None).await?;
        b.set("k", &"in b".to_owned(), None).await?;
        b.set("only-b", &"b".to_owned(), None).await?;
        ensure_eq!(a.get("k").await?.as_deref(), Some("in a"), "namespace a");
        ensure_eq!(b.get("k").await?.as_deref(), Some("in b"), "namespace b");
        ensure_eq!(a.get("only-b").await?, None, "a does not see b's keys");
        ensure!(a.remove(["k"]).await?, "remove in a");
        ensure_eq!(
            b.get("k").await?.as_deref(),
            Some("in b"),
            "b keeps its key"
        );
        Ok(())
    }
    .await;
    // The harness cleans up the case's namespace only.
    let cleanup = ctx
        .backend
        .drop_store(&other, &Name::new(REPOSITORY)?)
        .await;
    outcome?;
    cleanup?;
    Ok(())
}

async fn kv_undecodable_value_is_a_miss(ctx: TestContext) -> CaseResult {
    let text = json_cache::<String>(&ctx, &clock())?;
    text.set("n", &"not a number".to_owned(), None).await?;
    let numbers = json_cache::<u64>(&ctx, &clock())?;
    ensure_eq!(
        numbers.get("n").await?,
        None,
        "an undecodable value reads as missing"
    );
    ensure_eq!(
        numbers.get_or("n", 5).await?,
        5,
        "get_or of an undecodable value"
    );
    expect_err(
        numbers.get_or_fail("n").await,
        ErrorKind::NotFound,
        "get_or_fail of an undecodable value",
    )?;
    ensure!(
        numbers.decode_failures() >= 3,
        "decode failures are counted"
    );
    let v = numbers
        .get_or_set_with("n", |_| async { Ok::<_, Error>(42) }, None)
        .await?;
    ensure_eq!(v, 42, "get_or_set_with computes over an undecodable value");
    ensure_eq!(numbers.get("n").await?, Some(42), "and replaces it");
    Ok(())
}

// ---------------------------------------------------------------- connection

async fn kv_close_fails_every_call_until_reconnect(ctx: TestContext) -> CaseResult {
    let kv = json_cache::<u8>(&ctx, &clock())?;
    kv.connect().await?;
    kv.set("k", &1, None).await?;
    let clone = kv.clone();
    kv.close().await?;
    ensure!(clone.is_closed(), "a clone sees the close");
    expect_err(clone.get("k").await, ErrorKind::Closed, "get after close")?;
    expect_err(
        clone.get_or("k", 0).await,
        ErrorKind::Closed,
        "get_or after close",
    )?;
    expect_err(
        clone.get_or_fail("k").await,
        ErrorKind::Closed,
        "get_or_fail after close",
    )?;
    expect_err(
        clone.contains("k").await,
        ErrorKind::Closed,
        "contains after close",
    )?;
    expect_err(
        clone.set("k", &2, None).await,
        ErrorKind::Closed,
        "set after close",
    )?;
    expect_err(
        clone.get_or_set("k", 2, None).await,
        ErrorKind::Closed,
        "get_or_set after close",
    )?;
    let runs = AtomicUsize::new(0);
    let computed = clone
        .get_or_set_with(
            "k",
            |_| async {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<u8, Error>(2)
            },
            None,
        )
        .await;
    expect_err(computed, ErrorKind::Closed, "get_or_set_with after close")?;
    ensure_eq!(runs.load(Ordering::SeqCst), 0, "computations after close");
    expect_err(
        clone.remove(["k"]).await,
        ErrorKind::Closed,
        "remove after close",
    )?;
    expect_err(
        clone.update_timeout("k", None).await,
        ErrorKind::Closed,
        "update_timeout after close",
    )?;

    kv.reconnect().await?;
    ensure!(!clone.is_closed(), "reconnect reopens every clone");
    ensure_eq!(
        clone.get("k").await?,
        Some(1),
        "the value survives close + reconnect"
    );
    kv.reconnect().await?;
    ensure_eq!(kv.get("k").await?, Some(1), "reconnect of an open cache");
    kv.close().await?;
    kv.connect().await?;
    ensure_eq!(
        kv.get("k").await?,
        Some(1),
        "connect after close reopens too"
    );
    Ok(())
}

async fn kv_close_leaves_the_backend_open_for_others(ctx: TestContext) -> CaseResult {
    let first = json_cache::<u8>(&ctx, &clock())?;
    let second = json_cache::<u8>(&ctx, &clock())?;
    first.set("k", &1, None).await?;
    first.close().await?;
    ensure_eq!(
        second.get("k").await?,
        Some(1),
        "another cache over the same backend still works"
    );
    second.set("k", &2, None).await?;
    first.connect().await?;
    ensure_eq!(
        first.get("k").await?,
        Some(2),
        "and the reopened one sees its writes"
    );
    Ok(())
}

async fn kv_values_survive_a_new_backend_handle(ctx: TestContext) -> CaseResult {
    let clock = clock();
    let kv = json_cache::<Token>(&ctx, &clock)?;
    kv.set("durable", &token(4), Some(ms(1500))).await?;
    kv.set("forever", &token(5), None).await?;
    let reopened = ctx.factory.connect().await?;
    let kv2 = KeyValueCache::<Token>::builder(Arc::clone(&reopened), ctx.cache.as_str())
        .clock(clock.clone())
        .build()?;
    let outcome = async {
        ensure_eq!(
            kv2.get("forever").await?,
            Some(token(5)),
            "a value without ttl"
        );
        clock.advance(ms(1499));
        ensure_eq!(
            kv2.get("durable").await?,
            Some(token(4)),
            "fresh at +1499 ms through a new handle"
        );
        clock.advance(ms(1));
        ensure_eq!(
            kv2.get("durable").await?,
            None,
            "expired at +1500 ms: the expiry survived to the millisecond"
        );
        Ok(())
    }
    .await;
    let closed = reopened.close().await;
    outcome?;
    closed?;
    Ok(())
}
