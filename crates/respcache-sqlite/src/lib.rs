//! SQLite backend for respcache, the embedded default: one database file
//! (or an in-memory database), one table per repository, on
//! [rusqlite] + [tokio-rusqlite](tokio_rusqlite).
//!
//! ```
//! # async fn demo() -> respcache_core::Result<()> {
//! use std::sync::Arc;
//! use respcache_core::{Request, ResponseCache, TemplateSettings, TextCodec};
//! use respcache_sqlite::SqliteBackend;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let url = format!("sqlite://{}/cache.sqlite", dir.path().display());
//! let backend = SqliteBackend::connect(&url).await?;
//! let cache = ResponseCache::<String>::builder("weather")
//!     .create_repository(TemplateSettings::new("forecast", "/forecast/{city}", TextCodec)?)
//!     .connect(Arc::new(backend))
//!     .await?;
//! let req = Request::get("https://weather.example/forecast/oslo")?;
//! cache.save(&req, &"snow".to_string()).await?;
//! assert_eq!(cache.get(&req).await?.as_deref(), Some("snow"));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! Connect from a path ([`SqliteBackend::open`]), a `sqlite:` URL
//! ([`SqliteBackend::connect`], forms in [`SqliteConfig`]), a temporary
//! file ([`SqliteBackend::temp`]) or memory ([`SqliteBackend::memory`]).
//!
//! # The hot path
//!
//! A cache hit is one indexed point read of a few µs, but handing a call to
//! tokio-rusqlite's thread and back costs up to about 40 µs on a small VM.
//! So point reads (`get`, `contains`, `get_many` of up to 32 keys) run
//! **inline** on a small pool of read-only connections (one per core, each
//! behind a `std::sync::Mutex`, taken with `try_lock`, never held across an
//! `.await`); WAL lets them read while the writer writes. When
//! every reader is in use, or SQLite reports a lock, the read goes to the
//! writer thread instead. A cache miss waits for its write, so single-row
//! writes (`put` of up to 64 KiB, `delete`, `set_expiry`, `set_meta`) run
//! inline as well, on a second read-write connection taken the same way,
//! with no busy timeout: when it is in use, when the writer thread has
//! calls queued, or when SQLite reports a lock, the write goes to the
//! writer thread. DDL, bulk calls, scans, `count` and `clear` always run on
//! the writer thread. [`SqliteBackend`]'s documentation has the details and
//! the measurements.

mod backend;
mod config;
mod error;
mod group_commit;
mod inline_writer;
mod lease;
mod naming;
mod readers;
mod schema;
mod store;
mod table;
mod tag_index;
mod thread_slot;
mod touched;
mod usage;

pub use backend::{ReadCounts, SqliteBackend, WriteCounts};
pub use config::{DEFAULT_BUSY_TIMEOUT, Location, MAX_READERS, OnCorrupt, SqliteConfig};
pub use store::SqliteStore;

/// The URL scheme this backend answers to: `sqlite:`.
pub const SCHEME: &str = "sqlite";

/// The backend's name in errors and [`Backend::name`](respcache_core::Backend::name).
pub(crate) const NAME: &str = "sqlite";

/// The SQLite driver this backend is built on, re-exported so users can
/// open the same database with the same version.
pub use rusqlite;
