//! Freshness (RFC 9111 §4.2): how long a stored response is served.

use respcache_http::CacheOutcome;

use crate::front::{Kind, front};
use crate::origin::{Origin, Reply, http_date};
use crate::{B, client, clock, secs};

crate::backend_tests!(
    s_maxage_applies_only_to_a_shared_cache,
    private_is_stored_only_by_a_private_cache,
    ;
    fronts:
        fresh_hit_reads_exactly_like_the_origin_response,
        no_store_is_never_stored,
        max_age_counts_the_age_header,
        a_huge_age_header_is_stale_not_a_panic,
        expires_is_relative_to_date,
        heuristic_freshness_from_last_modified,
        no_cache_is_stored_but_always_revalidated,
        immutable_is_not_revalidated_on_reload,
        request_max_age_min_fresh_and_max_stale,
        request_only_if_cached_directive,
        default_expiry_applies_without_cache_headers,
        no_headers_and_no_default_means_revalidate,
);

async fn fresh_hit_reads_exactly_like_the_origin_response(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("v{}", s.n))
            .header("cache-control", "max-age=60")
            .header("content-type", "text/plain")
            .header("link", "<a>; rel=a")
            .header("link", "<b>; rel=b")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let first = c.get(&origin.url("/a")).send().await.unwrap();
    assert!(!first.from_cache());
    assert_eq!(first.outcome(), CacheOutcome::Miss);
    assert!(first.cache_status().stored());
    assert_eq!(first.text(), "v1");
    assert_eq!(
        first.expires_at(),
        Some(first.created_at().unwrap().saturating_add(secs(60)))
    );

    clock.advance(secs(30));
    let second = c.get(&origin.url("/a")).send().await.unwrap();
    assert_eq!(origin.count("/a"), 1);
    assert!(second.from_cache());
    assert_eq!(second.outcome(), CacheOutcome::Hit);
    assert_eq!(second.status(), first.status());
    assert_eq!(second.bytes(), first.bytes());
    assert_eq!(second.headers()["content-type"], "text/plain");
    let links: Vec<_> = second.headers().get_all("link").iter().collect();
    assert_eq!(
        links,
        ["<a>; rel=a", "<b>; rel=b"],
        "multi-valued headers kept in order"
    );
    assert_eq!(second.headers()["age"], "30");
    assert_eq!(second.created_at(), first.created_at());
    assert_eq!(second.expires_at(), first.expires_at());
    assert_eq!(second.cache_key(), first.cache_key());
    assert!(!second.is_expired());
    assert_eq!(
        second.url().map(|u| u.as_str()),
        Some(origin.url("/a").as_str())
    );
    assert_eq!(second.cache_status().to_string(), "respcache; hit; ttl=30");

    clock.advance(secs(31));
    let third = c.get(&origin.url("/a")).send().await.unwrap();
    assert_eq!(origin.count("/a"), 2);
    assert!(!third.from_cache());
    assert_eq!(third.text(), "v2");
}

async fn max_age_counts_the_age_header(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("v{}", s.n))
            .header("cache-control", "max-age=60")
            .header("age", "50")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    c.get(&origin.url("/a")).send().await.unwrap();
    clock.advance(secs(9));
    let hit = c.get(&origin.url("/a")).send().await.unwrap();
    assert!(hit.from_cache());
    assert_eq!(hit.headers()["age"], "59");
    clock.advance(secs(2));
    let miss = c.get(&origin.url("/a")).send().await.unwrap();
    assert!(
        !miss.from_cache(),
        "50 s old at arrival + 11 s > max-age=60"
    );
    assert_eq!(origin.count("/a"), 2);
}

/// An `Age` too large to add to (`CachePolicy::age` overflowed on it once
/// the response had been stored for any time, a panic in the request).
async fn a_huge_age_header_is_stale_not_a_panic(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("v{}", s.n))
            .header("cache-control", "max-age=60")
            .header("age", u64::MAX.to_string())
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    c.get(&origin.url("/a")).send().await.unwrap();
    clock.advance(secs(1));
    let again = c.get(&origin.url("/a")).send().await.unwrap();
    assert!(!again.from_cache(), "older than max-age: stale");
    assert_eq!(again.text(), "v2");
    assert_eq!(origin.count("/a"), 2);
}

async fn s_maxage_applies_only_to_a_shared_cache(b: B) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("v{}", s.n)).header("cache-control", "max-age=10, s-maxage=100")
    })
    .await;
    let clock = clock();
    let private = client(b.clone(), &clock, |b| b.cache_name("private")).await;
    let shared = client(b, &clock, |b| b.cache_name("shared").shared(true)).await;
    private.get(&origin.url("/p")).send().await.unwrap();
    shared.get(&origin.url("/s")).send().await.unwrap();
    clock.advance(secs(50));
    assert!(
        !private
            .get(&origin.url("/p"))
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    assert!(
        shared
            .get(&origin.url("/s"))
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    assert_eq!((origin.count("/p"), origin.count("/s")), (2, 1));
}

/// `Expires` counts from `Date` (RFC 9111 §4.2.1), and a `Date` in the
/// past makes the response that old on arrival (§4.2.3): an origin whose
/// clock is 1000 s behind, with `Expires` 1100 s after its `Date`, gives
/// 100 s of freshness.
async fn expires_is_relative_to_date(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("v{}", s.n))
            .header("date", http_date(-1000))
            .header("expires", http_date(100))
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    c.get(&origin.url("/e")).send().await.unwrap();
    clock.advance(secs(90));
    assert!(c.get(&origin.url("/e")).send().await.unwrap().from_cache());
    clock.advance(secs(20));
    assert!(!c.get(&origin.url("/e")).send().await.unwrap().from_cache());
    assert_eq!(origin.count("/e"), 2);
}

async fn heuristic_freshness_from_last_modified(b: B, kind: Kind) {
    // Modified 10 days before Date: 10% heuristic = 1 day fresh.
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("v{}", s.n))
            .header("date", http_date(0))
            .header("last-modified", http_date(-10 * 86_400))
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    c.get(&origin.url("/h")).send().await.unwrap();
    clock.advance(secs(23 * 3600));
    assert!(c.get(&origin.url("/h")).send().await.unwrap().from_cache());
    clock.advance(secs(2 * 3600));
    let r = c.get(&origin.url("/h")).send().await.unwrap();
    assert_eq!(origin.count("/h"), 2);
    assert!(
        origin
            .last()
            .unwrap()
            .headers
            .contains_key("if-modified-since"),
        "revalidated with Last-Modified"
    );
    assert!(!r.from_cache());
}

async fn no_store_is_never_stored(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("v{}", s.n)).header("cache-control", "no-store, max-age=60")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b.default_expiry(secs(600))).await;
    let first = c.get(&origin.url("/n")).send().await.unwrap();
    assert!(!first.cache_status().stored());
    let second = c.get(&origin.url("/n")).send().await.unwrap();
    assert!(!second.from_cache());
    assert_eq!(second.text(), "v2");
    // A request's own no-store is honoured too.
    let origin2 = Origin::without_date(|s| {
        Reply::ok(format!("v{}", s.n)).header("cache-control", "max-age=60")
    })
    .await;
    c.get(&origin2.url("/r"))
        .header("cache-control", "no-store")
        .send()
        .await
        .unwrap();
    assert!(!c.get(&origin2.url("/r")).send().await.unwrap().from_cache());
    assert_eq!(origin2.count("/r"), 2);
}

async fn no_cache_is_stored_but_always_revalidated(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        if s.headers.get("if-none-match").is_some_and(|v| v == "\"x\"") {
            Reply::status(304).header("etag", "\"x\"")
        } else {
            Reply::ok("body")
                .header("cache-control", "no-cache")
                .header("etag", "\"x\"")
        }
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b.default_expiry(secs(600))).await;
    c.get(&origin.url("/nc")).send().await.unwrap();
    let r = c.get(&origin.url("/nc")).send().await.unwrap();
    assert_eq!(origin.count("/nc"), 2);
    assert_eq!(r.outcome(), CacheOutcome::Revalidated);
    assert!(r.revalidated() && r.from_cache());
    assert_eq!(r.text(), "body");
}

async fn private_is_stored_only_by_a_private_cache(b: B) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("v{}", s.n)).header("cache-control", "private, max-age=60")
    })
    .await;
    let clock = clock();
    let private = client(b.clone(), &clock, |b| b.cache_name("private")).await;
    let shared = client(b, &clock, |b| b.cache_name("shared").shared(true)).await;
    private.get(&origin.url("/p")).send().await.unwrap();
    assert!(
        private
            .get(&origin.url("/p"))
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    shared.get(&origin.url("/s")).send().await.unwrap();
    assert!(
        !shared
            .get(&origin.url("/s"))
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    assert_eq!((origin.count("/p"), origin.count("/s")), (1, 2));
}

/// RFC 8246: a fresh `immutable` response is served on a reload
/// (`max-age=0`), not on a forced one (`no-cache`), and `immutable` alone
/// gives no freshness of its own.
async fn immutable_is_not_revalidated_on_reload(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        let cc = if s.path == "/i" {
            "max-age=100, immutable"
        } else {
            "immutable"
        };
        Reply::ok(format!("v{}", s.n)).header("cache-control", cc)
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b.default_expiry(secs(5))).await;
    let reload = |path: &str| {
        c.get(&origin.url(path))
            .header("cache-control", "max-age=0")
            .send()
    };
    c.get(&origin.url("/i")).send().await.unwrap();
    clock.advance(secs(50));
    assert!(reload("/i").await.unwrap().from_cache());
    let forced = c
        .get(&origin.url("/i"))
        .header("cache-control", "no-cache")
        .send();
    assert!(!forced.await.unwrap().from_cache());
    clock.advance(secs(101));
    assert!(!reload("/i").await.unwrap().from_cache());
    c.get(&origin.url("/bare")).send().await.unwrap();
    clock.advance(secs(6));
    assert!(
        !c.get(&origin.url("/bare"))
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    assert_eq!((origin.count("/i"), origin.count("/bare")), (3, 2));
}

async fn request_max_age_min_fresh_and_max_stale(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("v{}", s.n)).header("cache-control", "max-age=100")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/r");
    c.get(&url).send().await.unwrap();
    clock.advance(secs(50));
    // max-age: the stored response is 50 s old.
    assert!(
        c.get(&url)
            .header("cache-control", "max-age=60")
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    let r = c
        .get(&url)
        .header("cache-control", "max-age=30")
        .send()
        .await
        .unwrap();
    assert!(!r.from_cache());
    assert_eq!(origin.count("/r"), 2);
    // min-fresh: the new response has 100 s left.
    assert!(
        c.get(&url)
            .header("cache-control", "min-fresh=90")
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    clock.advance(secs(20));
    assert!(
        !c.get(&url)
            .header("cache-control", "min-fresh=90")
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    assert_eq!(origin.count("/r"), 3);
    // max-stale: 30 s past expiry.
    clock.advance(secs(130));
    let stale = c
        .get(&url)
        .header("cache-control", "max-stale=60")
        .send()
        .await
        .unwrap();
    assert!(stale.from_cache());
    assert_eq!(stale.outcome(), CacheOutcome::StaleHit);
    assert!(stale.is_expired());
    assert!(
        !c.get(&url)
            .header("cache-control", "max-stale=10")
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    assert_eq!(origin.count("/r"), 4);
}

async fn request_only_if_cached_directive(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("v{}", s.n)).header("cache-control", "max-age=100")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/o");
    let miss = c
        .get(&url)
        .header("cache-control", "only-if-cached")
        .send()
        .await
        .unwrap();
    assert_eq!(miss.status(), 504);
    assert_eq!(origin.total(), 0);
    c.get(&url).send().await.unwrap();
    let hit = c
        .get(&url)
        .header("cache-control", "only-if-cached")
        .send()
        .await
        .unwrap();
    assert_eq!((hit.status().as_u16(), hit.text().as_str()), (200, "v1"));
    clock.advance(secs(200));
    let stale = c
        .get(&url)
        .header("cache-control", "only-if-cached")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 504, "stale without max-stale is not usable");
    assert_eq!(origin.total(), 1);
}

async fn default_expiry_applies_without_cache_headers(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| Reply::ok(format!("v{}", s.n))).await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b.default_expiry(secs(60))).await;
    c.get(&origin.url("/d")).send().await.unwrap();
    clock.advance(secs(59));
    assert!(c.get(&origin.url("/d")).send().await.unwrap().from_cache());
    clock.advance(secs(2));
    assert_eq!(c.get(&origin.url("/d")).send().await.unwrap().text(), "v2");
    assert_eq!(origin.count("/d"), 2);
}

async fn no_headers_and_no_default_means_revalidate(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| Reply::ok(format!("v{}", s.n))).await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let first = c.get(&origin.url("/z")).send().await.unwrap();
    // A whole answer is stored (for stale-if-error); the tower and reqwest
    // front-ends stream, and pass on at once an answer nothing could serve
    // again (no freshness, no validator, no stale use).
    assert_eq!(
        first.cache_status().stored(),
        kind == Kind::Client,
        "stored only when read whole"
    );
    assert!(!c.get(&origin.url("/z")).send().await.unwrap().from_cache());
    assert_eq!(origin.count("/z"), 2);
}
