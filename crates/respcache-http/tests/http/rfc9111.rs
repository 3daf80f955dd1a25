//! RFC 9111 rules through the library (issue 14), one test per rule; the
//! same rules end to end through `respcache serve` are in
//! `crates/respcache-cli/tests/cli_serve_rfc9111.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use respcache_http::http::HeaderName;
use respcache_http::{CacheOutcome, HEURISTICALLY_CACHEABLE};

use crate::front::{Kind, front};
use crate::origin::{Origin, Reply, http_date};
use crate::{B, client, clock, secs};

crate::backend_tests!(
    a_shared_client_never_reuses_private_in_any_case,
    a_targeted_field_overrides_cache_control,
    a_partial_answer_from_a_redirect_is_not_kept,
    a_head_through_a_redirect_to_a_url_with_a_secret_freshens,
    ;
    fronts:
        callers_conditionals_are_answered_304_from_the_cache,
        no_store_in_any_case_is_never_stored,
        explicit_freshness_stores_any_final_status,
        a_default_expiry_stores_only_allowed_codes,
        a_callers_conditional_on_a_stale_entry_revalidates_with_the_caches_validators,
        ranges_are_cut_from_a_stored_response,
        a_date_in_the_past_makes_a_response_old_on_arrival,
        a_post_answer_for_its_own_url_is_reused_by_get,
        a_stored_partial_answer_serves_the_ranges_it_holds,
        a_head_answer_freshens_or_staleness_marks_the_stored_get,
        a_head_answer_the_cache_may_not_keep_updates_nothing,
        a_head_answer_from_another_url_updates_nothing,
        a_revalidation_a_request_may_not_keep_leaves_the_stored_answer,
        a_shared_cache_never_coalesces_other_credentials,
        a_shared_cache_treats_key_credentials_as_authorization,
        a_stored_answer_keeps_no_hop_by_hop_field,
        a_304_leaves_the_stored_fields_its_connection_names,
);

/// Security regression: `private` in any spelling or form is not reused by
/// a shared cache (a private one stores it).
async fn a_shared_client_never_reuses_private_in_any_case(b: B) {
    let origin = Origin::without_date(|s| {
        let cc = match s.path.as_str() {
            "/0" => "private, max-age=3600",
            "/1" => "Private, max-age=3600",
            "/2" => "PRIVATE, max-age=3600",
            _ => "private=\"set-cookie\", max-age=3600",
        };
        Reply::ok(format!("#{}", s.n)).header("cache-control", cc)
    })
    .await;
    let clock = clock();
    let shared = client(b.clone(), &clock, |b| b.cache_name("shared").shared(true)).await;
    let private = client(b, &clock, |b| b.cache_name("private")).await;
    for p in ["/0", "/1", "/2", "/3"] {
        shared.get(&origin.url(p)).send().await.unwrap();
        assert!(
            !shared
                .get(&origin.url(p))
                .send()
                .await
                .unwrap()
                .from_cache(),
            "{p}"
        );
        private.get(&origin.url(p)).send().await.unwrap();
        assert!(
            private
                .get(&origin.url(p))
                .send()
                .await
                .unwrap()
                .from_cache(),
            "{p}"
        );
        assert_eq!(origin.count(p), 3, "{p}");
    }
}

/// Security regression: `no-store` in any case is never stored.
async fn no_store_in_any_case_is_never_stored(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        let cc = if s.path == "/a" {
            "No-Store, max-age=3600"
        } else {
            "nO-StOrE"
        };
        Reply::ok("x").header("cache-control", cc)
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b.shared(true)).await;
    for p in ["/a", "/b"] {
        c.get(&origin.url(p)).send().await.unwrap();
        let again = c.get(&origin.url(p)).send().await.unwrap();
        assert!(!again.from_cache() && !again.cache_status().stored(), "{p}");
        assert_eq!(origin.count(p), 2);
    }
}

/// §3: any final status with explicit freshness is stored by default.
async fn explicit_freshness_stores_any_final_status(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        let status: u16 = s.path.trim_start_matches('/').parse().unwrap();
        Reply::status(status).header("cache-control", "max-age=3600")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    for status in [203, 204, 299, 400, 404, 410, 500, 502, 599] {
        let p = format!("/{status}");
        c.get(&origin.url(&p)).send().await.unwrap();
        let again = c.get(&origin.url(&p)).send().await.unwrap();
        assert!(again.from_cache(), "{status}");
        assert_eq!(again.status().as_u16(), status);
        assert_eq!(origin.count(&p), 1);
    }
}

/// A lifetime from the client (default expiry) stores only
/// `allowed_codes`; the heuristically cacheable set is exported for a
/// cache that follows the HTTP rules alone.
async fn a_default_expiry_stores_only_allowed_codes(b: B, kind: Kind) {
    let origin =
        Origin::without_date(|s| Reply::status(if s.path == "/ok" { 200 } else { 500 })).await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b.default_expiry(secs(3600))).await;
    for (p, cached) in [("/ok", true), ("/err", false)] {
        c.get(&origin.url(p)).send().await.unwrap();
        assert_eq!(
            c.get(&origin.url(p)).send().await.unwrap().from_cache(),
            cached,
            "{p}"
        );
    }
    assert!(HEURISTICALLY_CACHEABLE.contains(&404) && !HEURISTICALLY_CACHEABLE.contains(&500));
}

/// §4.3.2: a caller's `If-None-Match` / `If-Modified-Since` get a `304`
/// from a fresh stored response, without the origin.
async fn callers_conditionals_are_answered_304_from_the_cache(b: B, kind: Kind) {
    let origin = Origin::without_date(|_| {
        Reply::ok("body")
            .header("cache-control", "max-age=3600")
            .header("etag", "\"v1\"")
            .header("last-modified", http_date(-86_400))
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/c");
    c.get(&url).send().await.unwrap();
    let r = c
        .get(&url)
        .header("if-none-match", "W/\"v1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], "\"v1\"");
    assert!(r.bytes().is_empty());
    let r = c
        .get(&url)
        .header("if-modified-since", http_date(0))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = c
        .get(&url)
        .header("if-none-match", "\"v2\"")
        .send()
        .await
        .unwrap();
    assert_eq!((r.status().as_u16(), r.text()), (200, "body".to_owned()));
    assert_eq!(origin.count("/c"), 1);
}

/// §4.3.1–4.3.2: on a stale entry the cache revalidates with its own
/// validators (not the caller's), then answers the caller's precondition.
async fn a_callers_conditional_on_a_stale_entry_revalidates_with_the_caches_validators(
    b: B,
    kind: Kind,
) {
    let origin = Origin::without_date(|s| {
        if s.headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            Reply::status(304)
                .header("etag", "\"v1\"")
                .header("cache-control", "max-age=60")
        } else {
            Reply::ok("body")
                .header("etag", "\"v1\"")
                .header("cache-control", "max-age=60")
        }
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/s");
    c.get(&url).send().await.unwrap();
    clock.advance(secs(120));
    let r = c
        .get(&url)
        .header("if-none-match", "\"old\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.outcome(), CacheOutcome::Revalidated);
    assert_eq!((r.status().as_u16(), r.text()), (200, "body".to_owned()));
    assert_eq!(origin.last().unwrap().headers["if-none-match"], "\"v1\"");
    clock.advance(secs(120));
    let r = c
        .get(&url)
        .header("if-none-match", "\"v1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(origin.count("/s"), 3);
}

/// RFC 9110 §14: one byte range is cut from a stored response.
async fn ranges_are_cut_from_a_stored_response(b: B, kind: Kind) {
    let origin =
        Origin::without_date(|_| Reply::ok("0123456789").header("cache-control", "max-age=3600"))
            .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/r");
    c.get(&url).send().await.unwrap();
    let r = c
        .get(&url)
        .header("range", "bytes=3-5")
        .send()
        .await
        .unwrap();
    assert_eq!((r.status().as_u16(), r.text()), (206, "345".to_owned()));
    assert_eq!(r.headers()["content-range"], "bytes 3-5/10");
    let r = c
        .get(&url)
        .header("range", "bytes=10-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    let r = c
        .get(&url)
        .header("range", "bytes=0-1,4-5")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text()),
        (200, "0123456789".to_owned())
    );
    assert_eq!(origin.count("/r"), 1);
}

/// §4.2.3: the apparent age (arrival minus `Date`) counts.
async fn a_date_in_the_past_makes_a_response_old_on_arrival(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("#{}", s.n))
            .header("date", http_date(-3000))
            .header("cache-control", "max-age=3600")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/d");
    let first = c.get(&url).send().await.unwrap();
    let left = first.expires_at().unwrap().as_millis() - first.created_at().unwrap().as_millis();
    assert!(
        (595_000..=601_000).contains(&left),
        "{left} ms left, not ~600 s"
    );
    let hit = c.get(&url).send().await.unwrap();
    assert!(
        hit.headers()["age"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 2999
    );
    clock.advance(secs(601));
    assert!(!c.get(&url).send().await.unwrap().from_cache());
}

/// RFC 9213: a targeted field the client obeys replaces `Cache-Control`.
async fn a_targeted_field_overrides_cache_control(b: B) {
    let origin = Origin::without_date(|_| {
        Reply::ok("x")
            .header("cdn-cache-control", "max-age=3600")
            .header("cache-control", "no-store")
    })
    .await;
    let clock = clock();
    let plain = client(b.clone(), &clock, |b| b.cache_name("plain")).await;
    let gateway = client(b, &clock, |b| {
        b.cache_name("gateway")
            .targeted_cache_control(HeaderName::from_static("cdn-cache-control"))
    })
    .await;
    for c in [&plain, &gateway] {
        c.get(&origin.url("/t")).send().await.unwrap();
    }
    assert!(
        !plain
            .get(&origin.url("/t"))
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    assert!(
        gateway
            .get(&origin.url("/t"))
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    assert_eq!(origin.count("/t"), 3);
}

/// RFC 9110 §9.3.3: a `POST` answer with explicit freshness and its own URL
/// in `Content-Location` answers the next `GET` of that URL; without
/// `Content-Location` it does not.
async fn a_post_answer_for_its_own_url_is_reused_by_get(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        let reply =
            Reply::ok(format!("{} #{}", s.method, s.n)).header("cache-control", "max-age=3600");
        if s.path == "/named" {
            reply.header("content-location", "/named")
        } else {
            reply
        }
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    for (p, reused) in [("/named", true), ("/unnamed", false)] {
        let posted = c.post(&origin.url(p)).body("12345").send().await.unwrap();
        assert_eq!(posted.text(), "POST #1", "{p}");
        let got = c.get(&origin.url(p)).send().await.unwrap();
        assert_eq!(got.from_cache(), reused, "{p}");
        let want = if reused { "POST #1" } else { "GET #2" };
        assert_eq!(got.text(), want, "{p}");
    }
}

/// RFC 9111 §3.3: a `206` to a range request is stored when nothing
/// complete is, and answers later requests for ranges inside it (cut to
/// them); a range outside it, or a request for the whole, goes to the
/// origin, and the complete answer replaces the partial one.
async fn a_stored_partial_answer_serves_the_ranges_it_holds(b: B, kind: Kind) {
    const BODY: &str = "0123456789";
    let origin = Origin::without_date(|s| {
        let range = s
            .headers
            .get("range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes="))
            .and_then(|v| v.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
        match range {
            Some((first, last)) => Reply::ok(BODY[first..=last].to_owned())
                .with_status(206)
                .header("content-range", format!("bytes {first}-{last}/10"))
                .header("cache-control", "max-age=3600"),
            None => Reply::ok(BODY).header("cache-control", "max-age=3600"),
        }
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/p");
    let ask = |range: Option<&'static str>| {
        let request = c.get(&url);
        let request = match range {
            Some(r) => request.header("range", r),
            None => request,
        };
        request.send()
    };
    // (range asked, from the cache, status, body, Content-Range)
    let steps: [(Option<&str>, bool, u16, &str, &str); 6] = [
        (Some("bytes=2-6"), false, 206, "23456", "bytes 2-6/10"),
        (Some("bytes=2-6"), true, 206, "23456", "bytes 2-6/10"),
        (Some("bytes=3-4"), true, 206, "34", "bytes 3-4/10"),
        (Some("bytes=1-4"), false, 206, "1234", "bytes 1-4/10"),
        (None, false, 200, BODY, ""),
        (Some("bytes=7-9"), true, 206, "789", "bytes 7-9/10"),
    ];
    for (i, (range, cached, status, body, content_range)) in steps.into_iter().enumerate() {
        let r = ask(range).await.unwrap();
        assert_eq!(
            (r.from_cache(), r.status().as_u16(), r.text().as_str()),
            (cached, status, body),
            "step {i}: {range:?}"
        );
        let got = r
            .headers()
            .get("content-range")
            .map_or("", |v| v.to_str().unwrap());
        assert_eq!(got, content_range, "step {i}: {range:?}");
    }
    assert_eq!(origin.count("/p"), 3);
}

/// A partial answer that came through a redirect is not kept: stored under
/// the final URL with a pointer from the URL asked, it would answer a
/// request for the whole through that pointer.
async fn a_partial_answer_from_a_redirect_is_not_kept(b: B) {
    let origin = Origin::without_date(|s| match s.path.as_str() {
        "/a" => Reply::status(302).header("location", "/b"),
        _ if s.headers.contains_key("range") => Reply::ok("0123")
            .with_status(206)
            .header("content-range", "bytes 0-3/10")
            .header("cache-control", "max-age=3600"),
        _ => Reply::ok("0123456789").header("cache-control", "max-age=3600"),
    })
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| b).await;
    let url = origin.url("/a");
    let part = c
        .get(&url)
        .header("range", "bytes=0-3")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (part.status().as_u16(), part.text()),
        (206, "0123".to_owned())
    );
    let whole = c.get(&url).send().await.unwrap();
    assert_eq!(
        (whole.status().as_u16(), whole.text()),
        (200, "0123456789".to_owned())
    );
    assert_eq!(origin.count("/b"), 2);
}

/// RFC 9111 §4.3.5: a `200` to a `HEAD` the cache sent updates the stored
/// `GET` answer when its validators (and `Content-Length`) match — new
/// headers, a new lifetime — and otherwise marks it stale.
async fn a_head_answer_freshens_or_staleness_marks_the_stored_get(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        let head = s.method == "HEAD";
        let tag = if s.path == "/changed" && head {
            "\"v2\""
        } else {
            "\"v1\""
        };
        let mut reply = if head {
            Reply::status(200)
                .header("template-a", "2")
                .header("cache-control", "max-age=3600")
        } else {
            Reply::ok("body")
                .header("template-a", "1")
                .header("cache-control", "max-age=60")
        };
        if s.path == "/modified" {
            // The same ETag, another Last-Modified on the HEAD.
            let day = if head { "07" } else { "06" };
            reply = reply.header("last-modified", format!("Sun, {day} Nov 1994 08:49:37 GMT"));
        }
        reply.header("etag", tag)
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    // The same validator: the stale GET answer is fresh again, with the
    // HEAD's headers.
    let url = origin.url("/same");
    c.get(&url).send().await.unwrap();
    clock.advance(secs(120));
    let head = c.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let got = c.get(&url).send().await.unwrap();
    assert!(got.from_cache(), "freshened by the HEAD");
    assert_eq!(got.text(), "body");
    assert_eq!(got.headers()["template-a"], "2");
    assert_eq!(origin.count("/same"), 2, "one GET, one HEAD");
    // Another validator: the fresh GET answer is stale from then on.
    let url = origin.url("/changed");
    c.get(&url).send().await.unwrap();
    c.head(&url)
        .header("cache-control", "no-cache")
        .send()
        .await
        .unwrap();
    let got = c.get(&url).send().await.unwrap();
    assert!(!got.from_cache(), "marked stale by the HEAD");
    assert_eq!(origin.count("/changed"), 3, "GET, HEAD, GET");
    // The same ETag but another Last-Modified: every validator the HEAD
    // carries must match (RFC 9111 §4.3.5), so this one marks it stale too.
    let url = origin.url("/modified");
    c.get(&url).send().await.unwrap();
    clock.advance(secs(120));
    c.head(&url).send().await.unwrap();
    let got = c.get(&url).send().await.unwrap();
    assert!(!got.from_cache(), "freshened despite another Last-Modified");
    assert_eq!(origin.count("/modified"), 3, "GET, HEAD, GET");
}

/// A `HEAD` answer a shared cache may not keep (`private`, to a request
/// with `Authorization`) must not rewrite the stored `GET` answer others
/// are served: not its lifetime, not its `Set-Cookie` (RFC 9111 §3, §3.5).
async fn a_head_answer_the_cache_may_not_keep_updates_nothing(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        let reply = if s.method == "HEAD" {
            Reply::status(200)
                .header("cache-control", "private, max-age=600")
                .header("set-cookie", "sid=alice")
        } else {
            Reply::ok("public body").header("cache-control", "public, max-age=60")
        };
        reply.header("etag", "\"v1\"")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b.shared(true)).await;
    let url = origin.url("/p");
    c.get(&url).send().await.unwrap();
    clock.advance(secs(120));
    let head = c
        .head(&url)
        .header("authorization", "Bearer alice")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let got = c.get(&url).send().await.unwrap();
    assert!(
        got.headers().get("set-cookie").is_none(),
        "Alice's cookie went into the shared answer"
    );
    assert!(!got.from_cache(), "the private HEAD answer freshened it");
    assert_eq!(origin.count("/p"), 3, "GET, HEAD, GET");
}

/// A `HEAD` answered from another URL (the resource moved, the client
/// followed the redirect) describes another answer: the stored one is not
/// freshened with its headers.
async fn a_head_answer_from_another_url_updates_nothing(b: B, kind: Kind) {
    let moved = Arc::new(AtomicBool::new(false));
    let m = Arc::clone(&moved);
    let origin = Origin::without_date(move |s| {
        if s.path == "/a" && m.load(Ordering::SeqCst) {
            return Reply::status(302).header("location", "/b");
        }
        if s.path == "/b" {
            return Reply::ok("b body")
                .header("cache-control", "max-age=3600")
                .header("template-a", "b");
        }
        Reply::ok("a body")
            .header("cache-control", "max-age=60")
            .header("template-a", "a")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/a");
    c.get(&url).send().await.unwrap();
    clock.advance(secs(120));
    moved.store(true, Ordering::SeqCst);
    c.head(&url).send().await.unwrap();
    let got = c.get(&url).send().await.unwrap();
    assert!(
        !(got.from_cache() && got.text() == "a body"),
        "/a's stale answer was freshened by /b's HEAD answer (template-a: {:?})",
        got.headers().get("template-a")
    );
}

/// A `304` to a request whose answer the cache may not keep because of the
/// request itself (`no-store`; `Authorization` in a shared cache) leaves
/// the stored answer as it was: still fresh for everyone else.
async fn a_revalidation_a_request_may_not_keep_leaves_the_stored_answer(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        if s.headers
            .get("if-none-match")
            .is_some_and(|t| t == "\"v1\"")
        {
            Reply::status(304).header("etag", "\"v1\"")
        } else {
            Reply::ok("shared body")
                .header("cache-control", "max-age=600")
                .header("etag", "\"v1\"")
        }
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b.shared(true)).await;
    let url = origin.url("/r");
    c.get(&url).send().await.unwrap();
    for (name, value, cc) in [
        ("authorization", "Bearer x", "no-cache"),
        ("x-other", "1", "no-cache, no-store"),
    ] {
        let asked = c
            .get(&url)
            .header(name, value)
            .header("cache-control", cc)
            .send()
            .await
            .unwrap();
        assert_eq!(asked.text(), "shared body");
        let got = c.get(&url).send().await.unwrap();
        assert!(
            got.from_cache(),
            "a 304 to a request with {name} and {cc} made the stored answer stale"
        );
    }
    assert_eq!(origin.count("/r"), 3, "the GET and the two revalidations");
}

/// In a shared cache two requests in flight together with other
/// credentials each get their own answer: never coalesced (RFC 9111 §3.5).
async fn a_shared_cache_never_coalesces_other_credentials(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        let who = s
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("nobody")
            .to_owned();
        Reply::ok(format!("the account of {who}"))
            .header("cache-control", "private")
            .delay(std::time::Duration::from_millis(300))
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b.shared(true)).await;
    let url = origin.url("/me");
    let (alice, bob) = tokio::join!(
        c.get(&url).header("authorization", "alice").send(),
        c.get(&url).header("authorization", "bob").send(),
    );
    assert_eq!(alice.unwrap().text(), "the account of alice");
    assert_eq!(bob.unwrap().text(), "the account of bob");
    assert_eq!(origin.count("/me"), 2);
}

/// A `HEAD` of a URL that redirects, answered from the final URL's stored
/// answer through the redirect pointer, freshens that answer when the
/// final URL holds a secret the pointer keeps redacted (`api_key`).
async fn a_head_through_a_redirect_to_a_url_with_a_secret_freshens(b: B) {
    let origin = Origin::without_date(|s| {
        if s.path == "/dl" {
            return Reply::status(302).header("location", "/file?api_key=k");
        }
        let reply = if s.method == "HEAD" {
            Reply::status(200)
                .header("cache-control", "max-age=3600")
                .header("template-a", "2")
        } else {
            Reply::ok("file")
                .header("cache-control", "max-age=60")
                .header("template-a", "1")
        };
        reply.header("etag", "\"v1\"")
    })
    .await;
    let clock = clock();
    let c = client(b, &clock, |b| b).await;
    let url = origin.url("/dl");
    assert_eq!(c.get(&url).send().await.unwrap().text(), "file");
    clock.advance(secs(120));
    assert_eq!(c.head(&url).send().await.unwrap().status(), 200);
    let got = c.get(&url).send().await.unwrap();
    assert!(
        got.from_cache(),
        "the HEAD through the redirect did not freshen it"
    );
    assert_eq!(got.headers()["template-a"], "2");
}

/// The credentials a key leaves out (`api_key`, `X-API-Key`: they are
/// `DEFAULT_IGNORED`, so they never split the key) count in a shared cache
/// as `Authorization` does (RFC 9111 §3.5): an answer to them is kept only
/// when it says `public` (or `s-maxage`, `must-revalidate`), so one user's
/// answer is never another's.
async fn a_shared_cache_treats_key_credentials_as_authorization(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        let key = s
            .target
            .split_once("?api_key=")
            .map(|(_, k)| k)
            .or_else(|| s.headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .unwrap_or("nobody")
            .to_owned();
        let cc = if s.path == "/pub" {
            "public, max-age=600"
        } else {
            "max-age=600"
        };
        Reply::ok(format!("data of {key}")).header("cache-control", cc)
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b.shared(true)).await;
    for user in ["alice", "bob"] {
        let got = c
            .get(&origin.url(&format!("/q?api_key={user}")))
            .send()
            .await
            .unwrap();
        assert_eq!(got.text(), format!("data of {user}"));
        let got = c
            .get(&origin.url("/h"))
            .header("x-api-key", user)
            .send()
            .await
            .unwrap();
        assert_eq!(got.text(), format!("data of {user}"));
    }
    assert_eq!((origin.count("/q"), origin.count("/h")), (2, 2));
    // A public answer is one for everyone.
    for user in ["alice", "bob"] {
        let got = c
            .get(&origin.url("/pub"))
            .header("x-api-key", user)
            .send()
            .await
            .unwrap();
        assert_eq!(got.text(), "data of alice");
    }
    assert_eq!(origin.count("/pub"), 1);
}

/// §3.1 (RFC 9110 §7.6.1): `Connection`, the fields it names and the other
/// hop-by-hop fields describe one connection; they are left out when an
/// answer is stored, so a hit never replays the origin's (and a proxy need
/// not strip them from every hit).
async fn a_stored_answer_keeps_no_hop_by_hop_field(b: B, kind: Kind) {
    let origin = Origin::without_date(|_| {
        Reply::ok("x")
            .header("cache-control", "max-age=3600")
            .header("connection", "x-conn-token")
            .header("x-conn-token", "per connection")
            .header("keep-alive", "timeout=5")
            .header("proxy-authenticate", "Basic realm=origin")
            .header("x-end-to-end", "kept")
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    c.get(&origin.url("/h")).send().await.unwrap();
    let hit = c.get(&origin.url("/h")).send().await.unwrap();
    assert!(hit.from_cache());
    for hop in [
        "connection",
        "x-conn-token",
        "keep-alive",
        "proxy-authenticate",
    ] {
        assert!(
            hit.headers().get(hop).is_none(),
            "{hop} came back from the cache: {:?}",
            hit.headers()
        );
    }
    assert_eq!(hit.headers()["x-end-to-end"], "kept");
}

/// RFC 9110 §7.6.1: a field a 304's `Connection` names is hop-by-hop for
/// that message: it neither replaces nor removes the stored one (the
/// stored `ETag` still validates the next revalidation).
async fn a_304_leaves_the_stored_fields_its_connection_names(b: B, kind: Kind) {
    let origin = Origin::without_date(|s| {
        if s.headers.get("if-none-match").is_some() {
            Reply::status(304)
                .header("connection", "etag")
                .header("etag", "\"v1\"")
                .header("cache-control", "max-age=60")
        } else {
            Reply::ok("body")
                .header("etag", "\"v1\"")
                .header("cache-control", "max-age=60")
        }
    })
    .await;
    let clock = clock();
    let c = front(kind, b, &clock, |b| b).await;
    let url = origin.url("/e");
    c.get(&url).send().await.unwrap();
    for _ in 0..2 {
        clock.advance(secs(120));
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.outcome(), CacheOutcome::Revalidated);
        assert_eq!(r.headers()["etag"], "\"v1\"");
        assert_eq!(origin.last().unwrap().headers["if-none-match"], "\"v1\"");
    }
}
