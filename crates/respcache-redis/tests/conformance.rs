//! The respcache conformance suite against Redis at `RESPCACHE_REDIS_URL`
//! (default `redis://127.0.0.1:6379/`). Unreachable: every case is ignored,
//! or failed under `CI=true`.

use respcache_conformance::services::REDIS;
use respcache_redis::RedisBackend;

respcache_conformance::main!(
    REDIS
        .factory(|url| async move { RedisBackend::connect(&url).await })
        .persistent()
        .with_leases()
);
