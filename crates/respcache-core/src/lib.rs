//! The core of respcache: every rule, written once for every backend.
//!
//! - [`Key`] and [`KeySchema`]: typed keys with a canonical injective encoding.
//! - [`RepositorySettings`] (and [`TemplateSettings`]): which requests are
//!   cached, under which key, with which [`Codec`].
//! - [`Entry`] and the [`envelope`]: what is stored.
//! - [`Store`] and [`Backend`]: the small contract a backend implements.
//! - [`Repository`] and [`ResponseCache`]: the API-aware caching face.
//! - [`Clock`], [`Error`], and [`MemoryBackend`], the reference backend.
//!
//! ```
//! # async fn demo() -> respcache_core::Result<()> {
//! use std::sync::Arc;
//! use respcache_core::{MemoryBackend, Request, ResponseCache, TemplateSettings, TextCodec};
//!
//! let cache = ResponseCache::<String>::builder("weather")
//!     .create_repository(TemplateSettings::new("forecast", "/forecast/{city}", TextCodec)?)
//!     .connect(Arc::new(MemoryBackend::new()))
//!     .await?;
//! let req = Request::get("https://weather.example/forecast/oslo")?;
//! assert_eq!(cache.get(&req).await?, None);
//! cache.save(&req, &"snow".to_string()).await?;
//! assert_eq!(cache.get(&req).await?.as_deref(), Some("snow"));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

pub mod backend;
pub mod breaker;
pub mod budget;
pub mod checked_store;
pub mod cleanup;
pub mod codec;
pub mod compress;
pub mod cross_process;
pub mod economy;
pub mod entry;
pub mod envelope;
pub mod error;
pub mod header_digest;
pub mod key;
pub mod kv;
pub mod lease;
pub mod memory;
mod memory_lru;
mod memory_table;
pub mod name;
pub mod options;
pub mod purge;
pub mod redact;
pub mod repository;
pub mod request;
pub mod response_cache;
pub mod settings;
pub mod single_flight;
pub mod size;
pub mod stats;
pub mod tags;
pub mod template;
pub mod time;

pub use backend::{Backend, DynBackend, DynStore, Limits, Store, StoreSpec};
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use budget::{Budget, Eviction, Usage};
pub use checked_store::{BackendGuard, CheckedStore};
#[cfg(feature = "bincode")]
pub use codec::BincodeCodec;
pub use codec::{BytesCodec, Codec, JsonCodec, TextCodec};
pub use cross_process::CrossProcess;
pub use entry::{Entry, Select};
pub use error::{Error, ErrorKind, Operation, Result};
pub use key::{Field, FieldKind, Key, KeyDigest, KeyPart, KeySchema};
pub use kv::{KeyValueCache, KeyValueCacheBuilder};
pub use lease::{LeaseTable, LeaseToken};
pub use memory::MemoryBackend;
pub use name::Name;
pub use repository::{Cached, KeyOf, Repository, RepositoryOptions};
pub use request::Request;
pub use response_cache::{ResponseCache, ResponseCacheBuilder};
pub use settings::RepositorySettings;
pub use tags::Tags;
pub use template::TemplateSettings;
pub use time::{Clock, Expiry, ManualClock, SystemClock, Timestamp};

// Re-exported so backends and users build on the same versions.
pub use async_trait::async_trait;
pub use bytes::Bytes;
pub use futures;
pub use http;
pub use url;
