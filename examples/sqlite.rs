//! respcache on SQLite, the embedded default: one database file, one table
//! per repository, with a typed column per key field.
//!
//! Run with `cargo run --example sqlite` (no service needed). It connects
//! with a `SqliteConfig` (and prints the equivalent `respcache::connect`
//! URL), caches JSON answers in two repositories, opens the file with
//! rusqlite to show the tables respcache made, lets an entry go stale (SQLite
//! has no native expiry: a stale row stays until `clear`), caches an access
//! token in a `KeyValueCache`, reads the answers back through a second
//! connection made from the URL, and drops its tables at the end.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use respcache::sqlite::{SqliteBackend, SqliteConfig, rusqlite};
use respcache::{
    Backend, JsonCodec, KeyValueCache, Name, Request, ResponseCache, TemplateSettings,
};
use respcache::{Timestamp, kv};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
const API: &str = "https://api.example.com/v1";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sqlite example failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cache.sqlite");
    let config = SqliteConfig::file(&path).with_busy_timeout(Duration::from_secs(2));
    let url = format!("sqlite://{}?busy_timeout=2s", path.display());
    assert_eq!(SqliteConfig::from_url(&url)?, config); // the same database, as a URL
    let backend: Arc<dyn Backend> = Arc::new(SqliteBackend::with_config(config).await?);
    println!("connected to {}", path.display());
    println!("  = respcache::connect({url:?})");

    let cache = music_cache(Arc::clone(&backend)).await?;
    let tracks = [
        ("3n3Ppam7vgaVa1iaRUc9Lp", "Mr. Brightside"),
        ("7ouMYWpwJ422jRcDASZB7P", "Knights of Cydonia"),
    ];
    let mut batch = Vec::new();
    for (id, name) in tracks {
        batch.push((
            Request::get(&format!("{API}/tracks/{id}"))?,
            json!({"id": id, "name": name}),
        ));
    }
    let saved = cache.save_many(&batch).await?;
    println!("saved {saved} tracks in one transaction");
    let chart = Request::get(&format!("{API}/charts/2024"))?;
    cache
        .save(&chart, &json!({"name": "Top 50 of 2024"}))
        .await?;
    let (track, _) = &batch[0];
    let hit = cache.get(track).await?.unwrap_or_default();
    println!("get {} -> {}", track.url(), hit["name"]);

    // What respcache made in the file: a table per repository, typed key columns.
    let db = rusqlite::Connection::open(&path)?;
    for table in ["music:tracks", "music:charts"] {
        let sql = "SELECT group_concat(name || ' ' || type, ', ') FROM pragma_table_info(?1)";
        let columns: String = db.query_row(sql, [table], |row| row.get(0))?;
        println!("table {table:?}: {columns}");
    }

    // Charts go stale after a second. SQLite deletes nothing on its own:
    // `get` misses, but the row stays (for revalidation) until `clear`.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let charts = cache.repository("charts").ok_or("no charts repository")?;
    let (fresh, stored) = (charts.count(false).await?, charts.count(true).await?);
    println!(
        "after 1.1 s: get charts/2024 -> {:?}, {fresh} fresh, {stored} stored",
        cache.get(&chart).await?
    );
    let sql = r#"SELECT f_year, ?1 - expires_at FROM "music:charts""#;
    let (year, ago): (i64, i64) = db.query_row(sql, [Timestamp::now().as_millis()], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    println!("  the row (f_year = {year}) is still there, {ago} ms past its expires_at");
    println!(
        "  clear(expired_only) removed {}",
        charts.clear(true).await?
    );

    // A key/value cache in the same database: one fetch, then hits.
    let calls = AtomicUsize::new(0);
    let tokens = KeyValueCache::<String>::new(Arc::clone(&backend), "auth")?;
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

    // A second connection, made from the URL, reads the same file.
    let reopened = music_cache(respcache::connect(&url).await?).await?;
    let tracks = reopened
        .repository("tracks")
        .ok_or("no tracks repository")?;
    println!(
        "through respcache::connect: {} tracks stored",
        tracks.count(false).await?
    );
    reopened.backend().close().await?;

    // Clean up: drop every table this example made.
    let music = Name::new("music")?;
    for repository in backend.list_stores(&music).await? {
        backend.drop_store(&music, &repository).await?;
    }
    backend
        .drop_store(&Name::new("auth")?, &Name::new(kv::REPOSITORY)?)
        .await?;
    let left: i64 = db.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
        [],
        |r| r.get(0),
    )?;
    println!("dropped the stores; tables left in the file: {left}");
    backend.close().await?;
    Ok(())
}

/// A cache named "music": tracks stay fresh an hour, charts a second.
async fn music_cache(backend: Arc<dyn Backend>) -> respcache::Result<ResponseCache<Value>> {
    let name_of = |v: &Value| v["name"].as_str().map(str::to_owned);
    ResponseCache::<Value>::builder("music")
        .default_expiry(Duration::from_hours(1))
        .create_repository(
            TemplateSettings::new("tracks", "/v1/tracks/{id}", JsonCodec)?.with_name_of(name_of),
        )
        .create_repository(
            TemplateSettings::new("charts", "/v1/charts/{year:int}", JsonCodec)?
                .with_name_of(name_of)
                .with_expiry(Duration::from_secs(1)),
        )
        .connect(backend)
        .await
}
