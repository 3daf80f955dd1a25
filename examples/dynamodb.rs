//! respcache on DynamoDB: one table for every cache, one partition per
//! repository (`pk` = `<cache>#<repository>`, `sk` = the encoded key), and
//! DynamoDB's TTL (`purge_at`) deleting stale entries once their retention
//! has passed.
//!
//! Run `cargo xtask services up`, then
//! `cargo run --example dynamodb --features dynamodb` (the table and server
//! are `RESPCACHE_DYNAMODB_URL`, default
//! `dynamodb://respcache-examples?endpoint=http://127.0.0.1:8000&region=us-east-1`).
//! It connects with a `DynamoDbConfig` parsed from that URL (the one
//! `respcache::connect` takes), caches JSON answers in two repositories,
//! reads an answer's item with the AWS SDK to show its keys and TTL, lets an
//! entry go stale (DynamoDB keeps it until the retention passes), caches an
//! access token in a `KeyValueCache` opened from the URL, and drops its
//! stores (not the table) at the end.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use respcache::dynamodb::aws_sdk_dynamodb::types::AttributeValue;
use respcache::dynamodb::{DynamoDbBackend, DynamoDbConfig};
use respcache::{Backend, JsonCodec, KeyValueCache, Name, Request, ResponseCache};
use respcache::{TemplateSettings, kv};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
const API: &str = "https://api.example.com/v1";
const LOCAL: &str = "dynamodb://respcache-examples?endpoint=http://127.0.0.1:8000&region=us-east-1";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dynamodb example failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let url = std::env::var("RESPCACHE_DYNAMODB_URL").unwrap_or(LOCAL.into());
    let config = DynamoDbConfig::from_url(&url)?.with_max_attempts(2); // fail fast if down
    let endpoint = config.endpoint.clone().unwrap_or("AWS".into());
    let connected = DynamoDbBackend::connect_with(config).await;
    let dynamo = Arc::new(connected.map_err(|e| {
        format!("cannot reach DynamoDB at {endpoint} ({e}): run `cargo xtask services up`")
    })?);
    let table = dynamo.table().to_owned();
    let sep = if url.contains('?') { '&' } else { '?' };
    println!("connected: table {table:?} at {endpoint}");
    println!("  = respcache::connect(\"{url}{sep}max_attempts=2\")");

    // Tracks stay fresh an hour, charts a second; DynamoDB keeps stale items a day.
    let tracks = TemplateSettings::new("tracks", "/v1/tracks/{id}", JsonCodec)?;
    let charts = TemplateSettings::new("charts", "/v1/charts/{year:int}", JsonCodec)?
        .with_expiry(Duration::from_secs(1));
    let cache = ResponseCache::<Value>::builder("example-music")
        .default_expiry(Duration::from_hours(1))
        .retention(Duration::from_hours(24))
        .create_repository(tracks)
        .create_repository(charts)
        .connect(dynamo.clone())
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

    // The answer's item: the repository is the partition, the key the sort key.
    let tracks = cache.repository("tracks").ok_or("no tracks repository")?;
    let pk = format!("{}#tracks", cache.cache_name());
    let sk = tracks.key(&track).ok_or("not cached")?.encode();
    let item = dynamo
        .client()
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(pk.clone()))
        .key("sk", AttributeValue::S(sk.clone()))
        .send()
        .await?;
    let number = |name: &str| {
        item.item()
            .and_then(|i| i.get(name))
            .and_then(|v| v.as_n().ok())
            .cloned()
            .unwrap_or_default()
    };
    println!("  item pk={pk:?} sk={sk:?}");
    println!(
        "  expires_at = {} ms, purge_at = {} s (expires_at + 1 day)",
        number("expires_at"),
        number("purge_at")
    );
    let ttl = dynamo
        .client()
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await?;
    let ttl = ttl.time_to_live_description().ok_or("no TTL description")?;
    println!(
        "  table TTL: {} on {:?}",
        ttl.time_to_live_status().map_or("-", |s| s.as_str()),
        ttl.attribute_name().unwrap_or("-")
    );

    // Charts go stale after a second: `get` misses, but the item stays (for
    // revalidation) until DynamoDB's TTL or `clear` removes it.
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
        "3 × get_or_set_with -> {token:?}, fetched {} time (partition \"example-auth#kv\")",
        calls.load(Ordering::SeqCst)
    );
    tokens.backend().close().await?;

    // Clean up: drop the stores this example made (the table stays).
    let music = Name::new(cache.cache_name())?;
    for repository in cache.repositories() {
        dynamo
            .drop_store(&music, &Name::new(repository.name())?)
            .await?;
    }
    dynamo
        .drop_store(&Name::new("example-auth")?, &Name::new(kv::REPOSITORY)?)
        .await?;
    println!(
        "dropped; stores left: {:?}",
        dynamo.list_stores(&music).await?
    );
    dynamo.close().await?;
    Ok(())
}
