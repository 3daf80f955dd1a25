//! The respcache conformance suite against DynamoDB (Local):
//! `RESPCACHE_DYNAMODB_URL`, by default DynamoDB Local on 127.0.0.1:8000.
//! Unreachable: every case is ignored, or failed under `CI=true`.

use respcache_conformance::services::DYNAMODB;
use respcache_dynamodb::DynamoDbBackend;

respcache_conformance::main!(
    DYNAMODB
        .factory(|url| async move { DynamoDbBackend::connect(&url).await })
        .persistent()
        .with_leases()
);
