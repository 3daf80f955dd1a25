//! Builder options, per-request options and keys.

use futures::StreamExt;
use respcache_core::{Expiry, FieldKind, KeySchema, Name, Select, StoreSpec, Timestamp};
use respcache_http::{CacheMode, CacheOutcome, ResponseMeta};

use crate::front::{Kind, front};
use crate::origin::{Origin, Reply};
use crate::{B, client, clock, secs};

crate::backend_tests!(
    allowed_codes_default_to_200,
    match_headers_join_the_key,
    ignored_parameters_are_left_out_of_the_key_and_redacted,
    cache_control_off_uses_configured_expiry_only,
    read_only_mode_reads_but_never_writes,
    disabled_mode_always_goes_to_the_origin,
    ;
    fronts:
        equivalent_urls_share_a_key_and_different_ones_never_do,
        url_expiry_first_matching_pattern_wins,
        allowed_methods_default_to_get_and_head,
        post_is_cached_by_body_when_allowed,
        filter_predicate_decides_what_is_stored,
        per_request_expire_after_overrides_headers,
        force_refresh_fetches_anew_and_stores,
        only_if_cached_never_touches_the_network,
        a_requests_own_mode_overrides_the_clients,
);

fn versioned(s: &crate::origin::Seen) -> Reply {
    Reply::ok(format!("{} #{}", s.target, s.n)).header("cache-control", "max-age=600")
}

async fn equivalent_urls_share_a_key_and_different_ones_never_do(b: B, kind: Kind) {
    let origin = Origin::without_date(versioned).await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let port = origin.addr.port();
    let base = c
        .get(&format!("http://127.0.0.1:{port}/k?b=2&a=1"))
        .send()
        .await
        .unwrap();
    for same in [
        format!("HTTP://127.0.0.1:{port}/k?a=1&b=2"),
        format!("http://127.0.0.1:{port}/k?b=2&a=1#section"),
        format!("http://127.0.0.1:{port}/k?a=1&api_key=secret&b=2"),
    ] {
        let r = c.get(&same).send().await.unwrap();
        assert!(r.from_cache(), "{same} should hit");
        assert_eq!(r.cache_key(), base.cache_key());
    }
    let mut keys = vec![base.cache_key().unwrap().to_owned()];
    for other in [
        format!("http://127.0.0.1:{port}/k?a=1&b=3"),
        format!("http://127.0.0.1:{port}/k?a=1"),
        format!("http://127.0.0.1:{port}/K?a=1&b=2"),
        format!("http://127.0.0.1:{port}/k/?a=1&b=2"),
        format!("http://localhost:{port}/k?a=1&b=2"),
    ] {
        let r = c.get(&other).send().await.unwrap();
        assert!(!r.from_cache(), "{other} must not hit");
        keys.push(r.cache_key().unwrap().to_owned());
    }
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        keys.len(),
        "no two different requests share a key"
    );
}

async fn url_expiry_first_matching_pattern_wins(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| Reply::ok(format!("#{}", s.n))).await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| {
        b.url_expiry("127.0.0.1:*/long/*", secs(1000))
            .url_expiry("127.0.0.1:*/long/short/*", secs(10))
            .url_expiry("127.0.0.1*", secs(100))
            .default_expiry(secs(1))
    })
    .await;
    for p in ["/long/short/x", "/other"] {
        c.get(&origin.url(p)).send().await.unwrap();
    }
    clock.advance(secs(500));
    assert!(
        c.get(&origin.url("/long/short/x"))
            .send()
            .await
            .unwrap()
            .from_cache(),
        "first match: 1000 s"
    );
    assert!(
        !c.get(&origin.url("/other"))
            .send()
            .await
            .unwrap()
            .from_cache(),
        "host pattern: 100 s"
    );
    let r = c.get(&origin.url("/long/short/x")).send().await.unwrap();
    assert_eq!(
        r.expires_at().unwrap().as_millis() - r.created_at().unwrap().as_millis(),
        1_000_000
    );
}

/// `allowed_codes` (default 200) gates only lifetimes the client gives
/// (default, per-URL, per-request expiry, heuristics): a 404 with the
/// origin's `max-age` is stored by the HTTP rules; a 404 that would live by
/// the default expiry alone only when 404 is allowed (issue 14).
async fn allowed_codes_default_to_200(b: B) {
    let origin = Origin::without_date(|s| {
        let r = Reply::status(404).header("x-n", s.n.to_string());
        if s.path == "/explicit" {
            r.header("cache-control", "max-age=60")
        } else {
            r
        }
    })
    .await;
    let clock = clock();
    let default = client(b.clone(), &clock, |b| {
        b.cache_name("default").default_expiry(secs(60))
    })
    .await;
    let with_404 = client(b, &clock, |b| {
        b.cache_name("with404")
            .default_expiry(secs(60))
            .allowed_codes([200, 404])
    })
    .await;
    for c in [&default, &with_404] {
        c.get(&origin.url("/explicit")).send().await.unwrap();
        let r = c.get(&origin.url("/explicit")).send().await.unwrap();
        assert!(
            r.from_cache(),
            "explicit freshness: stored whatever the status"
        );
        assert_eq!(r.status(), 404);
    }
    default.get(&origin.url("/a")).send().await.unwrap();
    assert!(
        !default
            .get(&origin.url("/a"))
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    with_404.get(&origin.url("/b")).send().await.unwrap();
    let r = with_404.get(&origin.url("/b")).send().await.unwrap();
    assert!(r.from_cache());
    assert_eq!(r.status(), 404);
    assert_eq!(
        (
            origin.count("/explicit"),
            origin.count("/a"),
            origin.count("/b")
        ),
        (2, 2, 1)
    );
}

async fn allowed_methods_default_to_get_and_head(b: B, kind: Kind) {
    let origin = Origin::without_date(versioned).await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let p1 = c.post(&origin.url("/m")).body("x").send().await.unwrap();
    let p2 = c.post(&origin.url("/m")).body("x").send().await.unwrap();
    assert!(!p1.from_cache() && !p2.from_cache());
    assert_eq!(p2.outcome(), CacheOutcome::Bypass);
    let put = c.put(&origin.url("/m")).send().await.unwrap();
    assert_eq!(put.outcome(), CacheOutcome::Bypass);
    assert_eq!(origin.count("/m"), 3);
}

async fn post_is_cached_by_body_when_allowed(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!(
            "echo {} #{}",
            String::from_utf8_lossy(&s.body),
            s.n
        ))
        .header("cache-control", "max-age=60")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| {
        b.allowed_methods([http::Method::GET, http::Method::POST])
    })
    .await;
    let url = origin.url("/graphql");
    let a1 = c
        .post(&url)
        .json(&serde_json::json!({"q": "a"}))
        .send()
        .await
        .unwrap();
    let a2 = c
        .post(&url)
        .json(&serde_json::json!({"q": "a"}))
        .send()
        .await
        .unwrap();
    let b1 = c
        .post(&url)
        .json(&serde_json::json!({"q": "b"}))
        .send()
        .await
        .unwrap();
    assert!(!a1.from_cache() && a2.from_cache() && !b1.from_cache());
    assert_eq!(a2.text(), a1.text());
    assert_eq!(origin.count("/graphql"), 2);
}

async fn match_headers_join_the_key(b: B) {
    let origin = Origin::without_date(versioned).await;
    let clock = clock();
    let c = client(b.clone(), &clock, |b| {
        b.cache_name("matched").match_headers(["Accept"])
    })
    .await;
    let plain = client(b, &clock, |b| b.cache_name("plain")).await;
    for client in [&c, &plain] {
        client
            .get(&origin.url("/h"))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
    }
    let json = c
        .get(&origin.url("/h"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert!(!json.from_cache());
    assert!(
        c.get(&origin.url("/h"))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    let plain_json = plain
        .get(&origin.url("/h"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert!(
        plain_json.from_cache(),
        "without match_headers the header is not in the key"
    );
    assert_eq!(origin.count("/h"), 3);
}

async fn ignored_parameters_are_left_out_of_the_key_and_redacted(b: B) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("#{}", s.n))
            .header("cache-control", "max-age=60")
            .header("x-api-key", "echoed-s3cret-header")
    })
    .await;
    let clock = clock();
    let c = client(b.clone(), &clock, |b| {
        b.cache_name("redact").ignore_parameter("session")
    })
    .await;
    let url = origin.url("/r?q=1&api_key=s3cret-query&session=s3cret-session");
    c.get(&url)
        .bearer_auth("s3cret-token")
        .header("x-api-key", "s3cret-key")
        .send()
        .await
        .unwrap();
    assert_eq!(
        origin.last().unwrap().headers["authorization"],
        "Bearer s3cret-token",
        "sent as given"
    );
    assert!(
        origin
            .last()
            .unwrap()
            .target
            .contains("api_key=s3cret-query")
    );
    let other = origin.url("/r?q=1&api_key=another&session=other");
    let hit = c
        .get(&other)
        .bearer_auth("another-token")
        .send()
        .await
        .unwrap();
    assert!(
        hit.from_cache(),
        "ignored parameters and headers are not in the key"
    );
    assert_eq!(origin.count("/r"), 1);
    // Nothing secret is stored, in the payload, the meta or the key.
    let spec = StoreSpec::new(
        Name::new("redact").unwrap(),
        Name::new("http").unwrap(),
        KeySchema::new([("request", FieldKind::Text)]).unwrap(),
    );
    let store = b.open_store(&spec).await.unwrap();
    let entries: Vec<_> = store
        .scan(Select::All, Timestamp::from_millis(0))
        .collect::<Vec<_>>()
        .await;
    assert_eq!(entries.len(), 1);
    let entry = entries.into_iter().next().unwrap().unwrap();
    let meta_bytes = entry.meta.clone().unwrap();
    let haystack = [
        entry.key.encode().as_bytes(),
        &entry.payload[..],
        &meta_bytes[..],
    ]
    .concat();
    let text = String::from_utf8_lossy(&haystack);
    assert!(!text.contains("s3cret"), "a secret was stored: {text}");
    let meta = ResponseMeta::decode(&meta_bytes).unwrap();
    assert!(
        meta.url.contains("api_key=REDACTED") && meta.url.contains("session=REDACTED"),
        "{}",
        meta.url
    );
    assert_eq!(meta.header_map()["x-api-key"], "REDACTED");
}

async fn filter_predicate_decides_what_is_stored(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        let body = if s.path == "/keep" { "keep" } else { "skip" };
        Reply::ok(format!("{body} #{}", s.n)).header("cache-control", "max-age=60")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| {
        b.filter(|r| r.text().starts_with("keep"))
    })
    .await;
    for _ in 0..2 {
        c.get(&origin.url("/keep")).send().await.unwrap();
        c.get(&origin.url("/skip")).send().await.unwrap();
    }
    assert_eq!((origin.count("/keep"), origin.count("/skip")), (1, 2));
}

async fn cache_control_off_uses_configured_expiry_only(b: B) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("#{}", s.n)).header("cache-control", "no-store, max-age=0")
    })
    .await;
    let clock = clock();
    let c = client(b.clone(), &clock, |b| {
        b.cache_name("off")
            .cache_control(false)
            .default_expiry(secs(60))
    })
    .await;
    c.get(&origin.url("/x")).send().await.unwrap();
    clock.advance(secs(30));
    assert!(c.get(&origin.url("/x")).send().await.unwrap().from_cache());
    // Without any expiry, responses never go stale.
    let forever = client(b, &clock, |b| b.cache_name("forever").cache_control(false)).await;
    let r = forever.get(&origin.url("/y")).send().await.unwrap();
    assert_eq!(r.expires_at(), None);
    clock.advance(secs(10 * 365 * 86_400));
    assert!(
        forever
            .get(&origin.url("/y"))
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    assert_eq!((origin.count("/x"), origin.count("/y")), (1, 1));
}

async fn read_only_mode_reads_but_never_writes(b: B) {
    let origin = Origin::without_date(versioned).await;
    let clock = clock();
    let writer = client(b.clone(), &clock, |b| b.cache_name("shared")).await;
    let reader = client(b, &clock, |b| {
        b.cache_name("shared").mode(CacheMode::ReadOnly)
    })
    .await;
    writer.get(&origin.url("/stored")).send().await.unwrap();
    assert!(
        reader
            .get(&origin.url("/stored"))
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    reader.get(&origin.url("/new")).send().await.unwrap();
    let again = reader.get(&origin.url("/new")).send().await.unwrap();
    assert!(!again.from_cache());
    assert!(!again.cache_status().stored());
    assert_eq!(reader.stats().stored, 0);
    assert_eq!((origin.count("/stored"), origin.count("/new")), (1, 2));
}

async fn disabled_mode_always_goes_to_the_origin(b: B) {
    let origin = Origin::without_date(versioned).await;
    let clock = clock();
    let writer = client(b.clone(), &clock, |b| b.cache_name("shared")).await;
    let off = client(b, &clock, |b| b.cache_name("shared").disabled()).await;
    writer.get(&origin.url("/a")).send().await.unwrap();
    let r = off.get(&origin.url("/a")).send().await.unwrap();
    assert!(!r.from_cache());
    assert_eq!(r.outcome(), CacheOutcome::Bypass);
    assert_eq!(origin.count("/a"), 2);
}

async fn per_request_expire_after_overrides_headers(b: B, kind: Kind) {
    let origin = Origin::without_date(versioned).await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let r = c
        .get(&origin.url("/short"))
        .expire_after(secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.expires_at(),
        Some(r.created_at().unwrap().saturating_add(secs(5)))
    );
    c.get(&origin.url("/never"))
        .expire_after(Expiry::Never)
        .send()
        .await
        .unwrap();
    clock.advance(secs(10));
    assert!(
        !c.get(&origin.url("/short"))
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    clock.advance(secs(100_000));
    assert!(
        c.get(&origin.url("/never"))
            .send()
            .await
            .unwrap()
            .from_cache()
    );
}

async fn force_refresh_fetches_anew_and_stores(b: B, kind: Kind) {
    let origin = Origin::without_date(versioned).await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    c.get(&origin.url("/f")).send().await.unwrap();
    let r = c
        .get(&origin.url("/f"))
        .force_refresh()
        .send()
        .await
        .unwrap();
    assert!(!r.from_cache());
    assert!(!origin.last().unwrap().headers.contains_key("if-none-match"));
    assert_eq!(r.text(), "/f #2");
    let hit = c.get(&origin.url("/f")).send().await.unwrap();
    assert_eq!((hit.text().as_str(), hit.from_cache()), ("/f #2", true));
    assert_eq!(origin.count("/f"), 2);
}

async fn only_if_cached_never_touches_the_network(b: B, kind: Kind) {
    let origin = Origin::without_date(versioned).await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let miss = c
        .get(&origin.url("/o"))
        .only_if_cached()
        .send()
        .await
        .unwrap();
    assert_eq!(miss.status(), 504);
    assert_eq!(miss.outcome(), CacheOutcome::OnlyIfCachedMiss);
    assert!(!miss.from_cache());
    assert_eq!(origin.total(), 0);
    c.get(&origin.url("/o")).send().await.unwrap();
    let hit = c
        .get(&origin.url("/o"))
        .only_if_cached()
        .send()
        .await
        .unwrap();
    assert_eq!((hit.status().as_u16(), hit.from_cache()), (200, true));
    assert_eq!(origin.total(), 1);
}

async fn a_requests_own_mode_overrides_the_clients(b: B, kind: Kind) {
    let origin = Origin::without_date(versioned).await;
    let clock = clock();
    let c = front(kind, b.clone(), &clock, |b| b).await;
    let url = origin.url("/m");
    // Disabled: straight to the origin, nothing stored.
    let off = c.get(&url).mode(CacheMode::Disabled).send().await.unwrap();
    assert_eq!(off.outcome(), CacheOutcome::Bypass);
    let stored = c.get(&url).send().await.unwrap();
    assert_eq!(
        (stored.outcome(), stored.text()),
        (CacheOutcome::Miss, "/m #2".to_owned())
    );
    // Disabled even with a fresh answer stored: not read either.
    let off = c.get(&url).mode(CacheMode::Disabled).send().await.unwrap();
    assert_eq!(off.text(), "/m #3");
    // Read-only: a forced refresh fetches, but the new answer is not kept.
    let ro = c
        .get(&url)
        .mode(CacheMode::ReadOnly)
        .force_refresh()
        .send()
        .await
        .unwrap();
    assert_eq!(ro.text(), "/m #4");
    assert!(!ro.cache_status().stored());
    let hit = c.get(&url).send().await.unwrap();
    assert_eq!(
        (hit.outcome(), hit.text()),
        (CacheOutcome::Hit, "/m #2".to_owned())
    );
    assert_eq!(origin.count("/m"), 4);

    // A read-only client writes what a request asks to write.
    let ro_client = front(kind, b, &clock, |b| b.cache_name("ro").read_only()).await;
    let other = origin.url("/n");
    let rw = ro_client
        .get(&other)
        .mode(CacheMode::ReadWrite)
        .send()
        .await
        .unwrap();
    assert!(rw.cache_status().stored());
    assert!(ro_client.get(&other).send().await.unwrap().from_cache());
    assert_eq!(origin.count("/n"), 1);
}
