//! The respcache conformance suite against a Redis Cluster at
//! `RESPCACHE_REDIS_CLUSTER_URL` (default: the three masters
//! `cargo xtask services up redis-cluster` starts on 127.0.0.1:7000-7002).
//! Unreachable: every case is ignored, or failed under `CI=true`.

fn url() -> String {
    std::env::var("RESPCACHE_REDIS_CLUSTER_URL").unwrap_or_else(|_| {
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002/".to_owned()
    })
}

respcache_conformance::main!(
    respcache_conformance::Factory::new("redis-cluster", || async {
        respcache_redis::RedisBackend::connect(&url()).await
    })
    .persistent()
    .with_leases()
);
