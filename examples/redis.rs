//! respcache on Redis: every key of a cache under `<cache>:`, one string key
//! per entry, and Redis's own expiry purging stale entries once their
//! retention has passed.
//!
//! Run `cargo xtask services up`, then `cargo run --example redis --features redis`
//! (the server is `RESPCACHE_REDIS_URL`, default `redis://127.0.0.1:6379/`).
//! It connects with a `RedisConfig` (and prints the equivalent
//! `respcache::connect` URL), caches JSON answers in two repositories, shows
//! an answer's Redis key and native expiry (`PEXPIRETIME` = `expires_at` +
//! retention), lets an entry go stale (Redis keeps it until the retention
//! passes), caches an access token in a `KeyValueCache` opened from the URL,
//! and drops its stores at the end.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use respcache::redis::redis::{self, aio::ConnectionManager};
use respcache::redis::{RedisBackend, RedisConfig};
use respcache::{Backend, JsonCodec, Key, KeyValueCache, Name, Request, ResponseCache};
use respcache::{TemplateSettings, kv};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
const API: &str = "https://api.example.com/v1";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redis example failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let url = std::env::var("RESPCACHE_REDIS_URL").unwrap_or("redis://127.0.0.1:6379/".into());
    let config = RedisConfig::from_url(&url)?.with_command_timeout(Duration::from_secs(1));
    let connected = RedisBackend::connect_with(config.clone()).await;
    let redis = Arc::new(connected.map_err(|e| {
        format!("cannot reach Redis at {config} ({e}): run `cargo xtask services up`")
    })?);
    println!("connected to {config}");
    println!("  = respcache::connect(\"{config}?command_timeout_ms=1000\")");

    // Tracks stay fresh an hour, charts a second; Redis keeps stale entries 10 min.
    let tracks = TemplateSettings::new("tracks", "/v1/tracks/{id}", JsonCodec)?;
    let charts = TemplateSettings::new("charts", "/v1/charts/{year:int}", JsonCodec)?
        .with_expiry(Duration::from_secs(1));
    let cache = ResponseCache::<Value>::builder("example-music")
        .default_expiry(Duration::from_hours(1))
        .retention(Duration::from_mins(10))
        .create_repository(tracks)
        .create_repository(charts)
        .connect(redis.clone())
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

    // An answer's Redis key, and when Redis itself will delete it.
    let mut conn = redis.connection()?;
    let tracks = cache.repository("tracks").ok_or("no tracks repository")?;
    let track_key = redis_key(cache.cache_name(), "tracks", tracks.key(&track))?;
    let cached = tracks.get_cached(&track).await?.ok_or("not cached")?;
    let expires_at = cached.expires_at.ok_or("never expires")?.as_millis();
    let purge_at = ask(&mut conn, "PEXPIRETIME", &track_key).await?;
    println!("  key {track_key}: expires_at {expires_at}");
    println!(
        "  PEXPIRETIME {purge_at} = expires_at + {} s",
        (purge_at - expires_at) / 1000
    );

    // Charts go stale after a second: `get` misses, but the entry stays (for
    // revalidation) until the retention passes or `clear` removes it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let charts = cache.repository("charts").ok_or("no charts repository")?;
    let chart_key = redis_key(cache.cache_name(), "charts", charts.key(&chart))?;
    let (fresh, stored) = (charts.count(false).await?, charts.count(true).await?);
    println!(
        "after 1.1 s: get charts/2024 -> {:?}",
        cache.get(&chart).await?
    );
    println!(
        "  {fresh} fresh, {stored} stored; Redis purges it in {} s",
        ask(&mut conn, "PTTL", &chart_key).await? / 1000
    );
    println!(
        "  clear(expired_only) removed {}",
        charts.clear(true).await?
    );

    // A key/value cache on a backend opened from the URL: one fetch, then hits.
    let calls = AtomicUsize::new(0);
    let tokens = KeyValueCache::<String>::builder(respcache::connect(&url).await?, "example-auth")
        .retention(Duration::from_mins(1))
        .connect()
        .await?;
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
        "3 × get_or_set_with -> {token:?}, fetched {} time",
        calls.load(Ordering::SeqCst)
    );
    let token_key = redis_key(
        "example-auth",
        kv::REPOSITORY,
        Some(Key::new(kv::KEY_METHOD, ["api-token".into()])),
    )?;
    println!(
        "  key {token_key}: PTTL {} s (1 h + 60 s retention)",
        ask(&mut conn, "PTTL", &token_key).await? / 1000
    );
    tokens.backend().close().await?;

    // Clean up: drop the stores this example made.
    let music = Name::new(cache.cache_name())?;
    for repository in cache.repositories() {
        redis
            .drop_store(&music, &Name::new(repository.name())?)
            .await?;
    }
    redis
        .drop_store(&Name::new("example-auth")?, &Name::new(kv::REPOSITORY)?)
        .await?;
    println!(
        "dropped; stores left: {:?}",
        redis.list_stores(&music).await?
    );
    redis.close().await?;
    Ok(())
}

/// The Redis key of an entry: `<cache>:<repository>:<encoded key>`.
fn redis_key(cache: &str, repository: &str, key: Option<Key>) -> Result<String, BoxError> {
    Ok(format!(
        "{cache}:{repository}:{}",
        key.ok_or("not cached")?.encode()
    ))
}

/// Sends `COMMAND key` (PTTL, PEXPIRETIME) and reads the number it answers.
async fn ask(conn: &mut ConnectionManager, command: &str, key: &str) -> redis::RedisResult<i64> {
    redis::cmd(command).arg(key).query_async(conn).await
}
