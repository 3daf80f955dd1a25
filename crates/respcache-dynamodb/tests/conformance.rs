//! The respcache conformance suite against DynamoDB (Local):
//! `RESPCACHE_DYNAMODB_URL`, by default DynamoDB Local on 127.0.0.1:8000.

use respcache_dynamodb::DynamoDbBackend;

const DEFAULT_URL: &str =
    "dynamodb://respcache-test?endpoint=http://127.0.0.1:8000&region=us-east-1";

fn url() -> String {
    std::env::var("RESPCACHE_DYNAMODB_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

respcache_conformance::main!(
    respcache_conformance::Factory::new("dynamodb", || async {
        DynamoDbBackend::connect(&url()).await
    })
    .persistent()
    .with_leases()
);
