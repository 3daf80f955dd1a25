//! Invalidation, HEAD, redirects and request coalescing.

use std::time::Duration;

use respcache_http::CacheOutcome;

use crate::front::{Kind, front};
use crate::origin::{Origin, Reply};
use crate::{B, clock};

crate::backend_tests!(
    ;
    fronts:
        successful_unsafe_methods_invalidate_stored_answers,
        head_is_answered_from_a_stored_get,
        concurrent_identical_misses_make_one_origin_request_and_one_write,
        failed_unsafe_methods_invalidate_nothing,
        redirects_store_the_final_response_and_both_urls_hit,
        different_requests_are_not_coalesced,
        clients_sharing_a_backend_fetch_once_with_cross_process,
);

async fn successful_unsafe_methods_invalidate_stored_answers(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| match s.method.as_str() {
        "GET" => Reply::ok(format!("{} #{}", s.path, s.n)).header("cache-control", "max-age=600"),
        _ if s.path == "/items" => Reply::status(201).header("location", "/items/2"),
        _ => Reply::status(204),
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    for method in [http::Method::PUT, http::Method::PATCH, http::Method::DELETE] {
        let url = origin.url(&format!("/res-{method}"));
        c.get(&url).send().await.unwrap();
        assert!(c.get(&url).send().await.unwrap().from_cache());
        c.request(method.clone(), &url).send().await.unwrap();
        assert!(
            !c.get(&url).send().await.unwrap().from_cache(),
            "{method} invalidates"
        );
        assert!(
            c.get(&url).send().await.unwrap().from_cache(),
            "stored again after"
        );
    }
    // POST invalidates its URL and a same-origin Location.
    for p in ["/items", "/items/2", "/items/3"] {
        c.get(&origin.url(p)).send().await.unwrap();
    }
    c.post(&origin.url("/items"))
        .body("new")
        .send()
        .await
        .unwrap();
    assert!(
        !c.get(&origin.url("/items"))
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    assert!(
        !c.get(&origin.url("/items/2"))
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    assert!(
        c.get(&origin.url("/items/3"))
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    assert_eq!(c.invalidate(&origin.url("/items/3")).await.unwrap(), 1);
    assert!(
        !c.get(&origin.url("/items/3"))
            .send()
            .await
            .unwrap()
            .from_cache()
    );
}

async fn failed_unsafe_methods_invalidate_nothing(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| match s.method.as_str() {
        "GET" => Reply::ok("x").header("cache-control", "max-age=600"),
        _ => Reply::status(500),
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    c.get(&origin.url("/a")).send().await.unwrap();
    assert_eq!(
        c.post(&origin.url("/a")).send().await.unwrap().status(),
        500
    );
    assert!(c.get(&origin.url("/a")).send().await.unwrap().from_cache());
}

async fn head_is_answered_from_a_stored_get(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        Reply::ok("twelve bytes")
            .header("cache-control", "max-age=60")
            .header("x-method", s.method.as_str())
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/h");
    let head_miss = c.head(&url).send().await.unwrap();
    assert!(!head_miss.from_cache());
    assert!(
        !head_miss.cache_status().stored(),
        "a HEAD answer is not stored as a GET"
    );
    let get = c.get(&url).send().await.unwrap();
    assert!(!get.from_cache());
    let head = c.head(&url).send().await.unwrap();
    assert!(head.from_cache());
    assert_eq!(head.outcome(), CacheOutcome::Hit);
    assert!(head.bytes().is_empty());
    assert_eq!(head.headers()["content-length"], "12");
    assert_eq!(head.headers()["x-method"], "GET");
    assert_eq!(origin.count("/h"), 2);
}

async fn redirects_store_the_final_response_and_both_urls_hit(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| match s.path.as_str() {
        "/old" => Reply::status(301).header("location", "/middle"),
        "/middle" => Reply::status(302).header("location", "/new?x=1"),
        _ => Reply::ok(format!("final #{}", s.n)).header("cache-control", "max-age=60"),
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let first = c.get(&origin.url("/old")).send().await.unwrap();
    assert_eq!(first.text(), "final #1");
    assert_eq!(first.url().map(|u| u.path()), Some("/new"));
    assert_eq!(origin.total(), 3);
    let via_old = c.get(&origin.url("/old")).send().await.unwrap();
    assert!(via_old.from_cache());
    assert_eq!(via_old.text(), "final #1");
    assert_eq!(via_old.url().map(|u| u.path()), Some("/new"));
    let direct = c.get(&origin.url("/new?x=1")).send().await.unwrap();
    assert!(direct.from_cache());
    assert_eq!(direct.cache_key(), via_old.cache_key());
    assert_eq!(origin.total(), 3);
    // A reqwest client follows redirects itself: the cache sees one
    // request.
    let hops = if kind == Kind::Reqwest { 1 } else { 3 };
    assert_eq!(
        c.stats().origin_requests,
        hops,
        "redirect hops count as origin requests"
    );
}

async fn concurrent_identical_misses_make_one_origin_request_and_one_write(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("slow #{}", s.n))
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(300))
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/slow");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (c, url) = (c.clone(), url.clone());
        tasks.push(tokio::spawn(
            async move { c.get(&url).send().await.unwrap() },
        ));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.text(), "slow #1", "everyone gets the same answer");
        outcomes.push(r.outcome());
    }
    assert_eq!(origin.count("/slow"), 1);
    let stats = c.stats();
    assert_eq!(stats.stored, 1, "one write");
    assert_eq!(stats.origin_requests, 1);
    let leaders = outcomes
        .iter()
        .filter(|o| **o == CacheOutcome::Miss)
        .count();
    let waited = outcomes
        .iter()
        .filter(|o| **o == CacheOutcome::Coalesced)
        .count();
    let hits = outcomes.iter().filter(|o| **o == CacheOutcome::Hit).count();
    assert_eq!(leaders, 1);
    assert_eq!(waited + hits, 19);
    assert!(waited > 0);
    assert_eq!(c.in_flight(), 0, "no per-key state is left behind");
}

async fn different_requests_are_not_coalesced(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("{} #{}", s.path, s.n)).delay(Duration::from_millis(200))
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let (a, bb) = tokio::join!(
        c.get(&origin.url("/a")).send(),
        c.get(&origin.url("/b")).send()
    );
    assert_eq!(a.unwrap().text(), "/a #1");
    assert_eq!(bb.unwrap().text(), "/b #1");
    assert_eq!(origin.total(), 2);
}

/// Two clients over one backend stand for two processes: with
/// `cross_process`, a miss both have at once is fetched once (the other
/// serves what the lease holder stored); without it, twice.
async fn clients_sharing_a_backend_fetch_once_with_cross_process(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("slow #{}", s.n))
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(300))
    })
    .await;
    let clock = clock();
    let across = |b: respcache_http::CachedClientBuilder| {
        b.cross_process(respcache_core::CrossProcess::new())
    };
    let one = front(kind, b.clone(), &clock, across).await;
    let two = front(kind, b.clone(), &clock, across).await;
    let url = origin.url("/shared");
    let (r1, r2) = tokio::join!(one.get(&url).send(), two.get(&url).send());
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(origin.count("/shared"), 1);
    assert_eq!(r1.text(), r2.text());
    let outcomes = [r1.outcome(), r2.outcome()];
    assert!(outcomes.contains(&CacheOutcome::Miss), "{outcomes:?}");
    assert!(outcomes.contains(&CacheOutcome::Coalesced), "{outcomes:?}");

    // Without the option, each client fetches.
    let plain_one = front(kind, b.clone(), &clock, |b| b.cache_name("plain")).await;
    let plain_two = front(kind, b, &clock, |b| b.cache_name("plain")).await;
    let other = origin.url("/plain");
    let (p1, p2) = tokio::join!(plain_one.get(&other).send(), plain_two.get(&other).send());
    p1.unwrap();
    p2.unwrap();
    assert_eq!(origin.count("/plain"), 2);
}
