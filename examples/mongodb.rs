//! respcache on MongoDB: a database per cache, a collection per repository,
//! a document per entry (`_id` = the encoded key), and a TTL index on
//! `purge_at` deleting stale entries once their retention has passed.
//!
//! Run `cargo xtask services up`, then
//! `cargo run --example mongodb --features mongodb` (the server is
//! `RESPCACHE_MONGODB_URL`, default
//! `mongodb://127.0.0.1:27017/?directConnection=true`). It connects with a
//! `MongoDbConfig` (and prints the equivalent `respcache::connect` URL),
//! caches JSON answers in two repositories, reads an answer's document and
//! the collection's TTL index with the driver, lets an entry go stale
//! (MongoDB keeps it until the retention passes), caches an access token in
//! a `KeyValueCache` opened from the URL, and drops its stores at the end.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use respcache::futures::TryStreamExt;
use respcache::mongodb::mongodb::bson::doc;
use respcache::mongodb::{MongoDbBackend, MongoDbConfig};
use respcache::{Backend, JsonCodec, KeyValueCache, Name, Request, ResponseCache};
use respcache::{TemplateSettings, kv};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
const API: &str = "https://api.example.com/v1";
const LOCAL: &str = "mongodb://127.0.0.1:27017/?directConnection=true";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mongodb example failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let url = std::env::var("RESPCACHE_MONGODB_URL").unwrap_or(LOCAL.into());
    let config = MongoDbConfig::from_url(&url)?.server_selection_timeout(Duration::from_secs(2));
    let shown = config.redacted_url();
    let connected = MongoDbBackend::connect_with(config).await;
    let mongo = Arc::new(connected.map_err(|e| {
        format!("cannot reach MongoDB at {shown} ({e}): run `cargo xtask services up`")
    })?);
    println!("connected to {shown}");
    let sep = if shown.contains('?') { '&' } else { '?' };
    println!("  = respcache::connect(\"{shown}{sep}serverSelectionTimeoutMS=2000\")");

    // Tracks stay fresh an hour, charts a second; MongoDB keeps stale entries a day.
    let tracks = TemplateSettings::new("tracks", "/v1/tracks/{id}", JsonCodec)?;
    let charts = TemplateSettings::new("charts", "/v1/charts/{year:int}", JsonCodec)?
        .with_expiry(Duration::from_secs(1));
    let cache = ResponseCache::<Value>::builder("example-music")
        .default_expiry(Duration::from_hours(1))
        .retention(Duration::from_hours(24))
        .create_repository(tracks)
        .create_repository(charts)
        .connect(mongo.clone())
        .await?;
    let track = Request::get(&format!("{API}/tracks/3n3Ppam7vgaVa1iaRUc9Lp"))?;
    let chart = Request::get(&format!("{API}/charts/2024"))?;
    cache
        .save(&track, &json!({"name": "Mr. Brightside"}))
        .await?;
    cache
        .save(&chart, &json!({"name": "Top 50 of 2024"}))
        .await?;
    let hit = cache.get(&track).await?.unwrap_or_default();
    println!("get {} -> {}", track.url(), hit["name"]);

    // The answer's document, and the TTL index that purges it.
    let music = Name::new(cache.cache_name())?;
    let tracks = cache.repository("tracks").ok_or("no tracks repository")?;
    // The collection is "tracks" on MongoDB, "x_tracks" on the nx-27017 emulator.
    let collection = mongo.collection(&music, &Name::new("tracks")?).await?;
    let id = tracks.key(&track).ok_or("not cached")?.encode();
    let document = collection
        .find_one(doc! {"_id": &id})
        .await?
        .ok_or("no document")?;
    println!(
        "  database {music:?}, collection {:?}, _id {id:?}",
        collection.name()
    );
    let expires_at = document.get_i64("expires_at")?; // ms since the epoch
    let purge_at = document.get_datetime("purge_at")?; // a date, for the TTL index
    let retention = (purge_at.timestamp_millis() - expires_at) / 1000;
    println!("  expires_at {expires_at}, purge_at {purge_at} = expires_at + {retention} s");
    for index in collection
        .list_indexes()
        .await?
        .try_collect::<Vec<_>>()
        .await?
    {
        let ttl = index.options.and_then(|o| o.expire_after);
        println!(
            "  index {}{}",
            index.keys,
            ttl.map_or(String::new(), |t| format!(
                " TTL, expireAfterSeconds {}",
                t.as_secs()
            ))
        );
    }

    // Charts go stale after a second: `get` misses, but the document stays
    // (for revalidation) until the TTL index or `clear` removes it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let charts = cache.repository("charts").ok_or("no charts repository")?;
    let (fresh, stored) = (charts.count(false).await?, charts.count(true).await?);
    println!(
        "after 1.1 s: get charts/2024 -> {:?}, {fresh} fresh, {stored} stored",
        cache.get(&chart).await?
    );
    println!(
        "  clear(expired_only) removed {}",
        charts.clear(true).await?
    );

    // A key/value cache on a backend opened from the URL: one fetch, then hits.
    let calls = AtomicUsize::new(0);
    let tokens = KeyValueCache::<String>::new(respcache::connect(&url).await?, "example-auth")?;
    for _ in 0..3 {
        let calls = &calls;
        // The computation receives the key it computes.
        let fetch_token = |key: String| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(format!("tok-8f3a for {key}"))
        };
        let hour = Some(Duration::from_hours(1));
        tokens
            .get_or_set_with("api-token", fetch_token, hour)
            .await?;
    }
    let token = tokens.get("api-token").await?;
    println!(
        "3 × get_or_set_with -> {token:?}, fetched {} time (database \"example-auth\")",
        calls.load(Ordering::SeqCst)
    );
    tokens.backend().close().await?;

    // Clean up: drop the stores this example made.
    for repository in cache.repositories() {
        mongo
            .drop_store(&music, &Name::new(repository.name())?)
            .await?;
    }
    mongo
        .drop_store(&Name::new("example-auth")?, &Name::new(kv::REPOSITORY)?)
        .await?;
    println!(
        "dropped; stores left: {:?}",
        mongo.list_stores(&music).await?
    );
    mongo.close().await?;
    Ok(())
}
