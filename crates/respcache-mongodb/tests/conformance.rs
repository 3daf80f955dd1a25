//! The respcache conformance suite against MongoDB at `RESPCACHE_MONGODB_URL`
//! (default `mongodb://127.0.0.1:27017/?directConnection=true`).

respcache_conformance::main!(
    respcache_conformance::Factory::new("mongodb", || async {
        respcache_mongodb::MongoDbBackend::connect_from_env().await
    })
    .persistent()
    .with_leases()
);
