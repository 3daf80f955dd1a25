//! `respcache serve` against RFC 9111 (issue 14), end to end: the built
//! binary in private and `--shared` mode in front of a scripted local
//! origin. The origin answers what the query asks for — `status=N`, and
//! `h=Name:Value` once per header — so each test states its response in
//! its URL. The case-insensitivity tests are security regression tests.

// Test helpers assert: a failed call is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use respcache_conformance::origin::{Origin, Reply, Seen};

mod serve_common;
use serve_common::Proxy;

/// Every bounded wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// The scripted origin (the test kit's, counting requests per path and
/// query): the query sets the answer's status (`status=`), body (`body=`,
/// else `answer N`) and headers (`h=name: value`, repeatable).
async fn start_origin() -> Origin {
    Origin::builder().count_by_target().start(answer).await
}

fn answer(seen: &Seen) -> Reply {
    let url = url::Url::parse(&format!("http://o{}", seen.target)).unwrap();
    let mut reply = Reply::ok(format!("answer {}", seen.n));
    for (k, v) in url.query_pairs() {
        match &*k {
            "status" => reply = reply.with_status(v.parse::<u16>().unwrap()),
            "body" => reply.body = Bytes::from(v.into_owned()),
            "h" => {
                let (name, value) = v.split_once(':').unwrap();
                reply = reply.header(name, value.trim());
            }
            _ => {}
        }
    }
    reply
}

/// `/path?…` with the response headers `hs` (and optionally a status).
fn script(path: &str, status: Option<u16>, hs: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if let Some(s) = status {
        q.append_pair("status", &s.to_string());
    }
    for (n, v) in hs {
        q.append_pair("h", &format!("{n}:{v}"));
    }
    format!("{path}?{}", q.finish())
}

/// The proxy, private or shared, with a 2 s upstream timeout.
fn proxy(upstream: &str, shared: bool) -> Proxy {
    let extra: &[&str] = if shared {
        &["--timeout", "2s", "--shared"]
    } else {
        &["--timeout", "2s"]
    };
    Proxy::start(upstream, extra)
}

struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }

    fn hit(&self) -> bool {
        self.header("cache-status").contains("hit")
    }
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> Got {
    let mut req = Request::get(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = tokio::time::timeout(
        WAIT,
        client.request(req.body(Full::new(Bytes::new())).unwrap()),
    )
    .await
    .expect("an answer in time")
    .expect("an answer");
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(WAIT, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    Got {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn get(url: &str) -> Got {
    get_with(url, &[]).await
}

/// Both proxies over one origin.
async fn both() -> (Origin, [Proxy; 2]) {
    let origin = start_origin().await;
    let private = proxy(&origin.url(""), false);
    let shared = proxy(&origin.url(""), true);
    (origin, [private, shared])
}

/// Security regression (issue 14): `private` in any spelling or form is
/// never served to a second client of a shared cache; a private cache
/// stores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_proxy_never_reuses_private_in_any_case() {
    let (origin, [private, shared]) = both().await;
    for (i, cc) in [
        "private, max-age=3600",
        "Private, max-age=3600",
        "PRIVATE, max-age=3600",
        "private=\"set-cookie\", max-age=3600",
    ]
    .into_iter()
    .enumerate()
    {
        let shared_path = script(&format!("/s{i}"), None, &[("Cache-Control", cc)]);
        for _ in 0..2 {
            assert!(
                !get(&format!("{}{shared_path}", shared.url)).await.hit(),
                "{cc}"
            );
        }
        assert_eq!(
            origin.count(&shared_path),
            2,
            "{cc}: both reached the origin"
        );
        let private_path = script(&format!("/p{i}"), None, &[("Cache-Control", cc)]);
        get(&format!("{}{private_path}", private.url)).await;
        assert!(
            get(&format!("{}{private_path}", private.url)).await.hit(),
            "{cc}"
        );
    }
}

/// Security regression (issue 14): `no-store` in any case is never stored,
/// in either mode, even with `max-age`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_store_in_any_case_is_never_stored() {
    let (origin, proxies) = both().await;
    for (m, proxy) in proxies.iter().enumerate() {
        for (i, cc) in [
            "no-store, max-age=3600",
            "No-Store, max-age=3600",
            "nO-StOrE",
        ]
        .into_iter()
        .enumerate()
        {
            let path = script(&format!("/{m}/{i}"), None, &[("Cache-Control", cc)]);
            get(&format!("{}{path}", proxy.url)).await;
            assert!(!get(&format!("{}{path}", proxy.url)).await.hit(), "{cc}");
            assert_eq!(origin.count(&path), 2, "{cc}");
        }
    }
}

/// RFC 9111 §3: any final status with explicit freshness is stored; a
/// status that is not heuristically cacheable is not stored without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_final_status_with_explicit_freshness_is_stored() {
    let (origin, proxies) = both().await;
    for (m, proxy) in proxies.iter().enumerate() {
        for status in [200, 203, 299, 404, 410, 500, 503, 599] {
            let path = script(
                &format!("/{m}/{status}"),
                Some(status),
                &[("Cache-Control", "max-age=3600")],
            );
            get(&format!("{}{path}", proxy.url)).await;
            let again = get(&format!("{}{path}", proxy.url)).await;
            assert!(again.hit(), "{status}");
            assert_eq!(again.status.as_u16(), status);
        }
        let lm = "Mon, 01 Jan 2024 00:00:00 GMT";
        let heuristic = script(&format!("/{m}/h404"), Some(404), &[("Last-Modified", lm)]);
        get(&format!("{}{heuristic}", proxy.url)).await;
        assert!(
            get(&format!("{}{heuristic}", proxy.url)).await.hit(),
            "404 is heuristically cacheable"
        );
        let not = script(&format!("/{m}/h403"), Some(403), &[("Last-Modified", lm)]);
        get(&format!("{}{not}", proxy.url)).await;
        assert!(
            !get(&format!("{}{not}", proxy.url)).await.hit(),
            "403 is not"
        );
        assert_eq!(origin.count(&not), 2);
    }
}

/// RFC 9111 §4.3.2: a client's conditional request is answered `304`
/// from a fresh stored response; one that does not match gets the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_conditionals_are_answered_from_the_cache() {
    let (origin, proxies) = both().await;
    for (m, proxy) in proxies.iter().enumerate() {
        let path = script(
            &format!("/{m}/c"),
            None,
            &[
                ("Cache-Control", "max-age=3600"),
                ("ETag", "\"v1\""),
                ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ],
        );
        let url = format!("{}{path}", proxy.url);
        get(&url).await;
        let inm = get_with(&url, &[("If-None-Match", "\"v1\"")]).await;
        assert_eq!(inm.status, 304);
        assert_eq!(inm.header("etag"), "\"v1\"");
        assert!(inm.body.is_empty());
        let ims = get_with(
            &url,
            &[("If-Modified-Since", "Tue, 02 Jan 2024 00:00:00 GMT")],
        )
        .await;
        assert_eq!(ims.status, 304);
        let other = get_with(&url, &[("If-None-Match", "\"v2\"")]).await;
        assert_eq!(
            (other.status.as_u16(), other.body.as_ref()),
            (200, &b"answer 1"[..])
        );
        assert_eq!(origin.count(&path), 1);
    }
}

/// RFC 9110 §14 / RFC 9111 §3.3: a byte range is served from a stored
/// complete response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_are_served_from_a_stored_complete_response() {
    let (origin, [private, _]) = both().await;
    let path = format!(
        "{}&body=0123456789",
        script("/r", None, &[("Cache-Control", "max-age=3600")])
    );
    let url = format!("{}{path}", private.url);
    get(&url).await;
    let part = get_with(&url, &[("Range", "bytes=2-4")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body.as_ref(), b"234");
    assert_eq!(part.header("content-range"), "bytes 2-4/10");
    let suffix = get_with(&url, &[("Range", "bytes=-3")]).await;
    assert_eq!(suffix.body.as_ref(), b"789");
    let none = get_with(&url, &[("Range", "bytes=20-")]).await;
    assert_eq!(none.status, 416);
    assert_eq!(none.header("content-range"), "bytes */10");
    assert_eq!(origin.count(&path), 1);
}

/// RFC 9110 §5.6.7, RFC 9111 §5.1/§5.3: the obsolete date forms are read,
/// an invalid `Expires` is already expired, `Age` uses its first value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_and_ages_are_read_as_the_rfcs_say() {
    let (origin, [private, _]) = both().await;
    let cases = [
        ("/rfc850", "Expires", "Sunday, 06-Nov-44 08:49:37 GMT", true),
        ("/asctime", "Expires", "Sun Nov  6 08:49:37 2044", true),
        ("/invalid", "Expires", "0", false),
        ("/utc", "Expires", "Sun, 06 Nov 2044 08:49:37 UTC", false),
    ];
    for (p, n, v, cached) in cases {
        let path = script(p, None, &[(n, v)]);
        get(&format!("{}{path}", private.url)).await;
        assert_eq!(
            get(&format!("{}{path}", private.url)).await.hit(),
            cached,
            "{p}"
        );
    }
    let old = script(
        "/age",
        None,
        &[("Cache-Control", "max-age=3600"), ("Age", "7200, 0")],
    );
    get(&format!("{}{old}", private.url)).await;
    assert!(
        !get(&format!("{}{old}", private.url)).await.hit(),
        "Age: 7200, 0 is 7200"
    );
    assert_eq!(origin.count(&old), 2);
}

/// RFC 9111 §4.1: selecting header values are normalised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_matches_normalised_values() {
    let (origin, [private, _]) = both().await;
    let path = script(
        "/v",
        None,
        &[
            ("Cache-Control", "max-age=3600"),
            ("Vary", "Accept-Language"),
        ],
    );
    let url = format!("{}{path}", private.url);
    get_with(&url, &[("Accept-Language", "en, fr;q=0.5")]).await;
    assert!(
        get_with(&url, &[("Accept-Language", "fr; q=0.5,EN")])
            .await
            .hit()
    );
    assert!(!get_with(&url, &[("Accept-Language", "de")]).await.hit());
    assert!(!get(&url).await.hit());
    assert_eq!(origin.count(&path), 3);
}

/// RFC 9213: the proxy is a gateway cache; `CDN-Cache-Control` replaces
/// `Cache-Control` for it, unless it is not a valid dictionary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdn_cache_control_targets_the_proxy() {
    let (origin, proxies) = both().await;
    for (m, proxy) in proxies.iter().enumerate() {
        let cases = [
            ("fresh", "max-age=3600", "no-store", true),
            ("nostore", "no-store", "max-age=3600", false),
            ("invalid", "max-age=\"3600\"", "no-store", false),
        ];
        for (name, cdn, cc, cached) in cases {
            let path = script(
                &format!("/{m}/{name}"),
                None,
                &[("CDN-Cache-Control", cdn), ("Cache-Control", cc)],
            );
            get(&format!("{}{path}", proxy.url)).await;
            assert_eq!(
                get(&format!("{}{path}", proxy.url)).await.hit(),
                cached,
                "{name}"
            );
            assert_eq!(origin.count(&path), if cached { 1 } else { 2 });
        }
    }
}

/// RFC 9111 §4.2.4: with the upstream unreachable, a stale answer is
/// served — unless it says `must-revalidate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_answer_is_served_while_the_upstream_is_unreachable() {
    let origin = start_origin().await;
    let proxy = proxy(&origin.url(""), false);
    let lax = script("/lax", None, &[("Cache-Control", "max-age=1")]);
    let strict = script(
        "/strict",
        None,
        &[("Cache-Control", "max-age=1, must-revalidate")],
    );
    for p in [&lax, &strict] {
        assert_eq!(get(&format!("{}{p}", proxy.url)).await.status, 200);
    }
    drop(origin);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let stale = get(&format!("{}{lax}", proxy.url)).await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body.as_ref(), b"answer 1");
    let refused = get(&format!("{}{strict}", proxy.url)).await;
    assert!(refused.status.is_server_error(), "{}", refused.status);
}
