//! The respcache conformance suite against MongoDB at `RESPCACHE_MONGODB_URL`
//! (default `mongodb://127.0.0.1:27017/?directConnection=true`).
//! Unreachable: every case is ignored, or failed under `CI=true`.

use respcache_conformance::services::MONGODB;
use respcache_mongodb::MongoDbBackend;

respcache_conformance::main!(
    MONGODB
        .factory(|url| async move { MongoDbBackend::connect(&url).await })
        .persistent()
        .with_leases()
);
