#![doc = include_str!("../README.md")]

mod backend;
mod config;
mod connection;
mod error;
mod layout;
mod scripts;
mod store;

pub use backend::RedisBackend;
pub use config::{DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT, RedisConfig};
pub use store::RedisStore;

/// The `redis` crate this backend is built on, so a program can build a
/// [`redis::Client`] for [`RedisBackend::from_client`] without version skew.
pub use redis;

/// The URL scheme of this backend: `redis://host:port/db`.
pub const SCHEME: &str = "redis";
/// The URL scheme for Redis over TLS: `rediss://host:port/db` (needs the
/// `tls` feature).
pub const TLS_SCHEME: &str = "rediss";

/// The URL scheme for a Redis Cluster:
/// `redis+cluster://host1:7000,host2:7001/` (seed nodes; the client learns
/// the rest of the cluster from them). `redis://host:7000/?cluster=true` is
/// the same with one seed.
pub const CLUSTER_SCHEME: &str = "redis+cluster";

/// The backend's name in errors and [`Backend::name`](respcache_core::Backend::name).
pub(crate) const NAME: &str = "redis";
