//! The respcache conformance suite against a Redis Cluster at
//! `RESPCACHE_REDIS_CLUSTER_URL` (default: the three masters
//! `cargo xtask services up redis-cluster` starts on 127.0.0.1:7000-7002).
//! Unreachable: every case is ignored, or failed under `CI=true`.

use respcache_conformance::services::REDIS_CLUSTER;
use respcache_redis::RedisBackend;

respcache_conformance::main!(
    REDIS_CLUSTER
        .factory(|url| async move { RedisBackend::connect(&url).await })
        .persistent()
        .with_leases()
);
