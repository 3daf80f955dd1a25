//! The hit path's futures stay small: a request future lives on the
//! caller's stack (or in its task) and is moved on every await, so a
//! future that grows makes every hit slower. The bounds are today's sizes
//! in a debug build (the test profile) with a little room.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use respcache_http::{CachedClient, RequestBody};
use tower::Service as _;

use crate::{clock, memory};

/// `CachedClient`'s `send()` future measured 4,536 bytes when this test was
/// written, 3,672 once the request path was split into stages (the
/// lookup's result no longer shares the future with the lookup itself),
/// 3,720 with the request's extensions carried to the origin service,
/// 3,768 once entries carry their tags (a `Vec` in each `Entry` the hit
/// holds), 2,920 once `send`, `execute` and `run` stopped being `async fn`s
/// (which keep each argument twice) and a `Key` became one shared pointer,
/// 904 once the request (`Prepared`) and a lookup's find (`Found`) are
/// boxed — one pointer each instead of ~300 and ~460 bytes at every level
/// — the lookup's entry is not held across the variant read, and `send()`
/// returns the engine's future itself rather than a block around it.
const SEND_FUTURE_MAX: usize = 928;
/// The future a `CacheService` boxes: one `send_streaming()` future plus the
/// conversion to an `http::Response`; 5,192 bytes when this test was
/// written, 4,328 after the stage split, 4,392 with the request's
/// extensions carried to the origin service, 4,440 with the entries'
/// tags, 2,944 with `send_streaming` calling the engine directly and the
/// changes above, 912 with the boxing above. Under 1 KiB matters here: a
/// boxed future over glibc's thread cache (1,032 bytes) takes malloc's
/// slow path on every hit.
const LAYER_FUTURE_MAX: usize = 936;

#[tokio::test]
async fn the_request_futures_do_not_grow() {
    let clock = clock();
    let client = crate::client(memory().await, &clock, |b| b).await;
    let send = std::mem::size_of_val(&client.get("http://127.0.0.1:9/x").send());
    println!("CachedClient send(): {send} bytes");
    assert!(send <= SEND_FUTURE_MAX, "{send} bytes");

    let layer = CachedClient::builder()
        .clock(clock.clone())
        .layer(memory().await)
        .await
        .unwrap();
    let plain: Client<_, RequestBody> = Client::builder(TokioExecutor::new()).build_http();
    let mut service = tower::Layer::layer(&layer, plain);
    let request = http::Request::get("http://127.0.0.1:9/x")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let future = service.call(request);
    let boxed = std::mem::size_of_val(&*future);
    println!("CacheService call(): {boxed} bytes (boxed)");
    assert!(boxed <= LAYER_FUTURE_MAX, "{boxed} bytes");
    assert_eq!(std::mem::size_of_val(&future), 16, "one boxed pointer");
}
