//! respcache on the filesystem: one folder per cache and per repository, one
//! file per entry, `<root>/<cache>/<repository>/<aa>/<bb>/<digest>`.
//!
//! Run with `cargo run --example fs --features fs` (no service needed). It
//! connects with an `FsConfig` (and prints the equivalent `respcache::connect`
//! URL), caches JSON answers in two repositories, shows which file holds
//! each one, lets an entry go stale (files have no native expiry: the file
//! stays until `clear`), caches an access token in a `KeyValueCache` opened
//! from the URL, and drops its folders at the end.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use respcache::fs::{FsBackend, FsConfig};
use respcache::{Backend, JsonCodec, KeyValueCache, Name, Repository, Request};
use respcache::{ResponseCache, StoreSpec, TemplateSettings, kv};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
const API: &str = "https://api.example.com/v1";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fs example failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let config = FsConfig::new(dir.path()).with_fsync(true);
    let url = format!("fs://{}?fsync=true", dir.path().display());
    assert_eq!(FsConfig::from_url(&url)?, config); // the same folder, as a URL
    let fs = Arc::new(FsBackend::connect(config).await?);
    let backend: Arc<dyn Backend> = fs.clone();
    println!("root folder {}", fs.root().display());
    println!("  = respcache::connect({url:?})");

    // Tracks stay fresh an hour, charts a second.
    let tracks = TemplateSettings::new("tracks", "/v1/tracks/{id}", JsonCodec)?;
    let charts = TemplateSettings::new("charts", "/v1/charts/{year:int}", JsonCodec)?
        .with_expiry(Duration::from_secs(1));
    let cache = ResponseCache::<Value>::builder("music")
        .default_expiry(Duration::from_hours(1))
        .create_repository(tracks)
        .create_repository(charts)
        .connect(Arc::clone(&backend))
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

    // Where each answer lives: a file named by the digest of its key.
    let tracks = cache.repository("tracks").ok_or("no tracks repository")?;
    let charts = cache.repository("charts").ok_or("no charts repository")?;
    let track_file = file_of(&fs, tracks, &track).await?;
    let chart_file = file_of(&fs, charts, &chart).await?;
    for file in [&track_file, &chart_file] {
        let (relative, size) = (
            file.strip_prefix(fs.root())?,
            std::fs::metadata(file)?.len(),
        );
        println!("  <root>/{} ({size} bytes)", relative.display());
    }

    // Charts go stale after a second. Nothing deletes the file on its own:
    // `get` misses, but the entry stays (for revalidation) until `clear`.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (fresh, stored) = (charts.count(false).await?, charts.count(true).await?);
    println!(
        "after 1.1 s: get charts/2024 -> {:?}, {fresh} fresh, {stored} stored",
        cache.get(&chart).await?
    );
    println!("  its file is still there: {}", chart_file.exists());
    let removed = charts.clear(true).await?;
    println!(
        "  clear(expired_only) removed {removed}; file there: {}",
        chart_file.exists()
    );

    // A key/value cache on a backend opened from the URL: one fetch, then hits.
    let calls = AtomicUsize::new(0);
    let tokens = KeyValueCache::<String>::new(respcache::connect(&url).await?, "auth")?;
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
    tokens.backend().close().await?;

    // Clean up: drop every store; their folders go with them.
    let music = Name::new("music")?;
    for repository in backend.list_stores(&music).await? {
        backend.drop_store(&music, &repository).await?;
    }
    backend
        .drop_store(&Name::new("auth")?, &Name::new(kv::REPOSITORY)?)
        .await?;
    let left = std::fs::read_dir(fs.root())?.count();
    println!("dropped; entries left under the root: {left}");
    backend.close().await?;
    Ok(())
}

/// The file that holds `request`'s answer in `repository`.
async fn file_of(
    fs: &FsBackend,
    repository: &Repository<Value>,
    request: &Request,
) -> Result<PathBuf, BoxError> {
    let key = repository.key(request).ok_or("not cached")?;
    let fields = repository.settings().fields().clone();
    let spec = StoreSpec::new(Name::new("music")?, Name::new(repository.name())?, fields);
    Ok(fs.open_fs_store(&spec).await?.entry_path(&key))
}
