//! Validation (RFC 9111 §4.3), Vary (§4.1) and RFC 5861's stale-if-error /
//! stale-while-revalidate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use respcache_http::{CacheOutcome, Forward};

use crate::front::{Kind, front};
use crate::origin::{Origin, Reply};
use crate::{B, client, clock, secs};

crate::backend_tests!(
    stale_if_error_client_option,
    ;
    fronts:
        etag_revalidation_304_freshens_headers_and_keeps_the_body,
        vary_stores_each_variant_separately,
        last_modified_revalidation_uses_if_modified_since,
        revalidation_200_replaces_the_entry,
        stale_if_error_on_connection_error,
        stale_if_error_on_5xx_and_its_limits,
        stale_while_revalidate_serves_stale_and_refreshes_once,
        a_refresh_started_by_a_no_store_request_stores_nothing,
);

async fn etag_revalidation_304_freshens_headers_and_keeps_the_body(b: B, kind: Kind) {
    let version = Arc::new(AtomicU32::new(1));
    let v = version.clone();
    let origin = Origin::without_date(move |s| {
        let n = v.load(Ordering::SeqCst);
        if s.headers
            .get("if-none-match")
            .is_some_and(|e| e == "\"tag1\"")
        {
            Reply::status(304)
                .header("etag", "\"tag1\"")
                .header("cache-control", "max-age=120")
                .header("x-version", format!("{n}"))
                .header("content-encoding", format!("x-coding-{n}"))
        } else {
            Reply::ok("the body")
                .header("etag", "\"tag1\"")
                .header("cache-control", "max-age=60")
                .header("x-version", format!("{n}"))
                .header("content-encoding", format!("x-coding-{n}"))
                .header("x-keep", "1")
                .header("x-keep", "2")
        }
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/etag");
    let first = c.get(&url).send().await.unwrap();
    clock.advance(secs(61));
    version.store(2, Ordering::SeqCst);
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(origin.count("/etag"), 2);
    assert_eq!(origin.last().unwrap().headers["if-none-match"], "\"tag1\"");
    assert_eq!(r.outcome(), CacheOutcome::Revalidated);
    assert!(r.revalidated() && r.from_cache());
    assert_eq!(r.text(), "the body");
    assert_eq!(
        r.headers()["x-version"],
        "2",
        "304 headers replace stored ones"
    );
    assert_eq!(r.headers()["cache-control"], "max-age=120");
    // The stored bytes are the origin's own (never decoded here), so a
    // 304's Content-Encoding replaces the stored one (RFC 9111 §3.2 lets
    // only a cache that decoded them keep the old one).
    assert_eq!(r.headers()["content-encoding"], "x-coding-2");
    assert_eq!(
        r.headers().get_all("x-keep").iter().count(),
        2,
        "others kept, multi-valued"
    );
    assert_eq!(r.created_at(), first.created_at());
    assert_eq!(r.cache_status().forward(), Some(Forward::Stale));
    assert_eq!(r.cache_status().forward_status(), Some(304));
    // The new max-age=120 counts from the revalidation.
    clock.advance(secs(100));
    let hit = c.get(&url).send().await.unwrap();
    assert_eq!(hit.outcome(), CacheOutcome::Hit);
    assert_eq!(hit.headers()["x-version"], "2");
    assert_eq!(origin.count("/etag"), 2);
    // refresh() revalidates a fresh entry.
    let refreshed = c.get(&url).refresh().send().await.unwrap();
    assert_eq!(refreshed.outcome(), CacheOutcome::Revalidated);
    assert_eq!(origin.count("/etag"), 3);
}

async fn last_modified_revalidation_uses_if_modified_since(b: B, kind: Kind) {
    let lm = "Wed, 21 Oct 2015 07:28:00 GMT";
    let origin = Origin::without_date(move |s| {
        if s.headers.get("if-modified-since").is_some_and(|v| v == lm) {
            Reply::status(304).header("cache-control", "max-age=10")
        } else {
            Reply::ok("lm body")
                .header("last-modified", lm)
                .header("cache-control", "max-age=10")
        }
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/lm");
    c.get(&url).send().await.unwrap();
    clock.advance(secs(11));
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.outcome(), CacheOutcome::Revalidated);
    assert_eq!(r.text(), "lm body");
    assert_eq!(r.headers()["last-modified"], lm);
    assert!(c.get(&url).send().await.unwrap().from_cache());
    assert_eq!(origin.count("/lm"), 2);
}

async fn revalidation_200_replaces_the_entry(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("body {}", s.n))
            .header("etag", format!("\"v{}\"", s.n))
            .header("cache-control", "max-age=10")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/r");
    c.get(&url).send().await.unwrap();
    clock.advance(secs(11));
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(origin.last().unwrap().headers["if-none-match"], "\"v1\"");
    assert_eq!(r.outcome(), CacheOutcome::Miss);
    assert_eq!(r.text(), "body 2");
    let hit = c.get(&url).send().await.unwrap();
    assert_eq!((hit.text().as_str(), hit.from_cache()), ("body 2", true));
    assert_eq!(hit.headers()["etag"], "\"v2\"");
    assert_eq!(origin.count("/r"), 2);
}

async fn vary_stores_each_variant_separately(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        let lang = s
            .headers
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        Reply::ok(format!("hello in {lang} #{}", s.n))
            .header("vary", "Accept-Language")
            .header("cache-control", "max-age=60")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/v");
    let get = |lang: &'static str| {
        let c = c.clone();
        let url = url.clone();
        async move {
            c.get(&url)
                .header("accept-language", lang)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(get("en").await.text(), "hello in en #1");
    let fr = get("fr").await;
    assert_eq!(
        (fr.text().as_str(), fr.from_cache()),
        ("hello in fr #2", false)
    );
    assert_eq!(fr.cache_status().forward(), Some(Forward::VaryMiss));
    let en = get("en").await;
    assert_eq!(
        (en.text().as_str(), en.from_cache()),
        ("hello in en #1", true)
    );
    let fr = get("fr").await;
    assert_eq!(
        (fr.text().as_str(), fr.from_cache()),
        ("hello in fr #2", true)
    );
    let none = c.get(&url).send().await.unwrap();
    assert!(!none.from_cache(), "no header is a variant of its own");
    assert_eq!(origin.count("/v"), 3);
    assert_ne!(en.cache_key(), fr.cache_key());
}

async fn stale_if_error_on_connection_error(b: B, kind: Kind) {
    let origin = Origin::without_date(|_| {
        Reply::ok("good").header("cache-control", "max-age=10, stale-if-error=100")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/sie");
    c.get(&url).send().await.unwrap();
    // The origin goes away: its port refuses connections.
    let addr = origin.addr;
    drop(origin);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    clock.advance(secs(20));
    let r = c.get(&format!("http://{addr}/sie")).send().await.unwrap();
    assert_eq!(r.outcome(), CacheOutcome::StaleIfError);
    assert!(r.from_cache());
    assert_eq!(r.text(), "good");
    clock.advance(secs(100));
    let err = c
        .get(&format!("http://{addr}/sie"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        respcache_http::ErrorKind::Connection,
        "past the window: the error"
    );
}

async fn stale_if_error_on_5xx_and_its_limits(b: B, kind: Kind) {
    let fail = Arc::new(AtomicUsize::new(0));
    let f = fail.clone();
    let origin = Origin::without_date(move |s| {
        if f.load(Ordering::SeqCst) > 0 {
            return Reply::status(503).header("x-down", "yes");
        }
        match s.path.as_str() {
            "/ok" => Reply::ok("cached").header("cache-control", "max-age=10, stale-if-error=60"),
            _ => Reply::ok("strict").header(
                "cache-control",
                "max-age=10, must-revalidate, stale-if-error=60",
            ),
        }
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    c.get(&origin.url("/ok")).send().await.unwrap();
    c.get(&origin.url("/strict")).send().await.unwrap();
    fail.store(1, Ordering::SeqCst);
    clock.advance(secs(30));
    let r = c.get(&origin.url("/ok")).send().await.unwrap();
    assert_eq!(r.outcome(), CacheOutcome::StaleIfError);
    assert_eq!((r.status().as_u16(), r.text().as_str()), (200, "cached"));
    assert_eq!(r.cache_status().forward_status(), Some(503));
    let strict = c.get(&origin.url("/strict")).send().await.unwrap();
    assert_eq!(
        strict.status(),
        503,
        "must-revalidate forbids serving stale"
    );
    // A request's own stale-if-error extends the window.
    clock.advance(secs(60));
    assert_eq!(
        c.get(&origin.url("/ok")).send().await.unwrap().status(),
        503
    );
    let asked = c
        .get(&origin.url("/ok"))
        .header("cache-control", "stale-if-error=600")
        .send()
        .await
        .unwrap();
    assert_eq!(asked.outcome(), CacheOutcome::StaleIfError);
    assert_eq!(c.stats().stale_if_error, 2);
}

async fn stale_if_error_client_option(b: B) {
    let fail = Arc::new(AtomicUsize::new(0));
    let f = fail.clone();
    let origin = Origin::without_date(move |_| {
        if f.load(Ordering::SeqCst) > 0 {
            Reply::status(500)
        } else {
            Reply::ok("fine").header("cache-control", "max-age=10")
        }
    })
    .await;
    let clock = clock();
    let plain = client(b.clone(), &clock, |b| b.cache_name("plain")).await;
    let lenient = client(b, &clock, |b| {
        b.cache_name("lenient").stale_if_error(secs(3600))
    })
    .await;
    plain.get(&origin.url("/a")).send().await.unwrap();
    lenient.get(&origin.url("/a")).send().await.unwrap();
    fail.store(1, Ordering::SeqCst);
    clock.advance(secs(600));
    assert_eq!(
        plain.get(&origin.url("/a")).send().await.unwrap().status(),
        500
    );
    let r = lenient.get(&origin.url("/a")).send().await.unwrap();
    assert_eq!(
        (r.outcome(), r.text().as_str()),
        (CacheOutcome::StaleIfError, "fine")
    );
}

async fn stale_while_revalidate_serves_stale_and_refreshes_once(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        let r = Reply::ok(format!("v{}", s.n))
            .header("cache-control", "max-age=10, stale-while-revalidate=60");
        if s.n > 1 {
            r.delay(std::time::Duration::from_millis(300))
        } else {
            r
        }
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/swr");
    c.get(&url).send().await.unwrap();
    clock.advance(secs(20));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (c, url) = (c.clone(), url.clone());
        tasks.push(tokio::spawn(
            async move { c.get(&url).send().await.unwrap() },
        ));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.outcome(), CacheOutcome::StaleWhileRevalidate);
        assert_eq!(r.text(), "v1", "served stale at once");
    }
    c.wait_background().await;
    assert_eq!(
        origin.count("/swr"),
        2,
        "one background refresh for ten requests"
    );
    assert_eq!(c.stats().background_refreshes, 1);
    assert_eq!(c.in_flight(), 0);
    let fresh = c.get(&url).send().await.unwrap();
    assert_eq!(
        (fresh.outcome(), fresh.text().as_str()),
        (CacheOutcome::Hit, "v2")
    );
    // Past the window: a normal revalidation.
    clock.advance(secs(100));
    let r = c.get(&url).send().await.unwrap();
    assert_eq!((r.outcome(), r.text().as_str()), (CacheOutcome::Miss, "v3"));
}

/// RFC 9111 §5.2.1.5: nothing of a response to a `no-store` request is
/// stored — also when it is the background refresh that request started
/// (stale-while-revalidate): the stale entry stays, and the next request
/// without `no-store` refreshes it.
async fn a_refresh_started_by_a_no_store_request_stores_nothing(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("v{}", s.n))
            .header("cache-control", "max-age=10, stale-while-revalidate=60")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/swr-no-store");
    c.get(&url).send().await.unwrap();
    clock.advance(secs(20));
    let r = c
        .get(&url)
        .header("cache-control", "no-store")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.outcome(), r.text().as_str()),
        (CacheOutcome::StaleWhileRevalidate, "v1")
    );
    c.wait_background().await;
    assert_eq!(origin.count("/swr-no-store"), 2, "the refresh went out");
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(
        (r.outcome(), r.text().as_str()),
        (CacheOutcome::StaleWhileRevalidate, "v1"),
        "the no-store request's refresh was not stored"
    );
    c.wait_background().await;
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(
        (r.outcome(), r.text().as_str()),
        (CacheOutcome::Hit, "v3"),
        "a plain request's refresh is"
    );
}
