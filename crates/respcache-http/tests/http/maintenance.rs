//! The maintenance calls (aiohttp-client-cache's `CacheBackend`): what is
//! stored and removing it, through the engine every front-end has.

use futures::StreamExt as _;
use respcache_core::{JsonCodec, ResponseCache, TemplateSettings};
use respcache_http::{CachedClient, ErrorKind};

use crate::front::{Kind, front};
use crate::origin::{Origin, Reply};
use crate::{B, clock, secs};

crate::backend_tests!(
    maintenance_over_a_response_cache_sees_each_repository,
    ;
    fronts:
        has_url_and_urls_list_what_is_stored,
        delete_expired_keeps_the_fresh_and_clear_removes_everything,
        delete_urls_removes_each_url_and_its_redirect,
        the_backend_and_stores_are_reachable,
        purge_tag_removes_every_answer_carrying_the_tag,
        tag_headers_are_configurable,
);

async fn stored_urls(c: &CachedClient) -> Vec<String> {
    let mut urls: Vec<String> = c.urls().map(|u| u.unwrap()).collect().await;
    urls.sort();
    urls
}

async fn has_url_and_urls_list_what_is_stored(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("{} #{}", s.path, s.n))
            .header("cache-control", "max-age=60")
            .header("vary", "accept")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let (a, bee) = (origin.url("/a?api_key=s3cret"), origin.url("/b"));
    c.get(&a).send().await.unwrap();
    c.get(&bee)
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap();
    c.get(&bee)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let engine = c.engine();
    assert!(engine.has_url(&a).await.unwrap());
    assert!(engine.has_url(&bee).await.unwrap(), "a Vary variant counts");
    assert!(!engine.has_url(&origin.url("/c")).await.unwrap());
    // Stale still counts as stored.
    clock.advance(secs(120));
    assert!(engine.has_url(&a).await.unwrap());
    assert_eq!(
        stored_urls(engine).await,
        vec![origin.url("/a?api_key=REDACTED"), origin.url("/b"),],
        "each URL once (two variants of /b), secrets redacted"
    );
    let e = engine.has_url("not a url").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidUrl);
}

async fn delete_expired_keeps_the_fresh_and_clear_removes_everything(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| match s.path.as_str() {
        "/short" => Reply::ok("short").header("cache-control", "max-age=10"),
        _ => Reply::ok("long").header("cache-control", "max-age=600"),
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    c.get(&origin.url("/short")).send().await.unwrap();
    c.get(&origin.url("/long")).send().await.unwrap();
    clock.advance(secs(60));
    let engine = c.engine();
    assert_eq!(engine.delete_expired().await.unwrap(), 1);
    assert!(!engine.has_url(&origin.url("/short")).await.unwrap());
    assert!(engine.has_url(&origin.url("/long")).await.unwrap());
    assert_eq!(engine.delete_expired().await.unwrap(), 0);
    assert_eq!(engine.clear().await.unwrap(), 1);
    assert!(stored_urls(engine).await.is_empty());
    // Gone means asked again.
    c.get(&origin.url("/long")).send().await.unwrap();
    assert_eq!(origin.count("/long"), 2);
}

async fn delete_urls_removes_each_url_and_its_redirect(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| match s.path.as_str() {
        "/old" => Reply::status(301).header("location", "/new"),
        _ => Reply::ok(format!("{} #{}", s.path, s.n)).header("cache-control", "max-age=600"),
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    for p in ["/old", "/x", "/y"] {
        c.get(&origin.url(p)).send().await.unwrap();
    }
    let engine = c.engine();
    assert!(
        engine.has_url(&origin.url("/old")).await.unwrap(),
        "through its redirect"
    );
    let removed = engine
        .delete_urls([origin.url("/x"), origin.url("/old")])
        .await
        .unwrap();
    assert_eq!(removed, 2, "/x, and /old's redirect pointer");
    assert!(!engine.has_url(&origin.url("/x")).await.unwrap());
    assert!(!engine.has_url(&origin.url("/old")).await.unwrap());
    assert!(engine.has_url(&origin.url("/y")).await.unwrap());
    assert_eq!(engine.delete_url(&origin.url("/y")).await.unwrap(), 1);
}

async fn the_backend_and_stores_are_reachable(b: B, kind: Kind) {
    let name = b.name();
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let engine = c.engine();
    assert_eq!(engine.backend().map(|b| b.name()), Some(name));
    let stores: Vec<String> = engine.stores().into_iter().map(|(n, _)| n).collect();
    assert_eq!(stores, ["http", "http_redirects"]);
}

async fn maintenance_over_a_response_cache_sees_each_repository(b: B) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("{{\"n\": {}}}", s.n)).header("cache-control", "max-age=60")
    })
    .await;
    let clock = clock();
    let cache = ResponseCache::<serde_json::Value>::builder("music")
        .clock(clock.clone())
        .create_repository(TemplateSettings::new("tracks", "/v1/tracks/{id}", JsonCodec).unwrap())
        .create_repository(TemplateSettings::new("albums", "/v1/albums/{id}", JsonCodec).unwrap())
        .connect(b)
        .await
        .unwrap();
    let c = CachedClient::builder()
        .clock(clock.clone())
        .build_with_cache(std::sync::Arc::new(cache))
        .await
        .unwrap();
    c.get(&origin.url("/v1/tracks/7")).send().await.unwrap();
    c.get(&origin.url("/v1/albums/3")).send().await.unwrap();
    let names: Vec<String> = c.stores().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["tracks", "albums", "http_redirects"]);
    assert_eq!(
        stored_urls(&c).await,
        vec![origin.url("/v1/albums/3"), origin.url("/v1/tracks/7")]
    );
    assert!(c.has_url(&origin.url("/v1/tracks/7")).await.unwrap());
    assert_eq!(c.clear().await.unwrap(), 2);
}

async fn purge_tag_removes_every_answer_carrying_the_tag(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        let r = Reply::ok(format!("{} #{}", s.path, s.n)).header("cache-control", "max-age=600");
        match s.path.as_str() {
            "/p/1" => r.header("cache-tag", "product-1, catalog"),
            "/p/2" => r.header("surrogate-key", "product-2 catalog"),
            "/stale" => r.header("cache-tag", "catalog"),
            _ => r,
        }
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    for p in ["/stale", "/p/1", "/p/2", "/other"] {
        c.get(&origin.url(p)).send().await.unwrap();
        if p == "/stale" {
            clock.advance(secs(3600));
        }
    }
    let engine = c.engine();
    assert_eq!(engine.purge_tag("product-2").await.unwrap(), 1);
    assert_eq!(
        engine.purge_tag("catalog").await.unwrap(),
        2,
        "/p/1 and the stale /stale"
    );
    for (p, kept) in [
        ("/stale", false),
        ("/p/1", false),
        ("/p/2", false),
        ("/other", true),
    ] {
        assert_eq!(engine.has_url(&origin.url(p)).await.unwrap(), kept, "{p}");
    }
    assert_eq!(engine.purge_tag("catalog").await.unwrap(), 0);
    // Purged means asked again.
    c.get(&origin.url("/p/1")).send().await.unwrap();
    assert_eq!(origin.count("/p/1"), 2);
    let e = engine.purge_tag("").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
}

async fn tag_headers_are_configurable(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("{} #{}", s.path, s.n))
            .header("cache-control", "max-age=600")
            .header("x-tags", "mine")
            .header("cache-tag", "theirs")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b.tag_headers(["X-Tags"])).await;
    c.get(&origin.url("/a")).send().await.unwrap();
    let engine = c.engine();
    assert_eq!(
        engine.purge_tag("theirs").await.unwrap(),
        0,
        "not a tag header here"
    );
    assert_eq!(engine.purge_tag("mine").await.unwrap(), 1);
}
