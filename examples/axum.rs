//! Caching an axum service: a slow handler behind respcache's server layer,
//! a shared cache stored in SQLite.
//!
//! Run with `cargo run --example axum`. The example serves its app on
//! 127.0.0.1, asks it for the same report three times and for a private
//! page twice, and prints what each answer cost and its `Cache-Status`:
//! the first report is computed (300 ms), the others come from the cache;
//! the private page is computed every time (a shared cache never reuses
//! `private` answers).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use respcache::{CachedClient, SqliteBackend};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The slow part of the app: a report that takes 300 ms to compute.
async fn report() -> ([(&'static str, &'static str); 1], &'static str) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    (
        [("cache-control", "public, max-age=60")],
        "the quarterly report\n",
    )
}

/// A page for one user: never reused by a shared cache.
async fn account() -> ([(&'static str, &'static str); 1], &'static str) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    ([("cache-control", "private, max-age=60")], "your account\n")
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let backend = Arc::new(SqliteBackend::open(dir.path().join("server-cache.sqlite")).await?);
    // A shared cache in front of the whole app (`Router::layer` works too).
    let cache = CachedClient::builder().server_layer(backend).await?;
    let app = Router::new()
        .route("/report", get(report))
        .route("/account", get(account))
        .layer(cache);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("app with a cache in front on http://{addr}\n");

    for path in ["/report", "/report", "/report", "/account", "/account"] {
        ask(addr, path).await?;
    }
    Ok(())
}

/// Asks the app for `path` and prints the time and the `Cache-Status`.
async fn ask(addr: SocketAddr, path: &str) -> Result<(), BoxError> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let started = Instant::now();
    let request = axum::http::Request::get(format!("http://{addr}{path}")).body(Empty::new())?;
    let response = client.request(request).await?;
    let status = response
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let body = response.into_body().collect().await?.to_bytes();
    println!(
        "GET {path:<9} {:>6.1} ms  {:<22} Cache-Status: {status}",
        started.elapsed().as_secs_f64() * 1000.0,
        String::from_utf8_lossy(&body).trim(),
    );
    Ok(())
}
