#![doc = include_str!("../README.md")]

mod cache;
mod origin;

pub use cache::Cache;

// Re-exported so users build on the same versions.
pub use reqwest;
pub use reqwest_middleware;
pub use respcache_http;
pub use respcache_http::{CacheFacts, CacheOutcome, CacheStatus, RequestOptions};
