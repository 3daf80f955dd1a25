//! The respcache conformance suite against DynamoDB (Local) with a table
//! per cache: `RESPCACHE_DYNAMODB_URL` (by default DynamoDB Local on
//! 127.0.0.1:8000) with its table replaced by the prefix `respcache-pc-`.
//! Each SDK call gets 30 s, as in `conformance.rs` (the cases test
//! behaviour, not time limits).

use std::time::Duration;

use respcache_conformance::services::DYNAMODB;
use respcache_dynamodb::{DynamoDbBackend, DynamoDbConfig};

respcache_conformance::main!(
    DYNAMODB
        .factory_at("dynamodb-per-cache", DYNAMODB.url(), |url| async move {
            let mut config = DynamoDbConfig::from_url(&url)?.with_table_prefix("respcache-pc-")?;
            config.operation_timeout = Some(Duration::from_secs(30));
            DynamoDbBackend::connect_with(config).await
        })
        .persistent()
        .with_leases()
);
