//! The respcache conformance suite against DynamoDB (Local):
//! `RESPCACHE_DYNAMODB_URL`, by default DynamoDB Local on 127.0.0.1:8000.
//! Unreachable: every case is ignored, or failed under `CI=true`.
//!
//! The cases test behaviour, not time limits (the fault tests set their
//! own): each SDK call gets 30 s here, since DynamoDB Local on a loaded
//! 2-core CI machine once took over the default 5 s for one page of the
//! 100,000-entry scan.

use std::time::Duration;

use respcache_conformance::services::DYNAMODB;
use respcache_dynamodb::{DynamoDbBackend, DynamoDbConfig};

respcache_conformance::main!(
    DYNAMODB
        .factory(|url| async move {
            let mut config = DynamoDbConfig::from_url(&url)?;
            config.operation_timeout = Some(Duration::from_secs(30));
            DynamoDbBackend::connect_with(config).await
        })
        .persistent()
        .with_leases()
);
