//! A cache backend that is down, frozen or not there yet never makes
//! requests slow or failing: each request stops calling the cache after
//! its first failed call, a circuit breaker skips a dead backend, and a
//! client starts while its Redis is down. Each test runs its own
//! `redis-server` on a spare loopback port.

use std::sync::Arc;
use std::time::{Duration, Instant};

use respcache_conformance::net::FreezableProxy;
use respcache_conformance::services::{DYNAMODB, MONGODB, answers};
use respcache_core::Backend;
use respcache_http::{BreakerState, CacheOutcome, CachedClient, CachedClientBuilder, StoreState};
use respcache_redis::RedisBackend;

use crate::origin::{Origin, Reply};
use crate::redis_child::{self, RedisChild};

/// The Redis command timeout of these tests.
const TIMEOUT: Duration = Duration::from_millis(400);

async fn fast_origin() -> Origin {
    Origin::without_date(|_| Reply::ok("{\"ok\":true}").header("cache-control", "max-age=600"))
        .await
}

async fn client_over(
    redis: &RedisChild,
    f: impl FnOnce(CachedClientBuilder) -> CachedClientBuilder,
) -> CachedClient {
    let backend: Arc<dyn Backend> =
        Arc::new(RedisBackend::connect(&redis.url(TIMEOUT)).await.unwrap());
    f(CachedClient::builder().cache_name(format!("availability{}", redis.port)))
        .build(backend)
        .await
        .unwrap()
}

/// Sends a GET and returns its outcome and how long it took.
async fn timed(client: &CachedClient, url: &str) -> (CacheOutcome, Duration) {
    let started = Instant::now();
    let r = client.get(url).send().await.expect("the request succeeds");
    assert_eq!(r.status(), 200);
    (r.outcome(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_with_redis_frozen_makes_one_cache_call_not_three() {
    if !redis_child::available() {
        return;
    }
    let origin = fast_origin().await;
    let mut redis = RedisChild::start(redis_child::spare_port()).await;
    let client = client_over(&redis, |b| b).await;
    redis.freeze();
    let (outcome, took) = timed(&client, &origin.url("/frozen/miss")).await;
    assert_eq!(outcome, CacheOutcome::Miss);
    // get (times out) — and then no redirect lookup and no put.
    assert_eq!(client.stats().cache_errors, 1, "{:?}", client.stats());
    assert!(
        took < TIMEOUT * 2,
        "took {took:?} (one command timeout is {TIMEOUT:?})"
    );
    eprintln!("miss with Redis frozen, breaker closed: {took:?}");
    redis.thaw();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_with_redis_frozen_and_closes_once_it_thaws() {
    if !redis_child::available() {
        return;
    }
    let origin = fast_origin().await;
    let mut redis = RedisChild::start(redis_child::spare_port()).await;
    let cool_down = Duration::from_millis(1500);
    let client = client_over(&redis, |b| {
        b.breaker_threshold(2).breaker_cool_down(cool_down)
    })
    .await;
    let hot = origin.url("/hot");
    let _ = timed(&client, &hot).await;
    assert_eq!(timed(&client, &hot).await.0, CacheOutcome::Hit);

    redis.freeze();
    for i in 0..2 {
        let (outcome, took) = timed(&client, &origin.url(&format!("/cold/{i}"))).await;
        assert_eq!(outcome, CacheOutcome::Miss);
        assert!(took < TIMEOUT * 2, "request {i} took {took:?}");
        eprintln!("Redis frozen, breaker closed: {took:?}");
    }
    let stats = client.stats();
    assert_eq!(stats.breaker, BreakerState::Open, "{stats:?}");
    assert_eq!(stats.breaker_opens, 1);
    let mut times = Vec::new();
    for i in 0..20 {
        let (outcome, took) = timed(&client, &origin.url(&format!("/open/{i}"))).await;
        assert_eq!(outcome, CacheOutcome::Miss);
        times.push(took);
    }
    times.sort();
    eprintln!(
        "Redis frozen, breaker open: median {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    assert!(times[times.len() - 1] < TIMEOUT / 2, "{times:?}");
    assert_eq!(
        client.stats().cache_errors,
        2,
        "skipped calls are not errors"
    );
    assert!(client.stats().cache_skipped >= 20);

    redis.thaw();
    tokio::time::sleep(cool_down).await;
    // The first request after the cool-down is the probe: it finds the
    // stored answer, so the breaker closes and hits come back.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (outcome, _) = timed(&client, &hot).await;
        if outcome == CacheOutcome::Hit {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no hit after Redis thawed: {:?}",
            client.stats()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(client.stats().breaker, BreakerState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_with_redis_killed_and_closes_after_a_restart() {
    if !redis_child::available() {
        return;
    }
    let origin = fast_origin().await;
    let port = redis_child::spare_port();
    let mut redis = RedisChild::start(port).await;
    let cool_down = Duration::from_millis(1000);
    let client = client_over(&redis, |b| {
        b.breaker_threshold(2).breaker_cool_down(cool_down)
    })
    .await;
    redis.kill();
    for i in 0..2 {
        let (outcome, took) = timed(&client, &origin.url(&format!("/dead/{i}"))).await;
        assert_eq!(outcome, CacheOutcome::Miss);
        assert!(took < TIMEOUT * 2, "request {i} took {took:?}");
        eprintln!("Redis killed, breaker closed: {took:?}");
    }
    assert_eq!(
        client.stats().breaker,
        BreakerState::Open,
        "{:?}",
        client.stats()
    );
    for i in 0..10 {
        let (_, took) = timed(&client, &origin.url(&format!("/dead-open/{i}"))).await;
        assert!(took < TIMEOUT / 2, "took {took:?} with the breaker open");
    }

    let _redis = RedisChild::start(port).await;
    let url = origin.url("/back");
    // Bounded: the breaker probes once per cool-down, and the connection
    // manager reconnects on its own schedule.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (outcome, _) = timed(&client, &url).await;
        if outcome == CacheOutcome::Hit {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no hit after Redis restarted: {:?}",
            client.stats()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(client.stats().breaker, BreakerState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_starts_while_redis_is_down_and_uses_it_once_it_is_up() {
    if !redis_child::available() {
        return;
    }
    let origin = fast_origin().await;
    let port = redis_child::spare_port();
    let url = redis_child::url(port, TIMEOUT);
    let client = CachedClient::builder()
        .cache_name("degraded")
        .reopen_backoff(Duration::from_millis(100), Duration::from_millis(300))
        .build_connecting(move || {
            let url = url.clone();
            async move { Ok(Arc::new(RedisBackend::connect(&url).await?) as Arc<dyn Backend>) }
        })
        .await
        .expect("a client builds while its Redis is down");
    let stats = client.stats();
    assert_ne!(stats.store_state, StoreState::Ready, "{stats:?}");
    assert!(client.store_error().is_some());
    // Requests go to the origin meanwhile.
    let page = origin.url("/while-down");
    for _ in 0..2 {
        let (outcome, took) = timed(&client, &page).await;
        assert_eq!(outcome, CacheOutcome::Bypass);
        assert!(took < Duration::from_secs(1), "took {took:?}");
    }
    assert_eq!(origin.count("/while-down"), 2);

    let _redis = RedisChild::start(port).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.stats().store_state != StoreState::Ready {
        assert!(
            Instant::now() < deadline,
            "never opened: {:?}",
            client.store_error()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(client.store_error(), None);
    let page = origin.url("/once-up");
    assert_eq!(timed(&client, &page).await.0, CacheOutcome::Miss);
    assert_eq!(timed(&client, &page).await.0, CacheOutcome::Hit);
    assert_eq!(origin.count("/once-up"), 1);
}

#[tokio::test]
async fn configuration_errors_still_fail_the_build_and_degraded_start_can_be_refused() {
    let bad = CachedClient::builder()
        .cache_name("not a name")
        .build(crate::memory().await)
        .await;
    assert!(bad.is_err());
    let port = redis_child::spare_port();
    let url = redis_child::url(port, TIMEOUT);
    let strict = CachedClient::builder()
        .degraded_start(false)
        .build_connecting(move || {
            let url = url.clone();
            async move { Ok(Arc::new(RedisBackend::connect(&url).await?) as Arc<dyn Backend>) }
        })
        .await;
    assert!(strict.is_err(), "nothing listens on {port}");
}

/// The per-call deadline of the frozen-server tests.
const CACHE_TIMEOUT: Duration = Duration::from_millis(300);

/// With the server behind `relay` frozen: one cache timeout per request
/// until the breaker opens, then nothing.
async fn frozen_server_is_skipped(backend: Arc<dyn Backend>, relay: &FreezableProxy, cache: &str) {
    let origin = fast_origin().await;
    let client = CachedClient::builder()
        .cache_name(cache)
        .cache_timeout(CACHE_TIMEOUT)
        .breaker_threshold(2)
        .breaker_cool_down(Duration::from_secs(60))
        .build(backend)
        .await
        .unwrap();
    let warm = origin.url("/warm");
    let _ = timed(&client, &warm).await;
    assert_eq!(timed(&client, &warm).await.0, CacheOutcome::Hit);
    relay.freeze();
    for i in 0..2 {
        let (outcome, took) = timed(&client, &origin.url(&format!("/cold/{i}"))).await;
        assert_eq!(outcome, CacheOutcome::Miss);
        assert!(took < CACHE_TIMEOUT * 2, "request {i} took {took:?}");
        eprintln!("{cache}: frozen, breaker closed: {took:?}");
    }
    assert_eq!(
        client.stats().breaker,
        BreakerState::Open,
        "{:?}",
        client.stats()
    );
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let (_, took) = timed(&client, &origin.url(&format!("/open/{i}"))).await;
        slowest = slowest.max(took);
    }
    eprintln!("{cache}: frozen, breaker open: slowest of 10 {slowest:?}");
    assert!(slowest < CACHE_TIMEOUT / 2, "{slowest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_mongodb_costs_one_cache_timeout_then_is_skipped() {
    if !answers("MongoDB", MONGODB.addr()).await {
        return;
    }
    let server = MONGODB.addr().unwrap();
    let relay = FreezableProxy::start(server).await.unwrap();
    let url = |addr: std::net::SocketAddr| format!("mongodb://{addr}/?directConnection=true");
    let cache = format!("frozen-mongo-{}", relay.addr().port());
    let backend = Arc::new(
        respcache_mongodb::MongoDbBackend::connect(&url(relay.addr()))
            .await
            .unwrap(),
    );
    frozen_server_is_skipped(backend, &relay, &cache).await;
    let direct = respcache_mongodb::MongoDbBackend::connect(&url(server))
        .await
        .unwrap();
    drop_stores(&direct, &cache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_dynamodb_costs_one_cache_timeout_then_is_skipped() {
    if !answers("DynamoDB", DYNAMODB.addr()).await {
        return;
    }
    let server = DYNAMODB.addr().unwrap();
    let relay = FreezableProxy::start(server).await.unwrap();
    let url = |addr: std::net::SocketAddr| {
        format!("dynamodb://respcache-test?endpoint=http://{addr}&region=us-east-1")
    };
    let cache = format!("frozen-dynamo-{}", relay.addr().port());
    let backend = Arc::new(
        respcache_dynamodb::DynamoDbBackend::connect(&url(relay.addr()))
            .await
            .unwrap(),
    );
    frozen_server_is_skipped(backend, &relay, &cache).await;
    let direct = respcache_dynamodb::DynamoDbBackend::connect(&url(server))
        .await
        .unwrap();
    drop_stores(&direct, &cache).await;
}

async fn drop_stores(backend: &dyn Backend, cache: &str) {
    let cache = respcache_core::Name::new(cache).unwrap();
    for repo in [
        respcache_http::HTTP_REPOSITORY,
        respcache_http::REDIRECTS_REPOSITORY,
    ] {
        let repo = respcache_core::Name::new(repo).unwrap();
        backend.drop_store(&cache, &repo).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_over_a_backend_whose_server_went_down_starts_degraded() {
    if !redis_child::available() {
        return;
    }
    let origin = fast_origin().await;
    let port = redis_child::spare_port();
    let mut redis = RedisChild::start(port).await;
    let backend: Arc<dyn Backend> =
        Arc::new(RedisBackend::connect(&redis.url(TIMEOUT)).await.unwrap());
    redis.kill();
    // Connected, but the stores cannot be opened: the client builds anyway.
    let client = CachedClient::builder()
        .cache_name("degraded-build")
        .reopen_backoff(Duration::from_millis(100), Duration::from_millis(300))
        .build(Arc::clone(&backend))
        .await
        .expect("a client builds while its stores cannot be opened");
    assert_ne!(client.stats().store_state, StoreState::Ready);
    let page = origin.url("/page");
    assert_eq!(timed(&client, &page).await.0, CacheOutcome::Bypass);
    // Refused outright when asked to.
    let strict = CachedClient::builder()
        .cache_name("degraded-build")
        .degraded_start(false)
        .build(Arc::clone(&backend))
        .await;
    assert!(strict.is_err());

    let _redis = RedisChild::start(port).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while client.stats().store_state != StoreState::Ready {
        assert!(
            Instant::now() < deadline,
            "never opened: {:?}",
            client.store_error()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(timed(&client, &page).await.0, CacheOutcome::Miss);
    assert_eq!(timed(&client, &page).await.0, CacheOutcome::Hit);
}
