//! Benchmarks of respcache against raw baselines.
//!
//! The operations live here, as fixtures whose methods are the timed bodies,
//! so the criterion benches (`cargo bench -p respcache-bench`) and the table
//! runner (`cargo run --release -p respcache-bench --bin bench-table --
//! [--quick]`, what `cargo xtask bench` calls) measure the same code:
//!
//! - [`store_ops`]: `get` hits (1 KB, 100 KB), `put`, `get_many` and
//!   `put_many` of 1,000, `count`, `clear(expired)` and `scan` over 100,000
//!   entries, on any [`Backend`](respcache_core::Backend);
//! - [`session`]: `CachedSession` hit, miss-and-store, `304` revalidation,
//!   against a local [`origin`];
//! - [`front_ends`]: the same hit through `CacheLayer` over hyper, the
//!   reqwest middleware, and the peer http-cache-reqwest (moka, redb);
//! - [`proxy`]: `respcache serve` against Varnish and nginx, 50 keep-alive
//!   connections, hits and misses;
//! - [`raw`]: the baselines — rusqlite (inline and through tokio-rusqlite),
//!   `std::fs::read`, Redis `GET`, an uncached hyper `GET`;
//! - [`measure`]: the loop (warm-up, per-operation times, median, p99,
//!   throughput) and [`report`]: the table, its targets and their checks;
//! - [`rss`]: peak resident memory, for the scan;
//! - [`economy`]: compression (ratio, cost per store and per hit, zstd and
//!   lz4) and what the SQLite budget adds to a hit.
//!
//! ```
//! # async fn demo() -> respcache_bench::Result<()> {
//! use respcache_bench::{backends, data, measure, store_ops};
//!
//! let connected = backends::connect(backends::BackendKind::Memory).await?;
//! let cache = data::run_cache_name("doc")?;
//! let hits = store_ops::Hits::seed(connected.backend.as_ref(), &cache).await?;
//! let plan = measure::Plan { max_samples: 100, ..measure::Plan::QUICK };
//! let stats = measure::measure(plan, 1, |i| hits.get(store_ops::Size::Small, i)).await?;
//! assert!(stats.median <= stats.p99);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

pub mod backends;
pub mod cpu;
pub mod data;
pub mod economy;
pub mod front_ends;
pub mod machine;
pub mod measure;
pub mod origin;
pub mod proxy;
pub mod raw;
pub mod report;
pub mod rss;
pub mod session;
pub mod store_ops;

/// Any error a benchmark meets (the backends', the drivers', a wrong
/// answer).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The result of a benchmark step.
pub type Result<T, E = BoxError> = std::result::Result<T, E>;
