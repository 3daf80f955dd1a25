//! DynamoDB-specific behaviour against a real server (DynamoDB Local by
//! default, `RESPCACHE_DYNAMODB_URL` otherwise): the table layout, TTL,
//! batches, entries over 400 KB, tables and errors.
//!
//! Like the conformance suite, every test is reported *ignored* when the
//! server cannot be reached, and *failed* under `CI=true`.

// A harness = false target is not a #[test], so clippy.toml's test
// allowances do not reach it; assertions here may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use libtest_mimic::{Arguments, Failed};
use respcache_conformance::services::{DYNAMODB, Gate};
use respcache_core::{
    Backend, DynStore, Entry, ErrorKind, FieldKind, Key, KeyPart, KeySchema, Name, Select,
    StoreSpec, Timestamp,
};
use respcache_dynamodb::aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, Select as DdbSelect, TimeToLiveStatus,
};
use respcache_dynamodb::{DynamoDbBackend, DynamoDbConfig, aws_sdk_dynamodb};

const MB: usize = 1024 * 1024;

type TestResult = Result<(), Failed>;
type TestFn = fn(Ctx) -> Pin<Box<dyn Future<Output = TestResult> + Send>>;

fn url() -> String {
    DYNAMODB.url()
}

/// What a test gets: a backend on the test table and a cache of its own.
struct Ctx {
    backend: DynamoDbBackend,
    cache: Name,
}

impl Ctx {
    fn spec(&self, repository: &str) -> StoreSpec {
        StoreSpec::new(
            self.cache.clone(),
            Name::new(repository).unwrap(),
            KeySchema::new([("id", FieldKind::Text)]).unwrap(),
        )
    }

    async fn store(&self, repository: &str) -> Arc<DynStore> {
        self.backend
            .open_store(&self.spec(repository))
            .await
            .unwrap()
    }

    async fn store_with_retention(&self, repository: &str, retention: Duration) -> Arc<DynStore> {
        self.backend
            .open_store(&self.spec(repository).with_retention(Some(retention)))
            .await
            .unwrap()
    }

    fn client(&self) -> &aws_sdk_dynamodb::Client {
        self.backend.client()
    }

    fn pk(&self, repository: &str) -> String {
        format!("{}#{repository}", self.cache)
    }

    /// How many items the partition `pk` holds, purged or not.
    async fn items_in(&self, pk: &str) -> usize {
        let mut start = None;
        let mut total = 0;
        loop {
            let out = self
                .client()
                .query()
                .table_name(self.backend.table())
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
                .select(DdbSelect::Count)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            total += out.count as usize;
            start = out.last_evaluated_key;
            if start.is_none() {
                return total;
            }
        }
    }

    async fn parts_of(&self, repository: &str) -> usize {
        self.items_in(&format!("{}#parts", self.pk(repository)))
            .await
    }

    async fn raw_item(
        &self,
        repository: &str,
        sk: &str,
    ) -> Option<HashMap<String, AttributeValue>> {
        self.client()
            .get_item()
            .table_name(self.backend.table())
            .key("pk", AttributeValue::S(self.pk(repository)))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }
}

fn key(id: &str) -> Key {
    Key::new("GET", [KeyPart::from(id)])
}

fn entry(id: &str, payload: impl Into<Bytes>) -> Entry {
    Entry::new(key(id), Timestamp::now(), payload)
}

/// `len` bytes of `byte`, so a mix of two payloads is visible.
fn filled(byte: u8, len: usize) -> Bytes {
    Bytes::from(vec![byte; len])
}

fn patterned(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

fn check(cond: bool, message: impl Into<String>) -> TestResult {
    if cond {
        Ok(())
    } else {
        Err(message.into().into())
    }
}

// ---------------------------------------------------------------- tests --

async fn large_entries_round_trip_and_overwrite(ctx: Ctx) -> TestResult {
    let s = ctx.store("r").await;
    let one = patterned(MB);
    let five = patterned(5 * MB);
    let small = Bytes::from_static(b"small");

    s.put(entry("k", one.clone()).with_name("big one")).await?;
    let got = s.get(&key("k")).await?.ok_or("1 MB entry missing")?;
    check(got.payload == one, "1 MB payload differs")?;
    check(
        got.name.as_deref() == Some("big one"),
        "name of a split entry",
    )?;
    check(ctx.parts_of("r").await == 3, "1 MB is 3 parts of 384 KiB")?;

    s.put(entry("k", five.clone())).await?;
    let got = s.get(&key("k")).await?.ok_or("5 MB entry missing")?;
    check(got.payload == five, "5 MB payload differs")?;
    check(
        ctx.parts_of("r").await == 14,
        "only the 5 MB generation's 14 parts remain",
    )?;

    s.put(entry("k", small.clone())).await?;
    check(
        s.get(&key("k")).await?.map(|e| e.payload) == Some(small.clone()),
        "small overwrite",
    )?;
    check(
        ctx.parts_of("r").await == 0,
        "a small overwrite deletes the parts",
    )?;

    s.put(entry("k", one.clone())).await?;
    check(
        s.get(&key("k")).await?.map(|e| e.payload) == Some(one.clone()),
        "back to 1 MB",
    )?;

    // Parts are never entries.
    check(
        s.count(Select::All, Timestamp::now()).await? == 1,
        "count sees one entry",
    )?;
    let scanned: Vec<Entry> = s.scan(Select::All, Timestamp::now()).try_collect().await?;
    check(
        scanned.len() == 1 && scanned[0].payload == one,
        "scan sees the whole entry once",
    )?;
    let many = s.get_many(&[key("k"), key("none"), key("k")]).await?;
    check(
        many.len() == 3
            && many[0].as_ref().map(|e| &e.payload) == Some(&one)
            && many[1].is_none()
            && many[2].as_ref().map(|e| &e.payload) == Some(&one),
        "get_many resolves split entries",
    )?;

    check(s.delete(&key("k")).await?, "delete of a split entry")?;
    check(s.get(&key("k")).await?.is_none(), "gone after delete")?;
    check(ctx.parts_of("r").await == 0, "delete removes every part")?;
    Ok(())
}

async fn clear_and_drop_store_remove_parts(ctx: Ctx) -> TestResult {
    let s = ctx.store("r").await;
    let now = Timestamp::now();
    let past = Some(Timestamp::from_millis(now.as_millis() - 60_000));
    s.put(entry("stale", patterned(MB)).with_expires_at(past))
        .await?;
    s.put(entry("fresh", patterned(MB))).await?;
    s.put(entry("tiny", "x")).await?;
    check(ctx.parts_of("r").await == 6, "two split entries")?;

    check(
        s.clear(Select::Expired, now).await? == 1,
        "clear(Expired) removes the stale one",
    )?;
    check(ctx.parts_of("r").await == 3, "and its parts")?;
    check(
        s.get(&key("fresh")).await?.is_some(),
        "the fresh split entry stays",
    )?;

    check(s.clear(Select::All, now).await? == 2, "clear(All)")?;
    check(
        ctx.parts_of("r").await == 0,
        "clear(All) removes every part",
    )?;

    s.put(entry("again", patterned(2 * MB))).await?;
    ctx.backend.drop_store(&ctx.cache, &Name::new("r")?).await?;
    check(ctx.parts_of("r").await == 0, "drop_store removes parts")?;
    check(
        ctx.items_in(&ctx.pk("r")).await == 0,
        "drop_store removes entries",
    )?;
    check(
        ctx.backend.list_stores(&ctx.cache).await?.is_empty(),
        "drop_store unlists the store",
    )?;
    Ok(())
}

async fn tags_are_a_string_set_and_purge_split_entries(ctx: Ctx) -> TestResult {
    let s = ctx.store("tagged").await;
    let tags = respcache_core::Tags::new(["t", "u"])?;
    s.put(entry("big", patterned(MB)).with_tags(tags.clone()))
        .await?;
    s.put(entry("small", "x").with_tags(tags.clone())).await?;
    s.put(entry("plain", "y")).await?;
    let raw = ctx.raw_item("tagged", &key("small").encode()).await;
    let stored = raw.as_ref().and_then(|i| i.get("tags")).cloned();
    check(
        stored == Some(AttributeValue::Ss(vec!["t".into(), "u".into()])),
        format!("tags is a string set: {stored:?}"),
    )?;
    let manifest = ctx.raw_item("tagged", &key("big").encode()).await;
    check(
        manifest
            .as_ref()
            .is_some_and(|i| i.contains_key("tags") && i.contains_key("gen")),
        "a split entry's manifest carries the tags",
    )?;
    check(
        s.get(&key("big")).await?.map(|e| e.tags) == Some(tags),
        "a split entry reads back its tags",
    )?;
    check(s.purge_tag("u").await? == 2, "purge_tag removes both")?;
    check(
        ctx.parts_of("tagged").await == 0,
        "and the split entry's parts",
    )?;
    check(
        s.get(&key("plain")).await?.is_some(),
        "the untagged entry stays",
    )?;
    // An item as versions before tags wrote it has no tags attribute.
    check(
        ctx.raw_item("tagged", &key("plain").encode())
            .await
            .is_some_and(|i| !i.contains_key("tags")),
        "no tags, no attribute",
    )?;
    Ok(())
}

/// Purges 1,000 tagged entries among 5,000 and prints the time (the
/// report's number); bounded generously.
async fn purge_of_a_thousand_tagged_entries(ctx: Ctx) -> TestResult {
    let s = ctx.store("many").await;
    let tags = respcache_core::Tags::new(["hot"])?;
    let entries: Vec<Entry> = (0..5_000)
        .map(|i| {
            let e = entry(&format!("k{i}"), vec![0u8; 100]);
            if i % 5 == 0 {
                e.with_tags(tags.clone())
            } else {
                e
            }
        })
        .collect();
    for chunk in entries.chunks(500) {
        s.put_many(chunk.to_vec()).await?;
    }
    let started = Instant::now();
    let purged = s.purge_tag("hot").await?;
    let took = started.elapsed();
    eprintln!("dynamodb: purge_tag of 1,000 of 5,000 entries took {took:?}");
    check(purged == 1_000, format!("purged {purged}"))?;
    check(took < Duration::from_secs(120), format!("{took:?}"))?;
    check(
        s.count(Select::All, Timestamp::now()).await? == 4_000,
        "the others stay",
    )
}

async fn orphan_parts_are_never_read(ctx: Ctx) -> TestResult {
    let s = ctx.store("r").await;
    s.put(entry("k", "v1")).await?;
    // Parts of a write that failed before its manifest: no manifest names them.
    let parts_pk = format!("{}#parts", ctx.pk("r"));
    for i in 0..3 {
        ctx.client()
            .put_item()
            .table_name(ctx.backend.table())
            .item("pk", AttributeValue::S(parts_pk.clone()))
            .item("sk", AttributeValue::S(format!("deadbeef#{i:06}")))
            .item("data", AttributeValue::B(vec![0u8; 1000].into()))
            .send()
            .await
            .unwrap();
    }
    check(
        s.count(Select::All, Timestamp::now()).await? == 1,
        "orphans are not counted",
    )?;
    let scanned: Vec<Entry> = s.scan(Select::All, Timestamp::now()).try_collect().await?;
    check(scanned.len() == 1, "orphans are not scanned")?;
    check(
        s.get(&key("k")).await?.map(|e| e.payload) == Some(Bytes::from("v1")),
        "entry intact",
    )?;
    ctx.backend.drop_store(&ctx.cache, &Name::new("r")?).await?;
    check(ctx.parts_of("r").await == 0, "drop_store removes orphans")?;
    Ok(())
}

async fn readers_never_see_a_mix(ctx: Ctx) -> TestResult {
    let s = ctx.store("r").await;
    let len = MB + 1234;
    s.put(entry("k", filled(0, len))).await?;
    let writers: Vec<_> = (1..=6u8)
        .map(|b| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.put(entry("k", filled(b, len))).await })
        })
        .collect();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..10 {
                    if let Some(e) = s.get(&key("k")).await? {
                        seen.push(e.payload);
                    }
                }
                Ok::<_, respcache_core::Error>(seen)
            })
        })
        .collect();
    for w in writers {
        w.await.map_err(|e| e.to_string())??;
    }
    for r in readers {
        for payload in r.await.map_err(|e| e.to_string())?? {
            check(
                payload.len() == len,
                format!("a read got {} bytes", payload.len()),
            )?;
            check(
                payload.iter().all(|b| *b == payload[0]),
                "a read mixed two versions of the entry",
            )?;
        }
    }
    let last = s
        .get(&key("k"))
        .await?
        .ok_or("entry missing after the race")?;
    check(
        last.payload.iter().all(|b| *b == last.payload[0]),
        "final entry is whole",
    )?;
    check(
        ctx.parts_of("r").await == 3,
        "only the winning generation's parts remain",
    )?;
    Ok(())
}

async fn long_keys_use_a_digest_sort_key(ctx: Ctx) -> TestResult {
    let s = ctx.store("r").await;
    let long = key(&"é".repeat(1500));
    s.put(Entry::new(long.clone(), Timestamp::now(), "v"))
        .await?;
    let sk = format!("#{}", long.digest().to_hex());
    let raw = ctx
        .raw_item("r", &sk)
        .await
        .ok_or("no item under the digest sort key")?;
    check(
        raw.get("key").and_then(|v| v.as_s().ok()) == Some(&long.encode()),
        "the full key is kept in the key attribute",
    )?;
    check(
        s.get(&long).await?.map(|e| e.key) == Some(long.clone()),
        "get by a long key",
    )?;
    check(
        s.contains(&long, Timestamp::now()).await?,
        "contains a long key",
    )?;
    let scanned: Vec<Entry> = s.scan(Select::All, Timestamp::now()).try_collect().await?;
    check(
        scanned.len() == 1 && scanned[0].key == long,
        "scan decodes the long key",
    )?;

    // A key too long for any item: the entry is split, key included.
    let huge = key(&"k".repeat(450_000));
    s.put(Entry::new(huge.clone(), Timestamp::now(), "tiny payload"))
        .await?;
    check(
        s.get(&huge).await?.map(|e| e.key) == Some(huge.clone()),
        "a 450 KB key",
    )?;
    check(
        s.delete_many(&[long, huge]).await? == 2,
        "delete_many of long keys",
    )?;
    check(ctx.parts_of("r").await == 0, "no parts left")?;
    Ok(())
}

async fn purge_at_is_expiry_plus_retention_in_seconds(ctx: Ctx) -> TestResult {
    let retained = ctx
        .store_with_retention("kept", Duration::from_secs(3600))
        .await;
    let expires = Timestamp::from_millis(Timestamp::now().as_millis() + 60_500);
    retained
        .put(entry("k", "v").with_expires_at(Some(expires)))
        .await?;
    let raw = ctx
        .raw_item("kept", &key("k").encode())
        .await
        .ok_or("item missing")?;
    let want = (expires.as_millis() + 3_600_000 + 999) / 1000;
    check(
        number(&raw, "purge_at") == Some(want),
        format!("purge_at {:?} != {want}", number(&raw, "purge_at")),
    )?;
    check(
        number(&raw, "expires_at") == Some(expires.as_millis()),
        "expires_at in ms",
    )?;

    let later = Timestamp::from_millis(expires.as_millis() + 10_000);
    check(
        retained.set_expiry(&key("k"), Some(later)).await?,
        "set_expiry",
    )?;
    let raw = ctx
        .raw_item("kept", &key("k").encode())
        .await
        .ok_or("item missing")?;
    check(
        number(&raw, "purge_at") == Some((later.as_millis() + 3_600_000 + 999) / 1000),
        "set_expiry moves purge_at",
    )?;
    check(
        retained.set_expiry(&key("k"), None).await?,
        "set_expiry(None)",
    )?;
    let raw = ctx
        .raw_item("kept", &key("k").encode())
        .await
        .ok_or("item missing")?;
    check(
        !raw.contains_key("purge_at") && !raw.contains_key("expires_at"),
        "never expires: no TTL",
    )?;

    // Without a retention there is no TTL at all.
    let plain = ctx.store("plain").await;
    plain
        .put(entry("k", "v").with_expires_at(Some(expires)))
        .await?;
    let raw = ctx
        .raw_item("plain", &key("k").encode())
        .await
        .ok_or("item missing")?;
    check(!raw.contains_key("purge_at"), "no retention, no purge_at")?;

    // A split entry's parts live as long as it does.
    retained
        .put(entry("big", patterned(MB)).with_expires_at(Some(expires)))
        .await?;
    check(
        retained.set_expiry(&key("big"), Some(later)).await?,
        "set_expiry of a split entry",
    )?;
    let got = retained
        .get(&key("big"))
        .await?
        .ok_or("split entry missing")?;
    check(got.expires_at == Some(later), "new expiry read back")?;
    let parts = ctx
        .client()
        .query()
        .table_name(ctx.backend.table())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            AttributeValue::S(format!("{}#parts", ctx.pk("kept"))),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    check(parts.len() == 3, "three parts")?;
    for part in &parts {
        check(
            number(part, "purge_at") == Some((later.as_millis() + 3_600_000 + 999) / 1000),
            "parts carry the entry's new purge_at",
        )?;
    }
    Ok(())
}

async fn items_past_purge_are_hidden(ctx: Ctx) -> TestResult {
    let s = ctx.store_with_retention("r", Duration::from_secs(1)).await;
    let long_ago = Some(Timestamp::from_millis(
        Timestamp::now().as_millis() - 10_000,
    ));
    // DynamoDB Local deletes expired items within seconds: try until the
    // read filter is caught hiding an item that is still stored.
    for attempt in 0..5 {
        let id = format!("gone{attempt}");
        s.put(entry(&id, "v").with_expires_at(long_ago)).await?;
        let hidden = s.get(&key(&id)).await?.is_none()
            && !s.contains(&key(&id), Timestamp::from_millis(0)).await?
            && s.count(Select::All, Timestamp::now()).await? == 0
            && s.get_many(&[key(&id)]).await?[0].is_none()
            && !s.set_expiry(&key(&id), None).await?
            && !s.delete(&key(&id)).await?;
        check(hidden, "an item past its purge time was visible")?;
        s.put(entry(&id, "v").with_expires_at(long_ago)).await?;
        let still_stored = ctx.raw_item("r", &key(&id).encode()).await.is_some();
        if still_stored {
            let scanned: Vec<Entry> = s.scan(Select::All, Timestamp::now()).try_collect().await?;
            check(scanned.is_empty(), "scan shows a purged item")?;
            // Stale but within its retention: still returned.
            let recent = Some(Timestamp::from_millis(
                Timestamp::now().as_millis() + 60_000,
            ));
            s.put(entry("stale", "v").with_expires_at(recent)).await?;
            let later = Timestamp::from_millis(Timestamp::now().as_millis() + 120_000);
            check(
                s.get(&key("stale")).await?.is_some(),
                "a stale entry within retention is returned",
            )?;
            check(
                !s.contains(&key("stale"), later).await?,
                "but it is not fresh",
            )?;
            return Ok(());
        }
    }
    Err("DynamoDB deleted every purged item before it could be read back".into())
}

async fn batches_dedupe_and_chunk(ctx: Ctx) -> TestResult {
    let s = ctx.store("r").await;
    let entries: Vec<Entry> = (0..240)
        .map(|i| entry(&format!("k{i}"), format!("v{i}")))
        .collect();
    let mut with_repeats = entries.clone();
    with_repeats.push(entry("k7", "last wins"));
    s.put_many(with_repeats).await?;
    check(
        s.count(Select::All, Timestamp::now()).await? == 240,
        "240 distinct entries",
    )?;
    check(
        s.get(&key("k7")).await?.map(|e| e.payload) == Some(Bytes::from("last wins")),
        "last of a repeated key wins",
    )?;

    let mut keys: Vec<Key> = (0..240).map(|i| key(&format!("k{i}"))).collect();
    keys.push(key("k3"));
    keys.push(key("missing"));
    let got = s.get_many(&keys).await?;
    check(got.len() == 242, "one slot per key")?;
    check(
        got[239].as_ref().map(|e| e.payload.clone()) == Some(Bytes::from("v239")),
        "order kept past 100 keys",
    )?;
    check(
        got[240].as_ref().map(|e| e.payload.clone()) == Some(Bytes::from("v3")),
        "a repeated key",
    )?;
    check(got[241].is_none(), "a miss")?;

    // put_many over split entries deletes their parts.
    s.put(entry("k1", patterned(MB))).await?;
    s.put(entry("k2", patterned(MB))).await?;
    check(ctx.parts_of("r").await == 6, "two split entries")?;
    s.put_many(vec![
        entry("k1", "small"),
        entry("k2", patterned(2 * MB)),
        entry("k9", "x"),
    ])
    .await?;
    check(
        ctx.parts_of("r").await == 6,
        "k1's parts deleted, k2 replaced by 6 parts",
    )?;
    check(
        s.get(&key("k2")).await?.map(|e| e.payload.len()) == Some(2 * MB),
        "k2 is 2 MB",
    )?;

    let removed = s
        .delete_many(&[key("k1"), key("k1"), key("k2"), key("nope")])
        .await?;
    check(
        removed == 2,
        format!("delete_many counts existing keys once: {removed}"),
    )?;
    check(ctx.parts_of("r").await == 0, "delete_many removes parts")?;
    Ok(())
}

async fn get_many_over_16_mb_retries_unprocessed_keys(ctx: Ctx) -> TestResult {
    let s = ctx.store("r").await;
    // 50 inline items of 390 KB: 19.5 MB, over BatchGetItem's 16 MB answer.
    let entries: Vec<Entry> = (0..50u8)
        .map(|i| entry(&format!("k{i}"), filled(i, 390_000)))
        .collect();
    s.put_many(entries).await?;
    check(
        ctx.parts_of("r").await == 0,
        "390 KB entries are stored inline",
    )?;

    // The server really leaves keys unprocessed for such a request...
    let keys: Vec<HashMap<String, AttributeValue>> = (0..50u8)
        .map(|i| {
            HashMap::from([
                ("pk".to_owned(), AttributeValue::S(ctx.pk("r"))),
                (
                    "sk".to_owned(),
                    AttributeValue::S(key(&format!("k{i}")).encode()),
                ),
            ])
        })
        .collect();
    let raw = ctx
        .client()
        .batch_get_item()
        .request_items(
            ctx.backend.table(),
            aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let unprocessed = raw
        .unprocessed_keys
        .as_ref()
        .and_then(|u| u.get(ctx.backend.table()))
        .map_or(0, |k| k.keys.len());
    check(
        unprocessed > 0,
        "the server answered 19.5 MB in one BatchGetItem",
    )?;

    // ...and get_many retries them until every slot is filled.
    let wanted: Vec<Key> = (0..50u8).map(|i| key(&format!("k{i}"))).collect();
    let got = s.get_many(&wanted).await?;
    for (i, slot) in got.iter().enumerate() {
        let e = slot.as_ref().ok_or(format!("k{i} missing"))?;
        check(
            e.payload.len() == 390_000 && e.payload[0] == i as u8,
            format!("k{i} payload"),
        )?;
    }
    Ok(())
}

async fn missing_table_without_create_is_a_configuration_error(_ctx: Ctx) -> TestResult {
    let config = DynamoDbConfig::from_url(&url())?;
    let table = unique("respcache-missing");
    let config = config.with_create_table(false).with_table(&table)?;
    let err = DynamoDbBackend::connect_with(config)
        .await
        .err()
        .ok_or("connected to a missing table")?;
    check(
        err.kind() == ErrorKind::Configuration,
        format!("kind {:?}", err.kind()),
    )?;
    let text = err.to_string();
    check(
        text.contains(&table) && text.contains("create_table"),
        format!("unclear message: {text}"),
    )?;
    Ok(())
}

async fn creates_a_missing_table_with_ttl(_ctx: Ctx) -> TestResult {
    let mut config = DynamoDbConfig::from_url(&url())?;
    config.table = unique("respcache-new");
    let backend = DynamoDbBackend::connect_with(config.clone()).await?;
    let client = backend.client().clone();
    let outcome = async {
        let described = client
            .describe_table()
            .table_name(&config.table)
            .send()
            .await
            .unwrap();
        let table = described.table.ok_or("no table")?;
        check(
            table.table_status() == Some(&aws_sdk_dynamodb::types::TableStatus::Active),
            "table is ACTIVE",
        )?;
        let ttl = client
            .describe_time_to_live()
            .table_name(&config.table)
            .send()
            .await
            .unwrap();
        let ttl = ttl.time_to_live_description().ok_or("no TTL description")?;
        check(ttl.attribute_name() == Some("purge_at"), "TTL on purge_at")?;
        check(
            matches!(
                ttl.time_to_live_status(),
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            ),
            "TTL enabled",
        )?;
        // Connecting again is fine (the table exists now).
        let again = DynamoDbBackend::connect_with(config.clone()).await?;
        let spec = StoreSpec::new(
            Name::new("c")?,
            Name::new("r")?,
            KeySchema::new([("id", FieldKind::Text)])?,
        );
        let s = again.open_store(&spec).await?;
        s.put(entry("k", "v")).await?;
        check(s.get(&key("k")).await?.is_some(), "usable")?;
        Ok::<(), Failed>(())
    }
    .await;
    client
        .delete_table()
        .table_name(&config.table)
        .send()
        .await
        .unwrap();
    outcome
}

async fn foreign_tables_are_refused_and_deleted_tables_reported(ctx: Ctx) -> TestResult {
    let client = ctx.client().clone();
    let table = unique("respcache-foreign");
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let mut config = DynamoDbConfig::from_url(&url())?;
    config.table = table.clone();
    let refused = DynamoDbBackend::connect_with(config).await;
    client
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let err = refused
        .err()
        .ok_or("accepted a table with another key schema")?;
    check(
        err.kind() == ErrorKind::Configuration,
        format!("kind {:?}", err.kind()),
    )?;
    check(
        err.to_string().contains("key schema"),
        format!("message: {err}"),
    )?;

    // A table deleted under a running backend.
    let mut config = DynamoDbConfig::from_url(&url())?;
    config.table = unique("respcache-doomed");
    let backend = DynamoDbBackend::connect_with(config.clone()).await?;
    let s = backend.open_store(&ctx.spec("r")).await?;
    client
        .delete_table()
        .table_name(&config.table)
        .send()
        .await
        .unwrap();
    let err = s
        .get(&key("k"))
        .await
        .err()
        .ok_or("read from a deleted table")?;
    check(
        err.kind() == ErrorKind::Configuration,
        format!("kind {:?}", err.kind()),
    )?;
    let text = err.to_string();
    check(
        text.contains("ResourceNotFoundException") && text.contains("does not exist"),
        format!("message: {text}"),
    )?;
    check(
        err.operation() == Some(respcache_core::Operation::Get),
        "operation is set",
    )?;
    Ok(())
}

async fn unreachable_endpoint_is_a_connection_error(_ctx: Ctx) -> TestResult {
    let err = DynamoDbBackend::connect(
        "dynamodb://respcache-test?endpoint=http://127.0.0.1:9&region=us-east-1&max_attempts=1",
    )
    .await
    .err()
    .ok_or("connected to a closed port")?;
    check(
        err.kind() == ErrorKind::Connection,
        format!("kind {:?}: {err}", err.kind()),
    )?;
    check(err.is_temporary(), "connection errors are temporary")?;
    Ok(())
}

async fn from_client_and_sdk_config(ctx: Ctx) -> TestResult {
    let config = DynamoDbConfig::from_url(&url())?;
    let backend = DynamoDbBackend::from_client(ctx.client().clone(), config.clone()).await?;
    let s = backend.open_store(&ctx.spec("a")).await?;
    s.put(entry("k", "from a client")).await?;

    let mut sdk = respcache_dynamodb::aws_config::defaults(aws_config_latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "abc", "def", None, None, "test",
        ));
    if let Some(endpoint) = &config.endpoint {
        sdk = sdk.endpoint_url(endpoint);
    }
    let sdk = sdk.load().await;
    let other = DynamoDbBackend::from_sdk_config(&sdk, config).await?;
    let s = other.open_store(&ctx.spec("a")).await?;
    check(
        s.get(&key("k")).await?.map(|e| e.payload) == Some(Bytes::from("from a client")),
        "both handles see the same table",
    )?;
    check(
        other.list_stores(&ctx.cache).await? == vec![Name::new("a")?],
        "list_stores",
    )?;
    Ok(())
}

fn aws_config_latest() -> respcache_dynamodb::aws_config::BehaviorVersion {
    respcache_dynamodb::aws_config::BehaviorVersion::latest()
}

async fn closed_backend_refuses_calls(ctx: Ctx) -> TestResult {
    let s = ctx.store("r").await;
    let backend = ctx.backend.clone();
    backend.close().await?;
    let err = s.get(&key("k")).await.err().ok_or("get after close")?;
    check(err.kind() == ErrorKind::Closed, "get is Closed")?;
    check(
        err.to_string()
            .starts_with("dynamodb: get in repository \"r\": closed"),
        format!("message: {err}"),
    )?;
    let err = s.scan(Select::All, Timestamp::now()).next().await;
    check(
        matches!(err, Some(Err(ref e)) if e.kind() == ErrorKind::Closed),
        "scan is Closed",
    )?;
    Ok(())
}

/// A per-cache config on `url()`, with a prefix of its own.
fn per_cache_config() -> Result<DynamoDbConfig, Failed> {
    Ok(DynamoDbConfig::from_url(&url())?.with_table_prefix(unique("rcpc") + "-")?)
}

async fn table_exists(client: &aws_sdk_dynamodb::Client, table: &str) -> bool {
    match client.describe_table().table_name(table).send().await {
        Ok(out) => {
            out.table.and_then(|t| t.table_status().cloned())
                != Some(aws_sdk_dynamodb::types::TableStatus::Deleting)
        }
        Err(e) => {
            assert!(
                e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()),
                "{e:?}"
            );
            false
        }
    }
}

async fn per_cache_tables_hold_one_cache_each(ctx: Ctx) -> TestResult {
    let config = per_cache_config()?;
    let backend = DynamoDbBackend::connect_with(config.clone()).await?;
    let client = ctx.client().clone();
    let cache = ctx.cache.clone();
    let other = Name::new(unique("other"))?;
    let table = backend.table_for(&cache)?;
    check(
        !table_exists(&client, &table).await,
        "no table before open_store",
    )?;
    let spec = |repository: &str| ctx.spec(repository);
    let a = backend.open_store(&spec("a")).await?;
    let _b = backend.open_store(&spec("b")).await?;
    a.put(entry("k", "in a")).await?;
    check(
        table_exists(&client, &table).await,
        "open_store created the table",
    )?;
    // The seed mapping: pk = repository, sk = the encoded key.
    let got = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("a".into()))
        .key("sk", AttributeValue::S(key("k").encode()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    check(got.item.is_some(), "the entry is at pk = <repository>")?;
    check(
        backend.list_stores(&cache).await? == vec![Name::new("a")?, Name::new("b")?],
        "list_stores of the cache",
    )?;
    check(
        backend.list_stores(&other).await?.is_empty(),
        "another cache has no stores",
    )?;
    check(
        !table_exists(&client, &backend.table_for(&other)?).await,
        "list_stores creates no table",
    )?;
    backend.drop_store(&other, &Name::new("a")?).await?;
    backend.drop_store(&cache, &Name::new("a")?).await?;
    check(
        table_exists(&client, &table).await,
        "the table stays while a store is left",
    )?;
    check(
        backend.list_stores(&cache).await? == vec![Name::new("b")?],
        "a is dropped",
    )?;
    backend.drop_store(&cache, &Name::new("b")?).await?;
    check(
        !table_exists(&client, &table).await,
        "dropping the last store deletes the table",
    )?;
    check(
        backend.list_stores(&cache).await?.is_empty(),
        "no stores without a table",
    )?;
    backend.drop_store(&cache, &Name::new("b")?).await?;
    // Opening again makes a new, empty table.
    let a = backend.open_store(&spec("a")).await?;
    check(a.get(&key("k")).await?.is_none(), "the new table is empty")?;
    backend.drop_store(&cache, &Name::new("a")?).await?;
    check(!table_exists(&client, &table).await, "dropped again")?;
    Ok(())
}

/// Opens store `r` of a cache whose table is missing: the error, which must
/// be a configuration error.
async fn open_without_table(
    backend: &DynamoDbBackend,
    ctx: &Ctx,
) -> Result<respcache_core::Error, Failed> {
    let err = backend
        .open_store(&ctx.spec("r"))
        .await
        .err()
        .ok_or("opened a store without its table")?;
    check(
        err.kind() == ErrorKind::Configuration,
        format!("kind {:?}", err.kind()),
    )?;
    Ok(err)
}

async fn per_cache_missing_table_without_create_is_a_configuration_error(ctx: Ctx) -> TestResult {
    let config = per_cache_config()?.with_create_table(false);
    let backend = DynamoDbBackend::connect_with(config).await?;
    let table = backend.table_for(&ctx.cache)?;
    let err = open_without_table(&backend, &ctx).await?;
    let text = err.to_string();
    check(
        text.contains(&table) && text.contains("create_table"),
        format!("unclear message: {text}"),
    )?;
    check(
        !table_exists(ctx.client(), &table).await,
        "no table was created",
    )?;
    Ok(())
}

/// A cache whose table does not exist: DynamoDB answers
/// `ResourceNotFoundException`, which the backend recognises by its code
/// (not by the message) as "no stores".
async fn per_cache_a_cache_without_its_table_has_no_stores(ctx: Ctx) -> TestResult {
    let backend =
        DynamoDbBackend::connect_with(per_cache_config()?.with_create_table(false)).await?;
    let table = backend.table_for(&ctx.cache)?;
    check(!table_exists(ctx.client(), &table).await, "no table yet")?;
    check(
        backend.list_stores(&ctx.cache).await?.is_empty(),
        "no table, no stores",
    )?;
    backend.drop_store(&ctx.cache, &Name::new("r")?).await?;
    // Opening still refuses, naming the table, the repository and the call.
    let err = open_without_table(&backend, &ctx).await?;
    check(
        err.to_string()
            .starts_with("dynamodb: open_store in repository \"r\": configuration error: "),
        format!("message: {err}"),
    )?;
    check(!table_exists(ctx.client(), &table).await, "still no table")?;
    Ok(())
}

async fn per_cache_open_racing_the_last_drop_never_hangs(ctx: Ctx) -> TestResult {
    let config = per_cache_config()?;
    let dropper = DynamoDbBackend::connect_with(config.clone()).await?;
    let opener = DynamoDbBackend::connect_with(config).await?;
    let r1 = Name::new("r1")?;
    let r2_spec = ctx.spec("r2");
    for round in 0..5 {
        dropper
            .open_store(&ctx.spec("r1"))
            .await?
            .put(entry("k", "v"))
            .await?;
        // The opener knows the table, then it is deleted under it.
        opener.open_store(&ctx.spec("r2")).await?;
        opener.drop_store(&ctx.cache, &Name::new("r2")?).await?;
        let (dropped, opened) = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(
                dropper.drop_store(&ctx.cache, &r1),
                opener.open_store(&r2_spec)
            )
        })
        .await
        .map_err(|_| format!("round {round}: open_store racing drop_store hung"))?;
        dropped?;
        if let Err(e) = opened {
            check(
                e.kind() == ErrorKind::Configuration,
                format!("round {round}: unclear error {e}"),
            )?;
        }
        // Afterwards the cache opens and works.
        let s = opener.open_store(&ctx.spec("r2")).await?;
        s.put(entry("k", "after")).await?;
        check(
            s.get(&key("k")).await?.map(|e| e.payload) == Some(Bytes::from("after")),
            format!("round {round}: usable after the race"),
        )?;
        opener.drop_store(&ctx.cache, &Name::new("r2")?).await?;
        dropper.drop_store(&ctx.cache, &r1).await?;
    }
    check(
        !table_exists(ctx.client(), &opener.table_for(&ctx.cache)?).await,
        "no table left behind",
    )?;
    Ok(())
}

// ---------------------------------------------------------------- harness --

/// The deadlines a black hole or a frozen endpoint is met with in these
/// tests: one attempt and one call of 1 s.
const ONE_SECOND: &str = "connect_timeout=1s&timeout=1s&operation_timeout=1s";

/// Generous: a 1 s deadline must fail well within this on a loaded VM.
const BOUND: Duration = Duration::from_secs(10);

/// `connect` to an endpoint that accepts TCP and never answers, with `query`
/// added to the URL; returns the error and how long it took. The test's own
/// limit (60 s) only keeps a hang from hanging the suite.
async fn connect_to_a_black_hole(query: &str) -> Result<(respcache_core::Error, Duration), Failed> {
    let hole = respcache_conformance::net::BlackHole::start().await?;
    let url = format!(
        "dynamodb://respcache-bh?endpoint={}&region=us-east-1{query}",
        hole.http_url()
    );
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(60), DynamoDbBackend::connect(&url))
        .await
        .map_err(|_| "connect to a black hole hung for 60 s")?;
    let took = started.elapsed();
    let err = outcome.err().ok_or("connected to a black hole")?;
    Ok((err, took))
}

fn timeout_or_connection(err: &respcache_core::Error) -> TestResult {
    check(
        matches!(err.kind(), ErrorKind::Timeout | ErrorKind::Connection),
        format!("kind {:?}: {err}", err.kind()),
    )
}

async fn black_hole_connect_fails_within_the_configured_deadline(_ctx: Ctx) -> TestResult {
    let (err, took) = connect_to_a_black_hole(&format!("&{ONE_SECOND}")).await?;
    eprintln!("dynamodb: connect to a black hole, 1 s deadline: {took:?}: {err}");
    timeout_or_connection(&err)?;
    check(took < BOUND, format!("took {took:?}"))
}

async fn black_hole_connect_fails_within_the_default_deadline(_ctx: Ctx) -> TestResult {
    let (err, took) = connect_to_a_black_hole("").await?;
    eprintln!("dynamodb: connect to a black hole, default deadlines: {took:?}: {err}");
    timeout_or_connection(&err)?;
    let default = DynamoDbConfig::new("respcache-bh")?;
    let limit = default
        .operation_timeout
        .ok_or("no default per-call deadline")?;
    check(
        limit <= Duration::from_secs(10),
        format!("default per-call deadline {limit:?} is not seconds"),
    )?;
    check(
        took < limit * 3,
        format!("took {took:?} with a per-call deadline of {limit:?}"),
    )
}

/// A store opened through a proxy that then freezes: `get` and `put` fail
/// within the deadline instead of hanging.
async fn frozen_endpoint_fails_calls_within_the_deadline(ctx: Ctx) -> TestResult {
    let target = DYNAMODB.addr().ok_or("the test URL names no endpoint")?;
    let proxy = respcache_conformance::net::FreezableProxy::start(target).await?;
    let through = format!(
        "dynamodb://{}?endpoint=http://{}&region=us-east-1&{ONE_SECOND}",
        ctx.backend.table(),
        proxy.addr()
    );
    let backend = DynamoDbBackend::connect(&through).await?;
    let s = backend.open_store(&ctx.spec("frozen")).await?;
    s.put(entry("k", "before the freeze")).await?;
    check(s.get(&key("k")).await?.is_some(), "read through the proxy")?;
    proxy.freeze();
    for (what, call) in [
        (
            "get",
            Box::pin(async { s.get(&key("k")).await.map(|_| ()) })
                as Pin<Box<dyn Future<Output = _> + Send>>,
        ),
        (
            "put",
            Box::pin(async { s.put(entry("k", "after")).await.map(|_| ()) }),
        ),
    ] {
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(60), call)
            .await
            .map_err(|_| format!("{what} on a frozen endpoint hung for 60 s"))?;
        let took = started.elapsed();
        let err = outcome
            .err()
            .ok_or(format!("{what} succeeded on a frozen endpoint"))?;
        eprintln!("dynamodb: {what} on a frozen endpoint, 1 s deadline: {took:?}: {err}");
        timeout_or_connection(&err)?;
        check(took < BOUND, format!("{what} took {took:?}"))?;
    }
    Ok(())
}

fn tests() -> Vec<(&'static str, TestFn)> {
    macro_rules! list {
        ($($name:ident),* $(,)?) => {
            vec![$((stringify!($name), (|ctx| Box::pin($name(ctx))) as TestFn)),*]
        };
    }
    list![
        large_entries_round_trip_and_overwrite,
        clear_and_drop_store_remove_parts,
        tags_are_a_string_set_and_purge_split_entries,
        purge_of_a_thousand_tagged_entries,
        orphan_parts_are_never_read,
        readers_never_see_a_mix,
        long_keys_use_a_digest_sort_key,
        purge_at_is_expiry_plus_retention_in_seconds,
        items_past_purge_are_hidden,
        batches_dedupe_and_chunk,
        get_many_over_16_mb_retries_unprocessed_keys,
        missing_table_without_create_is_a_configuration_error,
        creates_a_missing_table_with_ttl,
        foreign_tables_are_refused_and_deleted_tables_reported,
        unreachable_endpoint_is_a_connection_error,
        from_client_and_sdk_config,
        closed_backend_refuses_calls,
        per_cache_tables_hold_one_cache_each,
        per_cache_missing_table_without_create_is_a_configuration_error,
        per_cache_open_racing_the_last_drop_never_hangs,
        per_cache_a_cache_without_its_table_has_no_stores,
        black_hole_connect_fails_within_the_configured_deadline,
        black_hole_connect_fails_within_the_default_deadline,
        frozen_endpoint_fails_calls_within_the_deadline,
    ]
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
    let gate = Gate::probe(
        "dynamodb: the server",
        runtime.block_on(DynamoDbBackend::connect(&url())),
    );
    let trials = tests()
        .into_iter()
        .map(|(name, test)| {
            let runtime = Arc::clone(&runtime);
            gate.trial(format!("dynamodb::{name}"), move || {
                runtime.block_on(async move {
                    let backend = DynamoDbBackend::connect(&url()).await?;
                    let cache = Name::new(unique("dt"))?;
                    let ctx = Ctx {
                        backend: backend.clone(),
                        cache: cache.clone(),
                    };
                    let outcome = test(ctx).await;
                    // Leave nothing behind (a fresh handle: tests may close theirs).
                    if let Ok(cleaner) = DynamoDbBackend::connect(&url()).await {
                        for store in cleaner.list_stores(&cache).await.unwrap_or_default() {
                            let _ = cleaner.drop_store(&cache, &store).await;
                        }
                    }
                    outcome
                })
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}
