//! respcache quickstart: cache a (local, imitation) music-catalogue API in SQLite.
//!
//! Run with `cargo run --example quickstart`. No network is needed: the
//! example starts its own slow "music API" on 127.0.0.1, then asks it for
//! tracks, albums and artists twice through a `ResponseCache` stored in a
//! SQLite file. The first round goes to the API (misses), the second is
//! served from SQLite (hits); finally a brand-new connection to the same
//! file shows the answers survived.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request as HttpRequest, Response as HttpResponse, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use respcache::{JsonCodec, Request, ResponseCache, TemplateSettings};
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

    let cache = music_cache(&url).await?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
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
            let (payload, outcome, took) = fetch(&cache, &client, &url).await?;
            let name = payload["name"].as_str().unwrap_or("?");
            println!("  {outcome:<4} {:>9.3} ms  {path:<36} {name}", ms(took));
        }
        println!("  round {round} took {:.1} ms\n", ms(started.elapsed()));
    }

    println!("stored entries:");
    for repo in cache.repositories() {
        println!("  {:<8} {} fresh", repo.name(), repo.count(false).await?);
    }
    println!(
        "origin requests: {} for {} lookups\n",
        origin_requests.load(Ordering::SeqCst),
        paths.len() * 2
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

/// Asks the cache first; on a miss asks the API and saves its answer.
async fn fetch(
    cache: &ResponseCache<Value>,
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    url: &str,
) -> Result<(Value, &'static str, Duration), BoxError> {
    let started = Instant::now();
    let request = Request::get(url)?;
    if let Some(hit) = cache.get(&request).await? {
        return Ok((hit, "HIT", started.elapsed()));
    }
    let response = client.get(url.parse()?).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let payload: Value = serde_json::from_slice(&body)?;
    if status == StatusCode::OK {
        cache.save(&request, &payload).await?;
    }
    Ok((payload, "MISS", started.elapsed()))
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
    Ok(response)
}
