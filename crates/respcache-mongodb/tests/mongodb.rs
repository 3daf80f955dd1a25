//! MongoDB-specific behaviour, against the server at `RESPCACHE_MONGODB_URL`
//! (default `mongodb://127.0.0.1:27017/?directConnection=true`): the
//! document layout, the TTL index and its reconciliation, purge dates,
//! the 16 MB limit, round trips of bulk calls, timeouts, redaction, and a
//! server restart (on an emulator this test starts itself).
//!
//! Like the conformance suite, every test is reported *ignored* when the
//! server cannot be reached, and *failed* under `CI=true`.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use libtest_mimic::{Arguments, Failed};
use respcache_conformance::net::FreezableProxy;
use respcache_conformance::services::{Gate, MONGODB};
use respcache_core::{
    Backend, DynStore, Entry, ErrorKind, FieldKind, Key, KeySchema, Name, Select, StoreSpec,
    Timestamp,
};
use respcache_mongodb::mongodb::Collection;
use respcache_mongodb::mongodb::bson::{Bson, Document, doc};
use respcache_mongodb::mongodb::event::EventHandler;
use respcache_mongodb::mongodb::event::command::CommandEvent;
use respcache_mongodb::mongodb::options::{ClientOptions, IndexOptions};
use respcache_mongodb::mongodb::{Client, IndexModel};
use respcache_mongodb::{
    DateWrites, MAX_DOCUMENT_BYTES, MAX_PAYLOAD_BYTES, MongoDbBackend, MongoDbConfig,
};

type TestResult = Result<(), Failed>;
type TestFn = fn(Ctx) -> Pin<Box<dyn Future<Output = TestResult> + Send>>;

/// What a test gets: a backend on the shared server and a cache of its own.
struct Ctx {
    backend: MongoDbBackend,
    cache: Name,
    config: MongoDbConfig,
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(Failed::from(format!($($msg)+)));
        }
    };
}

fn fail(e: impl std::fmt::Display) -> Failed {
    Failed::from(e.to_string())
}

// ------------------------------------------------------------------ helpers

fn schema() -> KeySchema {
    KeySchema::new([("id", FieldKind::Text), ("version", FieldKind::Integer)]).unwrap_or_default()
}

fn spec(ctx: &Ctx, repo: &str, retention: Option<Duration>) -> Result<StoreSpec, Failed> {
    Ok(
        StoreSpec::new(ctx.cache.clone(), Name::new(repo).map_err(fail)?, schema())
            .with_retention(retention),
    )
}

fn key(id: &str) -> Key {
    Key::new("GET", [id.into(), 7i64.into()])
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

async fn open(ctx: &Ctx, repo: &str, retention: Option<Duration>) -> Result<Arc<DynStore>, Failed> {
    ctx.backend
        .open_store(&spec(ctx, repo, retention)?)
        .await
        .map_err(fail)
}

/// The collection of `repo`, for raw access.
async fn collection(ctx: &Ctx, repo: &str) -> Result<Collection<Document>, Failed> {
    ctx.backend
        .collection(&ctx.cache, &Name::new(repo).map_err(fail)?)
        .await
        .map_err(fail)
}

/// The raw document under `key`, as a person would see it in the shell.
async fn raw(ctx: &Ctx, repo: &str, key: &Key) -> Result<Option<Document>, Failed> {
    collection(ctx, repo)
        .await?
        .find_one(doc! { "_id": key.encode() })
        .await
        .map_err(fail)
}

fn purge_millis(doc: &Document) -> Option<i64> {
    match doc.get("purge_at") {
        Some(Bson::DateTime(d)) => Some(d.timestamp_millis()),
        _ => None,
    }
}

fn int(doc: &Document, field: &str) -> Option<i64> {
    match doc.get(field) {
        Some(Bson::Int64(n)) => Some(*n),
        Some(Bson::Int32(n)) => Some(i64::from(*n)),
        _ => None,
    }
}

async fn indexes(ctx: &Ctx, repo: &str) -> Result<Vec<IndexModel>, Failed> {
    collection(ctx, repo)
        .await?
        .list_indexes()
        .await
        .map_err(fail)?
        .try_collect()
        .await
        .map_err(fail)
}

fn ttl_of(indexes: &[IndexModel]) -> Option<Option<Duration>> {
    indexes
        .iter()
        .find(|i| i.keys.keys().map(String::as_str).collect::<Vec<_>>() == ["purge_at"])
        .map(|i| i.options.as_ref().and_then(|o| o.expire_after))
}

// ------------------------------------------------------------------- tests

async fn documents_are_readable_in_a_shell(ctx: Ctx) -> TestResult {
    let store = open(&ctx, "tracks", Some(hours(1))).await?;
    let expires = Timestamp::from_millis(4_102_444_800_000); // 2100-01-01
    let entry = Entry::new(
        key("abc"),
        Timestamp::from_millis(1_700_000_000_123),
        "payload",
    )
    .with_name("Abbey Road")
    .with_meta(Bytes::from_static(b"\x00meta"))
    .with_expires_at(Some(expires));
    store
        .put(entry.clone().with_name("first version"))
        .await
        .map_err(fail)?;
    store.put(entry.clone()).await.map_err(fail)?; // an overwrite keeps every type
    let doc = raw(&ctx, "tracks", &entry.key)
        .await?
        .ok_or("no document")?;
    ensure!(
        doc.get_str("_id").ok() == Some(entry.key.encode().as_str()),
        "_id is the encoded key: {doc}"
    );
    ensure!(doc.get_str("method").ok() == Some("GET"), "method: {doc}");
    let parts = doc.get_document("key").map_err(fail)?;
    ensure!(
        parts.get_str("id").ok() == Some("abc") && int(parts, "version") == Some(7),
        "typed key parts: {doc}"
    );
    ensure!(
        doc.get_str("name").ok() == Some("Abbey Road"),
        "name: {doc}"
    );
    ensure!(
        int(&doc, "cached_at") == Some(1_700_000_000_123),
        "cached_at in ms: {doc}"
    );
    ensure!(
        int(&doc, "expires_at") == Some(expires.as_millis()),
        "expires_at in ms: {doc}"
    );
    ensure!(
        purge_millis(&doc) == Some(expires.as_millis() + 3_600_000),
        "purge_at is a date at expires_at + retention: {doc}"
    );
    ensure!(
        doc.get_binary_generic("payload").ok().map(Vec::as_slice) == Some(&b"payload"[..]),
        "payload is binary: {doc}"
    );
    ensure!(
        doc.get_binary_generic("meta").ok().map(Vec::as_slice) == Some(&b"\x00meta"[..]),
        "meta is binary: {doc}"
    );
    ensure!(
        store.get(&entry.key).await.map_err(fail)? == Some(entry),
        "the entry reads back whole"
    );
    Ok(())
}

async fn tags_are_an_indexed_array_and_old_documents_are_untagged(ctx: Ctx) -> TestResult {
    let store = open(&ctx, "tagged", None).await?;
    let tags = respcache_core::Tags::new(["b", "a"]).map_err(fail)?;
    let entry = Entry::new(key("t"), Timestamp::now(), "x").with_tags(tags);
    store.put(entry.clone()).await.map_err(fail)?;
    let doc = raw(&ctx, "tagged", &entry.key)
        .await?
        .ok_or("no document")?;
    let stored: Vec<&str> = doc
        .get_array("tags")
        .map_err(fail)?
        .iter()
        .filter_map(Bson::as_str)
        .collect();
    ensure!(
        stored == ["a", "b"],
        "tags is a sorted array of strings: {doc}"
    );
    let multikey = indexes(&ctx, "tagged")
        .await?
        .iter()
        .any(|i| i.keys.keys().map(String::as_str).collect::<Vec<_>>() == ["tags"]);
    ensure!(multikey, "the store has an index on tags");
    // A document as versions before tags wrote it: no tags field.
    let old = key("old");
    collection(&ctx, "tagged")
        .await?
        .insert_one(doc! {
            "_id": old.encode(), "method": "GET", "key": { "id": "old", "version": 7i64 },
            "name": Bson::Null, "cached_at": 5i64, "expires_at": Bson::Null,
            "payload": Bson::Binary(respcache_mongodb::mongodb::bson::Binary {
                subtype: respcache_mongodb::mongodb::bson::spec::BinarySubtype::Generic,
                bytes: b"old".to_vec(),
            }),
            "meta": Bson::Null,
        })
        .await
        .map_err(fail)?;
    let read = store
        .get(&old)
        .await
        .map_err(fail)?
        .ok_or("the old document is a miss")?;
    ensure!(read.tags.is_empty(), "an old document reads as untagged");
    ensure!(
        store.purge_tag("a").await.map_err(fail)? == 1,
        "purge by the index"
    );
    ensure!(
        store.get(&old).await.map_err(fail)?.is_some(),
        "the old document stays"
    );
    Ok(())
}

async fn no_purge_date_without_retention_or_expiry(ctx: Ctx) -> TestResult {
    let kept = open(&ctx, "kept", None).await?;
    let e = Entry::new(key("a"), Timestamp::now(), "x").with_expires_at(Some(Timestamp::now()));
    kept.put(e.clone()).await.map_err(fail)?;
    let doc = raw(&ctx, "kept", &e.key).await?.ok_or("no document")?;
    ensure!(
        !doc.contains_key("purge_at"),
        "no retention, no purge_at: {doc}"
    );
    let purged = open(&ctx, "purged", Some(hours(1))).await?;
    let never = Entry::new(key("b"), Timestamp::now(), "x");
    purged.put(never.clone()).await.map_err(fail)?;
    let doc = raw(&ctx, "purged", &never.key)
        .await?
        .ok_or("no document")?;
    ensure!(
        !doc.contains_key("purge_at"),
        "never stale, never purged: {doc}"
    );
    ensure!(
        doc.get("expires_at") == Some(&Bson::Null),
        "expires_at null = never: {doc}"
    );
    Ok(())
}

async fn store_has_an_expiry_index_and_a_ttl_index(ctx: Ctx) -> TestResult {
    open(&ctx, "indexed", Some(hours(2))).await?;
    let list = indexes(&ctx, "indexed").await?;
    ensure!(
        ttl_of(&list) == Some(Some(Duration::ZERO)),
        "TTL index on purge_at with expireAfterSeconds 0: {list:?}"
    );
    ensure!(
        list.iter()
            .any(|i| i.keys.keys().map(String::as_str).collect::<Vec<_>>() == ["expires_at"]),
        "an index on expires_at: {list:?}"
    );
    Ok(())
}

async fn reopening_with_another_retention_uses_it_for_new_writes(ctx: Ctx) -> TestResult {
    let expires = Timestamp::from_millis(4_102_444_800_000);
    let one = open(&ctx, "r", Some(hours(1))).await?;
    one.put(Entry::new(key("old"), Timestamp::now(), "1").with_expires_at(Some(expires)))
        .await
        .map_err(fail)?;
    // Another handle with another retention: no index error, new dates.
    let two = open(&ctx, "r", Some(hours(5))).await?;
    two.put(Entry::new(key("new"), Timestamp::now(), "2").with_expires_at(Some(expires)))
        .await
        .map_err(fail)?;
    let none = open(&ctx, "r", None).await?;
    none.put(Entry::new(key("none"), Timestamp::now(), "3").with_expires_at(Some(expires)))
        .await
        .map_err(fail)?;
    let old = raw(&ctx, "r", &key("old")).await?.ok_or("no old")?;
    let new = raw(&ctx, "r", &key("new")).await?.ok_or("no new")?;
    let unpurged = raw(&ctx, "r", &key("none")).await?.ok_or("no none")?;
    ensure!(
        purge_millis(&old) == Some(expires.as_millis() + 3_600_000),
        "first retention: {old}"
    );
    ensure!(
        purge_millis(&new) == Some(expires.as_millis() + 5 * 3_600_000),
        "new retention: {new}"
    );
    ensure!(
        !unpurged.contains_key("purge_at"),
        "no retention: {unpurged}"
    );
    ensure!(
        ttl_of(&indexes(&ctx, "r").await?) == Some(Some(Duration::ZERO)),
        "the TTL index is unchanged"
    );
    Ok(())
}

async fn a_conflicting_ttl_index_is_reconciled(ctx: Ctx) -> TestResult {
    let coll = collection(&ctx, "legacy").await?;
    coll.create_index(
        IndexModel::builder()
            .keys(doc! { "purge_at": 1 })
            .options(
                IndexOptions::builder()
                    .name("my_ttl".to_owned())
                    .expire_after(hours(1))
                    .build(),
            )
            .build(),
    )
    .await
    .map_err(fail)?;
    ensure!(
        ttl_of(&indexes(&ctx, "legacy").await?) == Some(Some(hours(1))),
        "set-up: a 1 h TTL index"
    );
    let store = open(&ctx, "legacy", Some(hours(3))).await?;
    ensure!(
        ttl_of(&indexes(&ctx, "legacy").await?) == Some(Some(Duration::ZERO)),
        "reconciled to expireAfterSeconds 0"
    );
    store
        .put(Entry::new(key("k"), Timestamp::now(), "v"))
        .await
        .map_err(fail)?;
    // Opening again finds it right and changes nothing.
    open(&ctx, "legacy", Some(hours(4))).await?;
    let list = indexes(&ctx, "legacy").await?;
    ensure!(
        ttl_of(&list) == Some(Some(Duration::ZERO)),
        "still 0 after reopening: {list:?}"
    );
    ensure!(
        list.iter()
            .filter(|i| i.keys.contains_key("purge_at"))
            .count()
            == 1,
        "one index on purge_at: {list:?}"
    );
    Ok(())
}

async fn set_expiry_writes_the_purge_date_as_a_date(ctx: Ctx) -> TestResult {
    let store = open(&ctx, "revive", Some(hours(1))).await?;
    let e = Entry::new(key("k"), Timestamp::now(), "payload")
        .with_name("n")
        .with_expires_at(Some(Timestamp::from_millis(4_000_000_000_000)));
    store.put(e.clone()).await.map_err(fail)?;
    let later = Timestamp::from_millis(4_100_000_000_000);
    ensure!(
        store.set_expiry(&e.key, Some(later)).await.map_err(fail)?,
        "set_expiry finds the entry"
    );
    let doc = raw(&ctx, "revive", &e.key).await?.ok_or("gone")?;
    ensure!(
        int(&doc, "expires_at") == Some(later.as_millis()),
        "expires_at: {doc}"
    );
    ensure!(
        purge_millis(&doc) == Some(later.as_millis() + 3_600_000),
        "purge_at stays a date, moved: {doc}"
    );
    let got = store.get(&e.key).await.map_err(fail)?.ok_or("entry lost")?;
    ensure!(
        got == e.clone().with_expires_at(Some(later)),
        "only the expiry changed: {got:?}"
    );
    ensure!(
        store.set_expiry(&e.key, None).await.map_err(fail)?,
        "to never"
    );
    let doc = raw(&ctx, "revive", &e.key).await?.ok_or("gone")?;
    ensure!(
        doc.get("expires_at") == Some(&Bson::Null) && !doc.contains_key("purge_at"),
        "never: {doc}"
    );
    ensure!(
        !store
            .set_expiry(&key("missing"), Some(later))
            .await
            .map_err(fail)?,
        "missing key"
    );
    Ok(())
}

async fn the_ttl_index_purges_after_retention(ctx: Ctx) -> TestResult {
    let store = open(&ctx, "ttl", Some(Duration::from_millis(1))).await?;
    let past = Timestamp::now().saturating_sub(Duration::from_secs(60));
    let future = Timestamp::now().saturating_add(hours(1));
    store
        .put_many(vec![
            Entry::new(key("purged"), past, "x").with_expires_at(Some(past)),
            Entry::new(key("stale-but-kept"), past, "x").with_expires_at(Some(
                Timestamp::now().saturating_add(Duration::from_secs(600)),
            )),
            Entry::new(key("fresh"), past, "x").with_expires_at(Some(future)),
        ])
        .await
        .map_err(fail)?;
    // The emulator purges at once; mongod's TTL monitor wakes every 60 s.
    let started = Instant::now();
    while store.get(&key("purged")).await.map_err(fail)?.is_some() {
        ensure!(
            started.elapsed() < Duration::from_secs(150),
            "not purged after 150 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ensure!(
        store.get(&key("fresh")).await.map_err(fail)?.is_some(),
        "a fresh entry is not purged"
    );
    ensure!(
        store
            .get(&key("stale-but-kept"))
            .await
            .map_err(fail)?
            .is_some(),
        "purge waits for the retention"
    );
    Ok(())
}

async fn a_payload_over_the_limit_is_refused_whole(ctx: Ctx) -> TestResult {
    let store = open(&ctx, "big", None).await?;
    let old = Entry::new(key("k"), Timestamp::now(), "old");
    store.put(old.clone()).await.map_err(fail)?;
    let huge = Entry::new(
        key("k"),
        Timestamp::now(),
        vec![1u8; MAX_DOCUMENT_BYTES + 1],
    );
    let err = store
        .put(huge.clone())
        .await
        .err()
        .ok_or("a 16 MB payload was accepted")?;
    ensure!(err.kind() == ErrorKind::PayloadTooLarge, "kind: {err}");
    let text = err.to_string();
    ensure!(
        text.contains(&(MAX_DOCUMENT_BYTES + 1).to_string())
            && text.contains(&MAX_DOCUMENT_BYTES.to_string()),
        "names size and limit: {text}"
    );
    ensure!(
        store.get(&old.key).await.map_err(fail)? == Some(old.clone()),
        "the old entry is untouched"
    );
    let batch = vec![Entry::new(key("first"), Timestamp::now(), "x"), huge];
    let err = store
        .put_many(batch)
        .await
        .err()
        .ok_or("put_many accepted 16 MB")?;
    ensure!(
        err.kind() == ErrorKind::PayloadTooLarge,
        "put_many kind: {err}"
    );
    ensure!(
        store.get(&key("first")).await.map_err(fail)?.is_none(),
        "nothing of the batch was written"
    );
    ensure!(
        ctx.backend.limits().max_payload_bytes == Some(MAX_PAYLOAD_BYTES),
        "limits report the payload limit"
    );
    Ok(())
}

async fn a_payload_at_the_limit_round_trips(ctx: Ctx) -> TestResult {
    let store = open(&ctx, "max", Some(hours(1))).await?;
    let payload: Vec<u8> = (0..MAX_PAYLOAD_BYTES).map(|i| (i % 253) as u8).collect();
    let e = Entry::new(key("max"), Timestamp::now(), payload)
        .with_meta(vec![9u8; 8 * 1024])
        .with_expires_at(Some(Timestamp::now().saturating_add(hours(1))));
    store.put(e.clone()).await.map_err(fail)?;
    store.put(e.clone()).await.map_err(fail)?; // an overwrite, too
    ensure!(
        store.get(&e.key).await.map_err(fail)? == Some(e),
        "the largest accepted payload came back different"
    );
    Ok(())
}

/// A backend whose client counts the commands it starts.
async fn counting_backend(
    config: &MongoDbConfig,
) -> Result<(MongoDbBackend, Arc<Mutex<Vec<String>>>), Failed> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut options = ClientOptions::parse(&config.url).await.map_err(fail)?;
    let sink = Arc::clone(&seen);
    options.command_event_handler = Some(EventHandler::callback(move |ev: CommandEvent| {
        if let CommandEvent::Started(s) = ev {
            sink.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(s.command_name);
        }
    }));
    let client = Client::with_options(options).map_err(fail)?;
    Ok((MongoDbBackend::from_client_with(client, config), seen))
}

async fn bulk_calls_are_one_round_trip(ctx: Ctx) -> TestResult {
    let (backend, seen) = counting_backend(&ctx.config).await?;
    let store = backend
        .open_store(&spec(&ctx, "bulk", None)?)
        .await
        .map_err(fail)?;
    let take = || {
        std::mem::take(
            &mut *seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    };
    let keys: Vec<Key> = (0..200).map(|i| key(&format!("k{i}"))).collect();
    let entries: Vec<Entry> = keys
        .iter()
        .map(|k| Entry::new(k.clone(), Timestamp::now(), "v"))
        .collect();
    take();
    store.put_many(entries.clone()).await.map_err(fail)?;
    let put = take();
    ensure!(put == ["bulkWrite"], "put_many of 200: {put:?}");
    store.put_many(entries).await.map_err(fail)?; // overwrites
    let put = take();
    ensure!(put == ["bulkWrite"], "put_many overwriting 200: {put:?}");
    let got = store.get_many(&keys).await.map_err(fail)?;
    let get = take();
    ensure!(got.iter().all(Option::is_some), "every key read");
    ensure!(
        get.first().map(String::as_str) == Some("find")
            && get.iter().all(|c| c == "find" || c == "getMore"),
        "get_many: {get:?}"
    );
    store
        .put(Entry::new(key("one"), Timestamp::now(), "v"))
        .await
        .map_err(fail)?;
    let put = take();
    ensure!(put == ["update"], "put: {put:?}");
    store.get(&key("one")).await.map_err(fail)?;
    let get = take();
    ensure!(get == ["find"], "get: {get:?}");
    ensure!(
        store.delete_many(&keys).await.map_err(fail)? == 200,
        "deleted"
    );
    let del = take();
    ensure!(del == ["delete"], "delete_many: {del:?}");
    ensure!(
        store
            .count(Select::Fresh, Timestamp::now())
            .await
            .map_err(fail)?
            == 1,
        "count"
    );
    ensure!(
        store
            .clear(Select::Expired, Timestamp::now())
            .await
            .map_err(fail)?
            == 0,
        "clear"
    );
    let rest = take();
    ensure!(
        rest == ["aggregate", "delete"],
        "count and clear run on the server: {rest:?}"
    );
    Ok(())
}

async fn wrong_credentials_never_show_the_password(ctx: Ctx) -> TestResult {
    let Some(rest) = ctx.config.url.strip_prefix("mongodb://") else {
        return Err(Failed::from("test needs a mongodb:// URL"));
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let url = format!("mongodb://respcache-nobody:hunter2-secret@{rest}");
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}serverSelectionTimeoutMS=2000");
    let config = MongoDbConfig::from_url(&url).map_err(fail)?;
    ensure!(
        !format!("{config:?}").contains("hunter2"),
        "config Debug shows the password"
    );
    let err = MongoDbBackend::connect_with(config)
        .await
        .err()
        .ok_or("unknown user was accepted")?;
    ensure!(
        !err.to_string().contains("hunter2") && !format!("{err:?}").contains("hunter2"),
        "error shows the password: {err:?}"
    );
    Ok(())
}

async fn an_unreachable_server_is_a_timeout(_ctx: Ctx) -> TestResult {
    let port = free_port()?;
    let url = format!(
        "mongodb://u:pw-secret@127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=300"
    );
    let err = MongoDbBackend::connect(&url)
        .await
        .err()
        .ok_or("connected to nothing")?;
    ensure!(
        err.kind() == ErrorKind::Timeout,
        "server selection timeout: {err}"
    );
    ensure!(
        !format!("{err} {err:?}").contains("pw-secret"),
        "password in {err:?}"
    );
    Ok(())
}

async fn a_silent_server_is_a_timeout(_ctx: Ctx) -> TestResult {
    // Accepts connections and never answers.
    let hole = respcache_conformance::net::BlackHole::start()
        .await
        .map_err(fail)?;
    let port = hole.addr().port();
    let config = MongoDbConfig::from_url(&format!(
        "mongodb://127.0.0.1:{port}/?directConnection=true"
    ))
    .map_err(fail)?
    .server_selection_timeout(Duration::from_millis(500))
    .connect_timeout(Duration::from_millis(500));
    let err = MongoDbBackend::connect_with(config)
        .await
        .err()
        .ok_or("a silent server answered")?;
    drop(hole);
    ensure!(err.kind() == ErrorKind::Timeout, "{err}");
    Ok(())
}

async fn a_hung_call_hits_the_operation_timeout(ctx: Ctx) -> TestResult {
    let proxy = freezable_proxy().await?;
    let url = format!(
        "mongodb://127.0.0.1:{}/?directConnection=true&socketTimeoutMS=700",
        proxy.addr().port()
    );
    let backend = MongoDbBackend::connect(&url).await.map_err(fail)?;
    let store = backend
        .open_store(&spec(&ctx, "hang", None)?)
        .await
        .map_err(fail)?;
    store
        .put(Entry::new(key("k"), Timestamp::now(), "v"))
        .await
        .map_err(fail)?;
    proxy.freeze();
    let err = store
        .get(&key("k"))
        .await
        .err()
        .ok_or("a frozen server answered")?;
    ensure!(err.kind() == ErrorKind::Timeout, "{err}");
    proxy.thaw();
    // The held request reaches the server now; wait for it before cleaning up.
    let started = Instant::now();
    while store.get(&key("k")).await.is_err() {
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not come back"
        );
    }
    backend.close().await.map_err(fail)?;
    Ok(())
}

/// Generous: a 1 s deadline must fail well within this on a loaded VM.
const BOUND: Duration = Duration::from_secs(10);

/// `connect` to a server that accepts TCP and never answers, with
/// `options` added to the URL: the error and how long it took.
async fn connect_to_a_black_hole(
    options: &str,
) -> Result<(respcache_core::Error, Duration), Failed> {
    let hole = respcache_conformance::net::BlackHole::start()
        .await
        .map_err(fail)?;
    let url = format!("mongodb://{}/?directConnection=true{options}", hole.addr());
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(60), MongoDbBackend::connect(&url))
        .await
        .map_err(|_| "connect to a black hole hung for 60 s")?;
    let took = started.elapsed();
    Ok((outcome.err().ok_or("a black hole answered")?, took))
}

async fn a_black_hole_fails_connect_within_the_configured_deadline(_ctx: Ctx) -> TestResult {
    let (err, took) = connect_to_a_black_hole(
        "&serverSelectionTimeoutMS=1000&connectTimeoutMS=1000&socketTimeoutMS=1000",
    )
    .await?;
    eprintln!("mongodb: connect to a black hole, 1 s deadlines: {took:?}: {err}");
    ensure!(
        matches!(err.kind(), ErrorKind::Timeout | ErrorKind::Connection),
        "{err}"
    );
    ensure!(took < BOUND, "took {took:?}");
    Ok(())
}

async fn a_black_hole_fails_connect_within_the_default_deadline(_ctx: Ctx) -> TestResult {
    let (err, took) = connect_to_a_black_hole("").await?;
    eprintln!("mongodb: connect to a black hole, default deadlines: {took:?}: {err}");
    ensure!(
        matches!(err.kind(), ErrorKind::Timeout | ErrorKind::Connection),
        "{err}"
    );
    let limit = respcache_mongodb::DEFAULT_SERVER_SELECTION_TIMEOUT
        .max(respcache_mongodb::DEFAULT_OPERATION_TIMEOUT);
    ensure!(took < limit * 3, "took {took:?}");
    Ok(())
}

/// With the default deadlines, a call on a server that froze after the
/// store was opened fails in seconds, not in the driver's 30 s or more.
async fn a_frozen_server_fails_a_call_within_the_default_deadline(ctx: Ctx) -> TestResult {
    let default = respcache_mongodb::DEFAULT_OPERATION_TIMEOUT;
    ensure!(
        default <= Duration::from_secs(10),
        "the default per-call deadline is {default:?}, not seconds"
    );
    let proxy = freezable_proxy().await?;
    let url = format!(
        "mongodb://127.0.0.1:{}/?directConnection=true",
        proxy.addr().port()
    );
    let backend = MongoDbBackend::connect(&url).await.map_err(fail)?;
    let store = backend
        .open_store(&spec(&ctx, "frozen", None)?)
        .await
        .map_err(fail)?;
    store
        .put(Entry::new(key("k"), Timestamp::now(), "v"))
        .await
        .map_err(fail)?;
    proxy.freeze();
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(60), store.get(&key("k")))
        .await
        .map_err(|_| "a get on a frozen server hung for 60 s")?;
    let took = started.elapsed();
    let err = outcome.err().ok_or("a frozen server answered")?;
    eprintln!("mongodb: get on a frozen server, default deadlines: {took:?}: {err}");
    ensure!(err.kind() == ErrorKind::Timeout, "{err}");
    ensure!(took < default * 2, "took {took:?}");
    proxy.thaw();
    let started = Instant::now();
    while store.get(&key("k")).await.is_err() {
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not come back"
        );
    }
    backend.close().await.map_err(fail)?;
    Ok(())
}

async fn reserved_database_names_are_refused(ctx: Ctx) -> TestResult {
    for name in ["admin", "local", "config"] {
        let spec = StoreSpec::new(
            Name::new(name).map_err(fail)?,
            Name::new("r").map_err(fail)?,
            schema(),
        );
        let err = ctx
            .backend
            .open_store(&spec)
            .await
            .err()
            .ok_or("opened a store in a system database")?;
        ensure!(err.kind() == ErrorKind::InvalidName, "{name}: {err}");
    }
    Ok(())
}

async fn dropping_the_last_store_leaves_no_database(ctx: Ctx) -> TestResult {
    for repo in ["one", "two-2"] {
        open(&ctx, repo, Some(hours(1)))
            .await?
            .put(
                Entry::new(key("k"), Timestamp::now(), "v").with_expires_at(Some(Timestamp::now())),
            )
            .await
            .map_err(fail)?;
    }
    let dbs = ctx
        .backend
        .client()
        .list_database_names()
        .await
        .map_err(fail)?;
    ensure!(
        dbs.iter().any(|d| d == ctx.cache.as_str()),
        "the cache is a database: {dbs:?}"
    );
    ctx.backend
        .drop_store(&ctx.cache, &Name::new("one").map_err(fail)?)
        .await
        .map_err(fail)?;
    let dbs = ctx
        .backend
        .client()
        .list_database_names()
        .await
        .map_err(fail)?;
    ensure!(
        dbs.iter().any(|d| d == ctx.cache.as_str()),
        "a store is left: {dbs:?}"
    );
    ctx.backend
        .drop_store(&ctx.cache, &Name::new("two-2").map_err(fail)?)
        .await
        .map_err(fail)?;
    let dbs = ctx
        .backend
        .client()
        .list_database_names()
        .await
        .map_err(fail)?;
    ensure!(
        !dbs.iter().any(|d| d == ctx.cache.as_str()),
        "the empty cache database is gone: {dbs:?}"
    );
    Ok(())
}

async fn update_writes_work_for_new_and_undated_entries(ctx: Ctx) -> TestResult {
    // DateWrites::Update on any server: new entries (dates included) and
    // entries without a purge date are single `$set` upserts.
    let config = ctx.config.clone().date_writes(DateWrites::Update);
    let backend = MongoDbBackend::connect_with(config).await.map_err(fail)?;
    let store = backend
        .open_store(&spec(&ctx, "update", Some(hours(1)))?)
        .await
        .map_err(fail)?;
    let expires = Some(Timestamp::from_millis(4_102_444_800_000));
    let e = Entry::new(key("new"), Timestamp::now(), "v").with_expires_at(expires);
    store.put(e.clone()).await.map_err(fail)?;
    let doc = raw(&ctx, "update", &e.key).await?.ok_or("missing")?;
    ensure!(
        purge_millis(&doc) == Some(4_102_444_800_000 + 3_600_000),
        "purge date: {doc}"
    );
    let batch: Vec<Entry> = (0..10)
        .map(|i| Entry::new(key(&format!("b{i}")), Timestamp::now(), "v").with_expires_at(expires))
        .collect();
    store.put_many(batch.clone()).await.map_err(fail)?;
    let undated = Entry::new(key("new"), Timestamp::now(), "second").with_name("x");
    store.put(undated.clone()).await.map_err(fail)?;
    ensure!(
        store.get(&undated.key).await.map_err(fail)? == Some(undated.clone()),
        "overwrite read back"
    );
    let doc = raw(&ctx, "update", &undated.key).await?.ok_or("missing")?;
    ensure!(
        !doc.contains_key("purge_at"),
        "purge_at unset on overwrite: {doc}"
    );
    ensure!(
        store
            .get_many(&batch.iter().map(|e| e.key.clone()).collect::<Vec<_>>())
            .await
            .map_err(fail)?
            .into_iter()
            .flatten()
            .count()
            == 10,
        "batch"
    );
    backend.close().await.map_err(fail)?;
    Ok(())
}

async fn a_given_client_is_used_and_left_open(ctx: Ctx) -> TestResult {
    let client = Client::with_uri_str(&ctx.config.url).await.map_err(fail)?;
    let backend = MongoDbBackend::from_client(client.clone());
    ensure!(
        format!("{backend:?}").contains("client given by the program"),
        "{backend:?}"
    );
    let store = backend
        .open_store(&spec(&ctx, "given", None)?)
        .await
        .map_err(fail)?;
    store
        .put(Entry::new(key("k"), Timestamp::now(), "v"))
        .await
        .map_err(fail)?;
    backend.close().await.map_err(fail)?;
    ensure!(
        store.get(&key("k")).await.err().map(|e| e.kind()) == Some(ErrorKind::Closed),
        "closed"
    );
    let coll = MongoDbBackend::from_client(client.clone())
        .collection(&ctx.cache, &Name::new("given").map_err(fail)?)
        .await
        .map_err(fail)?;
    let names = client
        .database(ctx.cache.as_str())
        .list_collection_names()
        .await
        .map_err(fail)?;
    ensure!(
        names.iter().any(|n| n == coll.name()),
        "the program's client still works: {names:?}"
    );
    Ok(())
}

async fn expired_entries_are_rechecked_on_read(ctx: Ctx) -> TestResult {
    // A long retention: nothing is purged, freshness comes from expires_at.
    let store = open(&ctx, "recheck", Some(hours(24))).await?;
    let now = Timestamp::now();
    let stale = Entry::new(key("stale"), now, "s")
        .with_expires_at(Some(now.saturating_sub(Duration::from_secs(1))));
    store.put(stale.clone()).await.map_err(fail)?;
    ensure!(
        !store.contains(&stale.key, now).await.map_err(fail)?,
        "stale is not contained"
    );
    ensure!(
        store.get(&stale.key).await.map_err(fail)? == Some(stale.clone()),
        "get returns stale entries"
    );
    ensure!(
        store.count(Select::Expired, now).await.map_err(fail)? == 1,
        "counted as expired"
    );
    Ok(())
}

async fn server_restart_is_survived(ctx: Ctx) -> TestResult {
    let Some(bin) = nx27017() else {
        return Err(Failed::from("nx-27017 not found"));
    };
    let dir =
        std::env::temp_dir().join(format!("respcache-mongodb-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(fail)?;
    let port = free_port()?;
    let mut server = Emulator::start(&bin, port, &dir).await?;
    let config = MongoDbConfig::from_url(&format!(
        "mongodb://127.0.0.1:{port}/?directConnection=true"
    ))
    .map_err(fail)?
    .server_selection_timeout(Duration::from_secs(1));
    let backend = MongoDbBackend::connect_with(config).await.map_err(fail)?;
    let store = backend
        .open_store(&spec(&ctx, "restart", None)?)
        .await
        .map_err(fail)?;
    let e = Entry::new(key("k"), Timestamp::now(), "survives");
    store.put(e.clone()).await.map_err(fail)?;

    server.stop();
    let err = store
        .get(&e.key)
        .await
        .err()
        .ok_or("a stopped server answered")?;
    ensure!(
        err.is_temporary(),
        "a temporary error while the server is down: {err}"
    );

    let _restarted = Emulator::start(&bin, port, &dir).await?;
    let started = Instant::now();
    let got = loop {
        match store.get(&e.key).await {
            Ok(got) => break got,
            Err(err) if err.is_temporary() && started.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => return Err(fail(format!("not back after the restart: {err}"))),
        }
    };
    ensure!(
        got == Some(e.clone()),
        "the entry after the restart: {got:?}"
    );
    store
        .put(e.clone().with_name("again"))
        .await
        .map_err(fail)?;
    backend.close().await.map_err(fail)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

// ------------------------------------------------------------- machinery

fn free_port() -> Result<u16, Failed> {
    respcache_conformance::net::spare_port().map_err(fail)
}

/// The emulator program: `RESPCACHE_NX27017_BIN`, or the venv that
/// `cargo xtask services up` (or `start-mongodb.sh`) installed.
fn nx27017() -> Option<PathBuf> {
    if let Ok(bin) = std::env::var("RESPCACHE_NX27017_BIN") {
        return Some(PathBuf::from(bin)).filter(|p| p.exists());
    }
    let env = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home_cache = env("HOME").map(|h| h.join(".cache"));
    let homes = [
        env("RESPCACHE_SERVICES_HOME"),
        env("XDG_CACHE_HOME").map(|c| c.join("respcache-services")),
        home_cache.as_ref().map(|c| c.join("respcache-services")),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.services/cache")),
        env("SVC_HOME"),
        home_cache.map(|c| c.join("http-cache-services")),
    ];
    homes
        .into_iter()
        .flatten()
        .map(|h| h.join("nx-27017-0.8.1-venv/bin/nx-27017"))
        .find(|p| p.exists())
}

/// An emulator process this test owns, on a file database in `dir`.
struct Emulator {
    child: Option<std::process::Child>,
}

impl Emulator {
    async fn start(bin: &PathBuf, port: u16, dir: &std::path::Path) -> Result<Self, Failed> {
        let child = std::process::Command::new(bin)
            .args(["--host", "127.0.0.1", "-p", &port.to_string(), "--db"])
            .arg(dir.join("data.db"))
            .arg("--log-file")
            .arg(dir.join("server.log"))
            .arg("--pid-file")
            .arg(dir.join(format!("server-{port}.pid")))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(fail)?;
        let emulator = Emulator { child: Some(child) };
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            ensure!(
                started.elapsed() < Duration::from_secs(30),
                "the emulator did not start on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(emulator)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP proxy to the test server that can stop forwarding (the kit's).
async fn freezable_proxy() -> Result<FreezableProxy, Failed> {
    let target = MONGODB
        .addr()
        .ok_or("no server address in the MongoDB URL")?;
    FreezableProxy::start(target).await.map_err(fail)
}

fn tests() -> Vec<(&'static str, TestFn)> {
    macro_rules! list {
        ($($name:ident),* $(,)?) => { vec![$((stringify!($name), (|ctx| Box::pin($name(ctx))) as TestFn)),*] };
    }
    list![
        documents_are_readable_in_a_shell,
        tags_are_an_indexed_array_and_old_documents_are_untagged,
        no_purge_date_without_retention_or_expiry,
        store_has_an_expiry_index_and_a_ttl_index,
        reopening_with_another_retention_uses_it_for_new_writes,
        a_conflicting_ttl_index_is_reconciled,
        set_expiry_writes_the_purge_date_as_a_date,
        the_ttl_index_purges_after_retention,
        a_payload_over_the_limit_is_refused_whole,
        a_payload_at_the_limit_round_trips,
        bulk_calls_are_one_round_trip,
        wrong_credentials_never_show_the_password,
        an_unreachable_server_is_a_timeout,
        a_black_hole_fails_connect_within_the_configured_deadline,
        a_black_hole_fails_connect_within_the_default_deadline,
        a_frozen_server_fails_a_call_within_the_default_deadline,
        a_silent_server_is_a_timeout,
        a_hung_call_hits_the_operation_timeout,
        reserved_database_names_are_refused,
        dropping_the_last_store_leaves_no_database,
        update_writes_work_for_new_and_undated_entries,
        a_given_client_is_used_and_left_open,
        expired_entries_are_rechecked_on_read,
        server_restart_is_survived,
    ]
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        eprintln!("cannot start a tokio runtime");
        return ExitCode::FAILURE;
    };
    let runtime = Arc::new(runtime);
    let config = match MongoDbConfig::from_url(&MONGODB.url()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mongodb tests: {e}");
            return ExitCode::FAILURE;
        }
    };
    let probe = runtime
        .block_on(MongoDbBackend::connect_with(config.clone()))
        .map(|b| {
            let _ = runtime.block_on(b.close());
        })
        .map_err(|e| format!("at {}: {e}", config.redacted_url()));
    let server = Gate::probe("mongodb tests: MongoDB", probe);
    let emulator = Gate::probe(
        "mongodb tests: the emulator",
        nx27017().ok_or(
            "nx-27017 not found (run `cargo xtask services up`, or set RESPCACHE_NX27017_BIN)",
        ),
    );
    let trials = tests()
        .into_iter()
        .map(|(name, run)| {
            let gate = if name == "server_restart_is_survived" {
                emulator.and(&server)
            } else {
                server.clone()
            };
            let runtime = Arc::clone(&runtime);
            let config = config.clone();
            gate.trial(format!("mongodb::{name}"), move || {
                runtime.block_on(async move {
                    let backend = MongoDbBackend::connect_with(config.clone())
                        .await
                        .map_err(fail)?;
                    let suffix: u32 = rand_suffix();
                    let cache = Name::new(format!(
                        "mt-{}-{suffix:08x}",
                        &name[..name.len().min(40)].replace('_', "-")
                    ))
                    .map_err(fail)?;
                    let outcome = run(Ctx {
                        backend: backend.clone(),
                        cache: cache.clone(),
                        config,
                    })
                    .await;
                    // Leave nothing behind.
                    let _ = backend.client().database(cache.as_str()).drop().await;
                    let _ = backend.close().await;
                    outcome
                })
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (RandomState::new().hash_one(nanos) & 0xffff_ffff) as u32
}
