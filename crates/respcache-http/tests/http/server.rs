//! The server side: `ServerCacheLayer` in front of a real axum app, served
//! on 127.0.0.1 by hyper and asked by a plain hyper client — a shared cache
//! (Vary, `private`, `no-store`, `Authorization`), coalescing of identical
//! requests, `Cache-Status`, and errors as answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use respcache_http::{CachedClient, RequestBody, ServerCacheService};

use crate::B;

crate::backend_tests!(
    identical_requests_to_a_slow_handler_make_one_call,
    hits_and_misses_say_so_in_cache_status,
    vary_keeps_each_variant_apart,
    private_answers_are_not_reused,
    no_store_answers_are_never_stored,
    answers_to_authorized_requests_are_reused_only_when_public,
    the_app_sees_requests_as_a_server_does,
    a_failing_service_is_a_502_answer,
    it_plugs_into_axum_router_layer,
);

/// The app: handlers that count their calls.
fn app(calls: Arc<AtomicUsize>) -> Router {
    let count = move || {
        calls.fetch_add(1, Ordering::SeqCst);
    };
    let (c1, c2, c3, c4, c5) = (
        count.clone(),
        count.clone(),
        count.clone(),
        count.clone(),
        count.clone(),
    );
    Router::new()
        .route(
            "/slow",
            get(move || async move {
                c1();
                tokio::time::sleep(Duration::from_millis(300)).await;
                ([("cache-control", "max-age=60")], "slow report")
            }),
        )
        .route(
            "/greeting",
            get(move |headers: HeaderMap| async move {
                c2();
                let lang = headers
                    .get("accept-language")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("en")
                    .to_owned();
                let text = if lang == "de" { "hallo" } else { "hello" };
                (
                    [("cache-control", "max-age=60"), ("vary", "accept-language")],
                    text,
                )
            }),
        )
        .route(
            "/cc/{value}",
            get(
                move |axum::extract::Path(value): axum::extract::Path<String>| async move {
                    c3();
                    let value = value.replace('_', " ").replace('~', "=");
                    ([("cache-control", value)], "answer")
                },
            ),
        )
        .route(
            "/echo",
            get(move |uri: axum::http::Uri, headers: HeaderMap| async move {
                c4();
                let host = headers
                    .get("host")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned();
                format!("{uri} {host}")
            }),
        )
        .route(
            "/redirect",
            get(move || async move {
                c5();
                (
                    axum::http::StatusCode::FOUND,
                    [("location", "/elsewhere"), ("cache-control", "max-age=60")],
                )
            }),
        )
}

/// Serves `service` on a spare loopback port (until the test's runtime
/// ends).
async fn serve(service: ServerCacheService) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Bounded by the test: the runtime drops this task when it ends.
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// The app behind the server layer, served; its call counter and the
/// cached service (for its counters).
async fn cached_app(b: B) -> (SocketAddr, Arc<AtomicUsize>, ServerCacheService) {
    let calls = Arc::new(AtomicUsize::new(0));
    // The system clock: hyper's server dates every answer with the real
    // time, and a manual clock would age them.
    let layer = CachedClient::builder().server_layer(b).await.unwrap();
    let service = tower::Layer::layer(&layer, app(calls.clone()));
    let addr = serve(service.clone()).await;
    (addr, calls, service)
}

struct Answer {
    status: u16,
    cache_status: String,
    headers: http::HeaderMap,
    body: String,
}

async fn ask(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = http::Request::get(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(request.body(Empty::new()).unwrap()),
    )
    .await
    .expect("an answer within 10 s")
    .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let cache_status = headers
        .get_all("cache-status")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join(", ");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        cache_status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn identical_requests_to_a_slow_handler_make_one_call(b: B) {
    let (addr, calls, _) = cached_app(b).await;
    let answers = futures::future::join_all((0..8).map(|_| ask(addr, "/slow", &[]))).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one call for 8 requests");
    for a in &answers {
        assert_eq!((a.status, a.body.as_str()), (200, "slow report"));
        assert!(
            a.cache_status.starts_with("respcache"),
            "{}",
            a.cache_status
        );
    }
    let again = ask(addr, "/slow", &[]).await;
    assert!(again.cache_status.contains("hit"), "{}", again.cache_status);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

async fn hits_and_misses_say_so_in_cache_status(b: B) {
    let (addr, calls, service) = cached_app(b).await;
    let first = ask(addr, "/slow", &[]).await;
    assert!(
        first.cache_status.contains("fwd=uri-miss") && first.cache_status.contains("stored"),
        "{}",
        first.cache_status
    );
    let second = ask(addr, "/slow", &[]).await;
    assert!(
        second.cache_status.starts_with("respcache; hit"),
        "{}",
        second.cache_status
    );
    assert!(second.headers.contains_key("age"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stats = service.client().stats();
    assert_eq!((stats.hits, stats.misses), (1, 1), "{stats:?}");
}

async fn vary_keeps_each_variant_apart(b: B) {
    let (addr, calls, _) = cached_app(b).await;
    let en = ask(addr, "/greeting", &[("accept-language", "en")]).await;
    let de = ask(addr, "/greeting", &[("accept-language", "de")]).await;
    let en_again = ask(addr, "/greeting", &[("accept-language", "en")]).await;
    let de_again = ask(addr, "/greeting", &[("accept-language", "de")]).await;
    assert_eq!(
        (
            en.body.as_str(),
            de.body.as_str(),
            en_again.body.as_str(),
            de_again.body.as_str()
        ),
        ("hello", "hallo", "hello", "hallo")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(en_again.cache_status.contains("hit"));
}

async fn private_answers_are_not_reused(b: B) {
    let (addr, calls, _) = cached_app(b).await;
    // A private cache would keep it; this one is shared.
    for spelling in ["/cc/private,_max-age~60", "/cc/PRIVATE,_max-age~60"] {
        ask(addr, spelling, &[]).await;
        let again = ask(addr, spelling, &[]).await;
        assert!(
            !again.cache_status.contains("hit"),
            "{}",
            again.cache_status
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

async fn no_store_answers_are_never_stored(b: B) {
    let (addr, calls, _) = cached_app(b).await;
    ask(addr, "/cc/no-store,_max-age~60", &[]).await;
    ask(addr, "/cc/no-store,_max-age~60", &[]).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

async fn answers_to_authorized_requests_are_reused_only_when_public(b: B) {
    let (addr, calls, _) = cached_app(b).await;
    let auth = [("authorization", "Bearer alice")];
    ask(addr, "/cc/max-age~60", &auth).await;
    ask(addr, "/cc/max-age~60", &auth).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "max-age alone: not reused");
    ask(addr, "/cc/public,_max-age~60", &auth).await;
    let again = ask(addr, "/cc/public,_max-age~60", &auth).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3, "public: reused");
    assert!(again.cache_status.contains("hit"));
}

async fn the_app_sees_requests_as_a_server_does(b: B) {
    let (addr, calls, _) = cached_app(b).await;
    let echo = ask(addr, "/echo?q=1", &[]).await;
    assert_eq!(echo.body, format!("/echo?q=1 {addr}"));
    // A redirect is the app's answer, passed back (and stored), not followed.
    let redirect = ask(addr, "/redirect", &[]).await;
    assert_eq!(redirect.status, 302);
    assert_eq!(redirect.headers.get("location").unwrap(), "/elsewhere");
    let again = ask(addr, "/redirect", &[]).await;
    assert_eq!((again.status, calls.load(Ordering::SeqCst)), (302, 2));
}

async fn a_failing_service_is_a_502_answer(b: B) {
    // The system clock: hyper's server dates every answer with the real
    // time, and a manual clock would age them.
    let layer = CachedClient::builder().server_layer(b).await.unwrap();
    let failing = tower::service_fn(|_: http::Request<RequestBody>| async {
        Err::<http::Response<Empty<Bytes>>, _>(std::io::Error::other("the database is gone"))
    });
    let addr = serve(tower::Layer::layer(&layer, failing)).await;
    let answer = ask(addr, "/report", &[]).await;
    assert_eq!(answer.status, 502);
    assert_eq!(answer.cache_status, "respcache; detail=error");
    assert_eq!(answer.headers.get("cache-control").unwrap(), "no-store");
    // The cause stays in the logs, not in the answer.
    assert!(!answer.body.contains("database"), "{}", answer.body);
}

async fn it_plugs_into_axum_router_layer(b: B) {
    let calls = Arc::new(AtomicUsize::new(0));
    // The system clock: hyper's server dates every answer with the real
    // time, and a manual clock would age them.
    let layer = CachedClient::builder().server_layer(b).await.unwrap();
    let app = app(calls.clone()).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    ask(addr, "/slow", &[]).await;
    let again = ask(addr, "/slow", &[]).await;
    assert!(again.cache_status.contains("hit"), "{}", again.cache_status);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
