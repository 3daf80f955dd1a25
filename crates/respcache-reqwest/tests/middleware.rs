//! The reqwest middleware against a local hyper origin on 127.0.0.1, on the
//! memory and SQLite backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use respcache_conformance::origin::{Origin, Reply};
use respcache_core::{Backend, MemoryBackend};
use respcache_http::CachedClient;
use respcache_reqwest::{Cache, CacheFacts, CacheOutcome, CacheStatus, RequestOptions};

/// An origin: `/fresh` (max-age=60), `/etag` (no-cache + ETag, 304 to a
/// matching If-None-Match), `/plain` (no cache headers), `/lang` (Vary:
/// Accept-Language), POST anywhere (201, body recorded). Each body is
/// `PATH #N LANG` (`created #N` for a POST), `N` the path's request count.
async fn origin() -> Origin {
    Origin::start(|seen| {
        let n = seen.n;
        if seen.method == http::Method::POST {
            return Reply::ok(format!("created #{n}")).with_status(201);
        }
        let path = seen.path.as_str();
        let lang = seen
            .headers
            .get("accept-language")
            .map_or("-", |v| v.to_str().unwrap());
        let reply = Reply::ok(format!("{path} #{n} {lang}"));
        match path {
            "/fresh" => reply.header("cache-control", "max-age=60"),
            "/etag" => {
                let reply = reply
                    .header("cache-control", "no-cache")
                    .header("etag", "\"v1\"");
                if seen
                    .headers
                    .get("if-none-match")
                    .is_some_and(|v| v == "\"v1\"")
                {
                    reply.with_status(304)
                } else {
                    reply
                }
            }
            "/lang" => reply
                .header("cache-control", "max-age=60")
                .header("vary", "accept-language"),
            _ => reply,
        }
    })
    .await
}

/// The bodies of the POSTs `origin` received.
fn posted(origin: &Origin) -> Vec<Bytes> {
    origin
        .seen()
        .into_iter()
        .filter(|s| s.method == http::Method::POST)
        .map(|s| s.body)
        .collect()
}

async fn client(backend: Arc<dyn Backend>) -> (ClientWithMiddleware, Cache) {
    let layer = CachedClient::builder().layer(backend).await.unwrap();
    let reqwest = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let cache = Cache::new(&layer, reqwest.clone());
    (
        ClientBuilder::new(reqwest).with(cache.clone()).build(),
        cache,
    )
}

fn status(r: &reqwest::Response) -> CacheStatus {
    let status = *r.extensions().get::<CacheStatus>().unwrap();
    assert_eq!(
        r.headers()["cache-status"].to_str().unwrap(),
        status.to_string()
    );
    status
}

async fn hit_after_miss_with_facts_in_extensions(b: Arc<dyn Backend>) {
    let origin = origin().await;
    let base = origin.url("");
    let (c, cache) = client(b).await;
    let url = format!("{base}/fresh?x=1");
    let first = c.get(&url).send().await.unwrap();
    assert_eq!(status(&first).outcome(), CacheOutcome::Miss);
    assert!(status(&first).stored());
    assert_eq!(first.url().as_str(), url);
    assert_eq!(first.text().await.unwrap(), "/fresh #1 -");
    let second = c.get(&url).send().await.unwrap();
    assert_eq!(status(&second).outcome(), CacheOutcome::Hit);
    let facts = second.extensions().get::<CacheFacts>().unwrap().clone();
    assert!(facts.from_cache() && !facts.is_expired());
    assert!(facts.expires_at() > facts.created_at());
    assert_eq!(second.url().as_str(), url);
    assert_eq!(second.status(), 200);
    assert_eq!(second.text().await.unwrap(), "/fresh #1 -");
    assert_eq!(origin.count("/fresh"), 1);
    assert_eq!(cache.client().stats().hits, 1);
}

async fn per_request_options_from_extensions(b: Arc<dyn Backend>) {
    let origin = origin().await;
    let base = origin.url("");
    let (c, _) = client(b).await;
    // only-if-cached: never the origin; 504 when nothing is stored.
    let r = c
        .get(format!("{base}/fresh"))
        .with_extension(RequestOptions::new().only_if_cached())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(origin.count("/fresh"), 0);
    // expire_after stores an answer without cache headers.
    let plain = format!("{base}/plain");
    let opts = RequestOptions::new().expire_after(Duration::from_secs(60));
    c.get(&plain).with_extension(opts).send().await.unwrap();
    let r = c.get(&plain).send().await.unwrap();
    assert_eq!(status(&r).outcome(), CacheOutcome::Hit);
    assert_eq!(origin.count("/plain"), 1);
    // refresh revalidates: the origin answers 304, the stored body stays.
    let etag = format!("{base}/etag");
    assert_eq!(
        c.get(&etag).send().await.unwrap().text().await.unwrap(),
        "/etag #1 -"
    );
    let r = c
        .get(&etag)
        .with_extension(RequestOptions::new().refresh())
        .send()
        .await
        .unwrap();
    assert_eq!(status(&r).outcome(), CacheOutcome::Revalidated);
    assert_eq!(r.text().await.unwrap(), "/etag #1 -");
    assert_eq!(origin.count("/etag"), 2);
    // force_refresh fetches anew.
    let fresh = format!("{base}/fresh");
    c.get(&fresh).send().await.unwrap();
    let r = c
        .get(&fresh)
        .with_extension(RequestOptions::new().force_refresh())
        .send()
        .await
        .unwrap();
    assert_ne!(status(&r).outcome(), CacheOutcome::Hit);
    assert_eq!(r.text().await.unwrap(), "/fresh #2 -");
}

async fn vary_and_unsafe_methods(b: Arc<dyn Backend>) {
    let origin = origin().await;
    let base = origin.url("");
    let (c, _) = client(b).await;
    let url = format!("{base}/lang");
    let get = |lang: &'static str| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let r = c
                .get(&url)
                .header("accept-language", lang)
                .send()
                .await
                .unwrap();
            (status(&r).outcome(), r.text().await.unwrap())
        }
    };
    assert_eq!(
        get("en").await,
        (CacheOutcome::Miss, "/lang #1 en".to_owned())
    );
    assert_eq!(get("fr").await.1, "/lang #2 fr");
    assert_eq!(
        get("en").await,
        (CacheOutcome::Hit, "/lang #1 en".to_owned())
    );
    // A POST goes through with its body and invalidates the URL.
    let r = c.post(&url).body("a new track").send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(posted(&origin), [Bytes::from("a new track")]);
    assert_eq!(get("en").await.0, CacheOutcome::Miss);
}

async fn origin_errors_are_middleware_errors(b: Arc<dyn Backend>) {
    // A port nothing listens on.
    let port = respcache_conformance::net::spare_port().unwrap();
    let url = format!("http://127.0.0.1:{port}/gone");
    let (c, _) = client(b).await;
    let e = c.get(&url).send().await.unwrap_err();
    assert!(
        matches!(e, reqwest_middleware::Error::Middleware(_)),
        "{e:?}"
    );
}

async fn memory() -> Arc<dyn Backend> {
    Arc::new(MemoryBackend::new())
}

async fn sqlite() -> Arc<dyn Backend> {
    Arc::new(respcache_sqlite::SqliteBackend::temp().await.unwrap())
}

macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::memory().await).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::sqlite().await).await
                }
            )*
        }
    };
}

backend_tests!(
    hit_after_miss_with_facts_in_extensions,
    per_request_options_from_extensions,
    vary_and_unsafe_methods,
    origin_errors_are_middleware_errors,
);
