//! respcache quickstart: cache a (local, imitation) music-catalogue API in SQLite.
//!
//! Run with `cargo run --example quickstart`. No network is needed: the
//! example starts its own slow "music API" on 127.0.0.1, then asks it for
//! tracks, albums and artists twice through a `CachedClient` (alias
//! `CachedSession`) whose answers live in a `ResponseCache` of Spotify-style
//! repositories stored in a SQLite file. The first round goes to the API
//! (misses), the second is served from SQLite (hits); finally a brand-new
//! connection to the same file shows the answers survived.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request as HttpRequest, Response as HttpResponse, StatusCode};
use hyper_util::rt::TokioIo;
use respcache::{CachedClient, JsonCodec, Request, ResponseCache, TemplateSettings};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How slow the imitation API is, like a rate-limited public API.
const API_LATENCY: Duration = Duration::from_millis(120);

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let origin_requests = Arc::new(AtomicUsize::new(0));
    let api = start_music_api(Arc::clone(&origin_requests)).await?;
    println!("music API (imitation) listening on http://{api}");

    let dir = tempfile::tempdir()?;
    let db = dir.path().join("music-cache.sqlite");
    let url = format!("sqlite://{}", db.display());
    println!("cache: {url}\n");

    let cache = Arc::new(music_cache(&url).await?);
    let client = CachedClient::builder()
        .build_with_cache(Arc::clone(&cache))
        .await?;
    let paths = [
        "/v1/tracks/3n3Ppam7vgaVa1iaRUc9Lp",
        "/v1/tracks/7ouMYWpwJ422jRcDASZB7P",
        "/v1/tracks/4VqPOruhp5EdPBeR92t6lQ",
        "/v1/albums/4aawyAB9vmqN3uQ7FjRGTy",
        "/v1/artists/0OdUWJ0sBjDrqHygGUXeCF",
    ];

    for round in 1..=2 {
        println!("round {round}:");
        let started = Instant::now();
        for path in paths {
            let url = format!("http://{api}{path}");
            let started = Instant::now();
            let response = client.get(&url).send().await?;
            let took = started.elapsed();
            let payload: Value = response.json()?;
            let name = payload["name"].as_str().unwrap_or("?");
            let outcome = if response.from_cache() { "HIT" } else { "MISS" };
            println!("  {outcome:<4} {:>9.3} ms  {path:<36} {name}", ms(took));
        }
        println!("  round {round} took {:.1} ms\n", ms(started.elapsed()));
    }

    println!("stored entries:");
    for repo in cache.repositories() {
        println!("  {:<8} {} fresh", repo.name(), repo.count(false).await?);
    }
    let stats = client.stats();
    println!(
        "origin requests: {} for {} lookups ({} hits, {} misses, {} bytes served from the cache)\n",
        origin_requests.load(Ordering::SeqCst),
        stats.requests,
        stats.hits,
        stats.misses,
        stats.bytes_from_cache
    );
    cache.close().await?;
    cache.backend().close().await?;

    // A new connection to the same file: the answers survived.
    let reopened = music_cache(&url).await?;
    let mut hits = 0;
    for path in paths {
        let request = Request::get(&format!("http://{api}{path}"))?;
        if reopened.get(&request).await?.is_some() {
            hits += 1;
        }
    }
    println!(
        "after reopening {}: {hits}/{} answers still cached",
        db.display(),
        paths.len()
    );
    reopened.backend().close().await?;
    Ok(())
}

/// A cache named "music" with one repository per endpoint family.
async fn music_cache(url: &str) -> Result<ResponseCache<Value>, BoxError> {
    let name_of = |v: &Value| v["name"].as_str().map(str::to_owned);
    let backend = respcache::connect(url).await?;
    Ok(ResponseCache::<Value>::builder("music")
        .default_expiry(Duration::from_secs(3600))
        .create_repository(
            TemplateSettings::new("tracks", "/{version}/tracks/{id}", JsonCodec)?
                .with_name_of(name_of),
        )
        .create_repository(
            TemplateSettings::new("albums", "/{version}/albums/{id}", JsonCodec)?
                .with_name_of(name_of),
        )
        .create_repository(
            TemplateSettings::new("artists", "/{version}/artists/{id}", JsonCodec)?
                .with_name_of(name_of)
                .with_expiry(Duration::from_secs(86_400)),
        )
        .connect(backend)
        .await?)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Starts the imitation API on a free loopback port.
async fn start_music_api(counter: Arc<AtomicUsize>) -> Result<SocketAddr, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    music_api(req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn music_api(
    req: HttpRequest<hyper::body::Incoming>,
) -> Result<HttpResponse<Full<Bytes>>, Infallible> {
    tokio::time::sleep(API_LATENCY).await;
    let segments: Vec<&str> = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let body = match segments.as_slice() {
        ["v1", "tracks", id] => Some(json!({
            "id": id, "type": "track", "duration_ms": 222_000,
            "name": match *id {
                "3n3Ppam7vgaVa1iaRUc9Lp" => "Mr. Brightside",
                "7ouMYWpwJ422jRcDASZB7P" => "Knights of Cydonia",
                _ => "Bohemian Rhapsody",
            },
        })),
        ["v1", "albums", id] => {
            Some(json!({"id": id, "type": "album", "name": "Global Warming", "total_tracks": 17}))
        }
        ["v1", "artists", id] => {
            Some(json!({"id": id, "type": "artist", "name": "Pitbull", "genres": ["dance pop"]}))
        }
        _ => None,
    };
    let (status, body) = match body {
        Some(b) => (StatusCode::OK, b),
        None => (StatusCode::NOT_FOUND, json!({"error": "not found"})),
    };
    let mut response = HttpResponse::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    // Like most catalogue APIs: answers may be reused for an hour.
    headers.insert(
        "cache-control",
        hyper::header::HeaderValue::from_static("public, max-age=3600"),
    );
    Ok(response)
}
