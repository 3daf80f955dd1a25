//! What only the tower front-end does: bodies both ways, relative request
//! targets, the `Cache-Status` list, and stores shared by the services one
//! layer makes.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use respcache_http::{
    CACHE_STATUS, CacheOutcome, CacheService, CacheStatus, CachedClient, RequestBody,
};
use tower::ServiceExt as _;

use crate::origin::{Origin, Reply};
use crate::{B, clock};

crate::backend_tests!(
    bodies_stream_both_ways_and_storable_ones_are_kept,
    a_relative_target_takes_the_host_header,
    cache_status_is_appended_to_the_origins,
    services_of_one_layer_share_the_stores,
);

async fn layered(b: B) -> (respcache_http::CacheLayer, CacheService) {
    let layer = CachedClient::builder()
        .clock(clock())
        .layer(b)
        .await
        .unwrap();
    let plain: Client<_, RequestBody> = Client::builder(TokioExecutor::new()).build_http();
    let service = tower::Layer::layer(&layer, plain);
    (layer, service)
}

async fn get(
    s: &CacheService,
    request: http::Request<Empty<Bytes>>,
) -> (http::Response<()>, Bytes) {
    let response = s.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (
        http::Response::from_parts(parts, ()),
        body.collect().await.unwrap().to_bytes(),
    )
}

fn outcome(r: &http::Response<()>) -> CacheOutcome {
    r.extensions().get::<CacheStatus>().unwrap().outcome()
}

async fn bodies_stream_both_ways_and_storable_ones_are_kept(b: B) {
    let big = Bytes::from(vec![b'x'; 256 * 1024]);
    let body = big.clone();
    let origin = Origin::without_date(move |s| match s.path.as_str() {
        "/echo" => Reply::ok(s.body.clone()),
        "/big" => Reply::ok(body.clone()).header("cache-control", "no-store"),
        _ => Reply::ok("kept").header("cache-control", "max-age=60"),
    })
    .await;
    let (_, s) = layered(b).await;
    // A request body reaches the origin (POST passes the cache).
    let request = http::Request::post(origin.url("/echo"))
        .body(Full::new(Bytes::from_static(b"a new playlist")))
        .unwrap();
    let response = s.clone().oneshot(request).await.unwrap();
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "a new playlist"
    );
    assert_eq!(origin.last().unwrap().body, "a new playlist");
    // A body the cache may not keep streams from its first byte.
    let request = http::Request::get(origin.url("/big"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = s.clone().oneshot(request).await.unwrap();
    assert!(!response.body().is_whole(), "a no-store body streams");
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        big
    );
    // A storable one comes whole and is kept.
    let url = origin.url("/kept");
    let (r, body) = get(&s, http::Request::get(&url).body(Empty::new()).unwrap()).await;
    assert_eq!((outcome(&r), &body[..]), (CacheOutcome::Miss, &b"kept"[..]));
    let (r, body) = get(&s, http::Request::get(&url).body(Empty::new()).unwrap()).await;
    assert_eq!((outcome(&r), &body[..]), (CacheOutcome::Hit, &b"kept"[..]));
    assert_eq!(origin.count("/kept"), 1);
}

async fn a_relative_target_takes_the_host_header(b: B) {
    let origin =
        Origin::without_date(|s| Reply::ok(s.target.clone()).header("cache-control", "max-age=60"))
            .await;
    let (_, s) = layered(b).await;
    let absolute = origin.url("/tracks?id=7");
    let host = absolute
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let relative = http::Request::get("/tracks?id=7")
        .header("host", &host)
        .body(Empty::new())
        .unwrap();
    let (r, body) = get(&s, relative).await;
    assert_eq!(
        (outcome(&r), &body[..]),
        (CacheOutcome::Miss, &b"/tracks?id=7"[..])
    );
    // The same request, written absolute, is the same cache entry.
    let (r, _) = get(
        &s,
        http::Request::get(&absolute).body(Empty::new()).unwrap(),
    )
    .await;
    assert_eq!(outcome(&r), CacheOutcome::Hit);
    // Neither absolute nor with a Host: an error, not a panic.
    let bare = http::Request::get("/tracks")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let e = s.clone().oneshot(bare).await.unwrap_err();
    assert_eq!(e.kind(), respcache_http::ErrorKind::InvalidUrl);
}

async fn cache_status_is_appended_to_the_origins(b: B) {
    let origin = Origin::without_date(|_| {
        Reply::ok("x")
            .header("cache-control", "max-age=60")
            .header("cache-status", "upstream; fwd=uri-miss")
    })
    .await;
    let (_, s) = layered(b).await;
    let url = origin.url("/cs");
    get(&s, http::Request::get(&url).body(Empty::new()).unwrap()).await;
    let (r, _) = get(&s, http::Request::get(&url).body(Empty::new()).unwrap()).await;
    let values: Vec<_> = r
        .headers()
        .get_all(CACHE_STATUS)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(values.len(), 2, "{values:?}");
    assert_eq!(values[0], "upstream; fwd=uri-miss");
    assert!(values[1].starts_with("respcache; hit"), "{values:?}");
}

async fn services_of_one_layer_share_the_stores(b: B) {
    let origin = Origin::without_date(|s| {
        Reply::ok(format!("#{}", s.n)).header("cache-control", "max-age=60")
    })
    .await;
    let (layer, first) = layered(b).await;
    let plain: Client<_, RequestBody> = Client::builder(TokioExecutor::new()).build_http();
    let second = tower::Layer::layer(&layer, plain);
    let url = origin.url("/shared");
    get(&first, http::Request::get(&url).body(Empty::new()).unwrap()).await;
    let (r, body) = get(
        &second,
        http::Request::get(&url).body(Empty::new()).unwrap(),
    )
    .await;
    assert_eq!((outcome(&r), &body[..]), (CacheOutcome::Hit, &b"#1"[..]));
    assert_eq!(first.client().stats().misses, 1);
    assert_eq!(
        second.client().stats().hits,
        1,
        "each service counts its own"
    );
}
