//! The respcache conformance suite against DynamoDB (Local) with a table
//! per cache: `RESPCACHE_DYNAMODB_URL` (by default DynamoDB Local on
//! 127.0.0.1:8000) with its table replaced by the prefix `respcache-pc-`.

use respcache_dynamodb::{DynamoDbBackend, DynamoDbConfig};

const DEFAULT_URL: &str =
    "dynamodb://respcache-test?endpoint=http://127.0.0.1:8000&region=us-east-1";

fn config() -> respcache_core::Result<DynamoDbConfig> {
    let url = std::env::var("RESPCACHE_DYNAMODB_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    DynamoDbConfig::from_url(&url)?.with_table_prefix("respcache-pc-")
}

respcache_conformance::main!(
    respcache_conformance::Factory::new("dynamodb-per-cache", || async {
        DynamoDbBackend::connect_with(config()?).await
    })
    .persistent()
    .with_leases()
);
