#![doc = include_str!("../../../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod connect;

pub use connect::{SCHEMES, cache_name, connect, redact_url};
pub use respcache_core::*;

/// The HTTP layer (feature `http`, on by default): [`CachedClient`], alias
/// [`CachedSession`].
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use respcache_http as http_cache;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use respcache_http::{
    CACHE_STATUS, CacheFacts, CacheLayer, CacheMode, CacheOutcome, CacheService, CacheStats,
    CacheStatus, CachedClient, CachedClientBuilder, CachedResponse, CachedSession, FinalUrl, Proxy,
    ProxyBuilder, RequestBody, RequestOptions, ResponseBody, ResponseMeta, ServerCacheLayer,
    ServerCacheService, StreamingResponse,
};

/// The SQLite backend (feature `sqlite`, on by default).
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use respcache_sqlite as sqlite;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use respcache_sqlite::SqliteBackend;

/// The filesystem backend (feature `fs`).
#[cfg(feature = "fs")]
#[cfg_attr(docsrs, doc(cfg(feature = "fs")))]
pub use respcache_fs as fs;
#[cfg(feature = "fs")]
#[cfg_attr(docsrs, doc(cfg(feature = "fs")))]
pub use respcache_fs::FsBackend;

/// The DynamoDB backend (feature `dynamodb`).
#[cfg(feature = "dynamodb")]
#[cfg_attr(docsrs, doc(cfg(feature = "dynamodb")))]
pub use respcache_dynamodb as dynamodb;
#[cfg(feature = "dynamodb")]
#[cfg_attr(docsrs, doc(cfg(feature = "dynamodb")))]
pub use respcache_dynamodb::DynamoDbBackend;

/// The Redis backend (feature `redis`).
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use respcache_redis as redis;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use respcache_redis::RedisBackend;

/// The MongoDB backend (feature `mongodb`).
#[cfg(feature = "mongodb")]
#[cfg_attr(docsrs, doc(cfg(feature = "mongodb")))]
pub use respcache_mongodb as mongodb;
#[cfg(feature = "mongodb")]
#[cfg_attr(docsrs, doc(cfg(feature = "mongodb")))]
pub use respcache_mongodb::MongoDbBackend;
