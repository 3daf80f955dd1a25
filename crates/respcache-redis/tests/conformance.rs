//! The respcache conformance suite against Redis at `RESPCACHE_REDIS_URL`
//! (default `redis://127.0.0.1:6379/`). Unreachable: every case is ignored,
//! or failed under `CI=true`.

fn url() -> String {
    std::env::var("RESPCACHE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

respcache_conformance::main!(
    respcache_conformance::Factory::new("redis", || async {
        respcache_redis::RedisBackend::connect(&url()).await
    })
    .persistent()
    .with_leases()
);
