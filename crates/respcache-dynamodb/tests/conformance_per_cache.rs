//! The respcache conformance suite against DynamoDB (Local) with a table
//! per cache: `RESPCACHE_DYNAMODB_URL` (by default DynamoDB Local on
//! 127.0.0.1:8000) with its table replaced by the prefix `respcache-pc-`.

use respcache_conformance::services::DYNAMODB;
use respcache_dynamodb::{DynamoDbBackend, DynamoDbConfig};

respcache_conformance::main!(
    DYNAMODB
        .factory_at("dynamodb-per-cache", DYNAMODB.url(), |url| async move {
            let config = DynamoDbConfig::from_url(&url)?.with_table_prefix("respcache-pc-")?;
            DynamoDbBackend::connect_with(config).await
        })
        .persistent()
        .with_leases()
);
