//! Issue 19: code that uses a `ResponseCache` and a `CachedSession`
//! together returns one `respcache::Result`; the HTTP error stays
//! reachable as the source.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use respcache::{CachedClient, ErrorKind, JsonCodec, ResponseCache, TemplateSettings};
use serde_json::Value;

/// What a program written against the README looks like: cache calls and
/// HTTP calls in one function, `?` on both.
async fn fetch_track(url: &str) -> respcache::Result<Value> {
    let backend = respcache::connect("sqlite::memory:").await?;
    let cache = Arc::new(
        ResponseCache::<Value>::builder("music")
            .create_repository(TemplateSettings::new(
                "tracks",
                "/v1/tracks/{id}",
                JsonCodec,
            )?)
            .connect(backend)
            .await?,
    );
    let session = CachedClient::builder().build_with_cache(cache).await?;
    let response = session.get(url).send().await?;
    Ok(response.json()?)
}

#[tokio::test]
async fn cache_and_http_errors_meet_in_one_result() {
    // Nothing listens on port 9 of the loopback: the origin is unreachable.
    let e = fetch_track("http://127.0.0.1:9/v1/tracks/7")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(e.kind().is_temporary());
    let source = std::error::Error::source(&e).expect("the HTTP error");
    let http = source
        .downcast_ref::<respcache::http_cache::Error>()
        .expect("a respcache_http::Error");
    assert_eq!(http.kind(), respcache::http_cache::ErrorKind::Connection);

    let e = fetch_track("not a url").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Http, "{e}");
    assert!(e.to_string().contains("invalid URL"), "{e}");
}
