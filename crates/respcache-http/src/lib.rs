#![doc = include_str!("../README.md")]

mod body;
mod budget;
mod builder;
mod client;
mod directives;
mod engine;
mod error;
mod freshness;
mod layer;
mod line;
pub mod meta;
pub mod metrics;
mod normalize;
mod opening;
mod origin;
mod per_request;
mod precondition;
mod request;
mod response;
mod rules;
mod stats;
mod status;
mod streaming;
mod target;
mod transport;

pub use body::{BoxError, ResponseBody};
pub use budget::{BufferBudget, Reservation};
pub use builder::{CacheMode, CachedClientBuilder, DEFAULT_CACHE_NAME, DEFAULT_IGNORED};
pub use client::{CachedClient, CachedSession};
pub use engine::STREAMING_BUFFER_LIMIT;
pub use error::{Error, ErrorKind, Result};
pub use layer::{CACHE_STATUS, CacheFuture, CacheLayer, CacheService};
pub use meta::{BodyCheck, ResponseMeta};
pub use metrics::NotStored;
pub use normalize::REDACTED;
pub use opening::{DEFAULT_REOPEN_INITIAL, DEFAULT_REOPEN_MAX};
pub use origin::RequestBody;
pub use per_request::RequestOptions;
pub use request::RequestBuilder;
pub use respcache_core::breaker::{BreakerConfig, BreakerState};
pub use response::{CacheFacts, CachedResponse, FinalUrl};
pub use rules::storable::HEURISTICALLY_CACHEABLE;
pub use stats::{CacheStats, StoreState};
pub use status::{CacheOutcome, CacheStatus, Forward};
pub use streaming::StreamingResponse;
pub use target::{HTTP_REPOSITORY, REDIRECTS_REPOSITORY, REQUEST_FIELD};

// Re-exported so users build on the same versions.
pub use http;
pub use hyper;
pub use respcache_core;
pub use rustls;
pub use tower;
