//! Builds the SDK client from a [`DynamoDbConfig`]: region, endpoint,
//! credentials, retries and timeouts.

use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::{
    Credentials, ProvideCredentials, Region, SharedCredentialsProvider,
};
use respcache_core::{ErrorKind, Result};

use crate::config::DynamoDbConfig;
use crate::error::backend_error;

/// The region used with an `endpoint` when no region is configured anywhere.
const LOCAL_REGION: &str = "us-east-1";

/// Loads the SDK configuration the way [`DynamoDbConfig`] documents.
pub(crate) async fn load_sdk_config(config: &DynamoDbConfig) -> Result<SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts.max(1)));
    loader = loader.timeout_config(timeout_config(config));
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    } else if config.endpoint.is_some() {
        // Local endpoints: never wait for the instance metadata service.
        loader = loader.region(
            RegionProviderChain::first_try(
                aws_config::environment::EnvironmentVariableRegionProvider::new(),
            )
            .or_else(aws_config::profile::ProfileFileRegionProvider::new())
            .or_else(Region::new(LOCAL_REGION)),
        );
    }
    if let Some(endpoint) = &config.endpoint {
        loader = loader
            .endpoint_url(endpoint.clone())
            .credentials_provider(local_credentials().await);
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(backend_error(
            ErrorKind::Configuration,
            "no AWS region: add ?region=... to the dynamodb:// URL, or set AWS_REGION",
        ));
    }
    Ok(sdk)
}

/// The SDK's timeouts from `config`: per attempt, per call, per connection.
pub(crate) fn timeout_config(config: &DynamoDbConfig) -> TimeoutConfig {
    let mut timeouts = TimeoutConfig::builder();
    timeouts.set_operation_attempt_timeout(config.timeout);
    timeouts.set_operation_timeout(config.operation_timeout);
    timeouts.set_connect_timeout(config.connect_timeout);
    timeouts.build()
}

/// Credentials for an explicit endpoint: the environment variables or the
/// profile files when they have some, otherwise static dummy credentials
/// (DynamoDB Local accepts any made of letters and digits only).
async fn local_credentials() -> SharedCredentialsProvider {
    let chain = CredentialsProviderChain::first_try(
        "Environment",
        aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
    )
    .or_else(
        "Profile",
        aws_config::profile::ProfileFileCredentialsProvider::builder().build(),
    );
    if chain.provide_credentials().await.is_ok() {
        SharedCredentialsProvider::new(chain)
    } else {
        tracing::debug!("respcache: no AWS credentials found; using dummy ones for the endpoint");
        SharedCredentialsProvider::new(Credentials::new(
            "respcachelocal",
            "respcachelocal",
            None,
            None,
            "respcache-dummy",
        ))
    }
}
