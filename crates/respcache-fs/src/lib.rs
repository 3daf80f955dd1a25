//! Filesystem backend for respcache: every entry is one file on disk.
//!
//! ```text
//! <root>/<cache>/<repository>/<aa>/<bb>/<digest-hex>
//! ```
//!
//! Each file holds the core's versioned [envelope](respcache_core::envelope);
//! its 24-byte header (cached_at, expires_at) lets `count`, `contains` and
//! `clear` judge expiry without reading payloads. Writes are atomic (a
//! temporary file renamed over the entry), with `fsync` on request. See
//! [`FsBackend`] for the full semantics.
//!
//! ```
//! # async fn demo() -> respcache_core::Result<()> {
//! use std::sync::Arc;
//! use respcache_core::{Request, ResponseCache, TemplateSettings, TextCodec};
//! use respcache_fs::FsBackend;
//!
//! let backend = FsBackend::temp().await?; // or FsBackend::connect_url("fs:///var/cache/app")
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

mod backend;
mod config;
mod error;
mod file;
mod layout;
mod lease;
mod store;
mod tag_index;
mod usage;
mod walk;

pub use backend::FsBackend;
pub use config::FsConfig;
pub use store::{FsStore, INLINE_READ_MAX, STALE_TEMP_AGE};

/// The URL scheme of this backend, and its [`Backend::name`](respcache_core::Backend::name).
pub const SCHEME: &str = "fs";
