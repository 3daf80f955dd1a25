//! The HTTP layer against a local hyper origin on 127.0.0.1, on every
//! backend available to this crate's tests: one test per behaviour, each
//! asserting origin request counts, `from_cache`, bodies and headers.

// Test support code (the origin, helpers) asserts like tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use respcache_core::{Backend, ManualClock, MemoryBackend};
use respcache_http::{CachedClient, CachedClientBuilder};

mod front;
mod future_size;
mod layer;
mod maintenance;
mod origin;
mod redis_child;

mod availability;
mod faults;
mod flows;
mod freshness;
mod options;
mod rfc9111;
mod server;
mod spotify;
mod streaming;
mod tls;
mod validation;

pub(crate) type B = Arc<dyn Backend>;

/// A fresh in-memory backend.
pub(crate) async fn memory() -> B {
    Arc::new(MemoryBackend::new())
}

/// A fresh SQLite backend in a temporary file (deleted when dropped).
pub(crate) async fn sqlite() -> B {
    Arc::new(
        respcache_sqlite::SqliteBackend::temp()
            .await
            .expect("a temporary SQLite database"),
    )
}

/// A clock the test moves.
pub(crate) fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new())
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A client over `backend` on `clock`, configured by `f`.
pub(crate) async fn client(
    backend: B,
    clock: &Arc<ManualClock>,
    f: impl FnOnce(CachedClientBuilder) -> CachedClientBuilder,
) -> CachedClient {
    f(CachedClient::builder().clock(clock.clone()))
        .build(backend)
        .await
        .expect("client builds")
}

/// One `#[tokio::test]` per backend for each named `async fn(B)`; after
/// `; fronts:`, each named `async fn(B, Kind)` runs once per backend through
/// `CachedClient` (in the same modules), once through `CacheLayer` over a
/// plain hyper-util client (modules `layer_memory`, `layer_sqlite`) and once
/// through the reqwest middleware (modules `reqwest_memory`,
/// `reqwest_sqlite`).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)? $(; fronts: $($front:ident),* $(,)?)?) => {
        $crate::backend_tests!(@backend memory, $($name),*; $($($front),*)?);
        $crate::backend_tests!(@backend sqlite, $($name),*; $($($front),*)?);
        $crate::backend_tests!(@front layer_memory, memory, Layer; $($($front),*)?);
        $crate::backend_tests!(@front layer_sqlite, sqlite, Layer; $($($front),*)?);
        $crate::backend_tests!(@front reqwest_memory, memory, Reqwest; $($($front),*)?);
        $crate::backend_tests!(@front reqwest_sqlite, sqlite, Reqwest; $($($front),*)?);
    };
    (@backend $backend:ident, $($name:ident),*; $($front:ident),*) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::$backend().await).await
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $front() {
                    super::$front($crate::$backend().await, $crate::front::Kind::Client).await
                }
            )*
        }
    };
    (@front $module:ident, $backend:ident, $kind:ident;) => {};
    (@front $module:ident, $backend:ident, $kind:ident; $($front:ident),+) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $front() {
                    super::$front($crate::$backend().await, $crate::front::Kind::$kind).await
                }
            )+
        }
    };
}
