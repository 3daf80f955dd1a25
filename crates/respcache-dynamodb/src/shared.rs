//! [`Shared`]: what a backend and all its stores use together.

use std::fmt;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use respcache_core::{BackendGuard, Error, ErrorKind};

use crate::NAME;
use crate::config::DynamoDbConfig;
use crate::error::{backend_error, map_sdk_error};

/// The client, the table and the settings every request needs (one per
/// table; the backend and all its tables share one [`BackendGuard`]).
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) table: String,
    pub(crate) consistent_read: bool,
    pub(crate) batch_concurrency: usize,
    pub(crate) batch_retry_timeout: Duration,
    pub(crate) page_size: i32,
    /// The closed flag every store is checked against.
    pub(crate) guard: BackendGuard,
}

impl Shared {
    pub(crate) fn new(client: Client, config: &DynamoDbConfig) -> Self {
        Shared {
            client,
            table: config.table.clone(),
            consistent_read: config.consistent_read,
            batch_concurrency: config.batch_concurrency.max(1),
            batch_retry_timeout: config.batch_retry_timeout,
            page_size: i32::try_from(config.page_size.max(1)).unwrap_or(i32::MAX),
            guard: BackendGuard::new(NAME),
        }
    }

    /// The same client, settings and guard, on `table`.
    pub(crate) fn for_table(&self, table: String) -> Self {
        Shared {
            client: self.client.clone(),
            table,
            consistent_read: self.consistent_read,
            batch_concurrency: self.batch_concurrency,
            batch_retry_timeout: self.batch_retry_timeout,
            page_size: self.page_size,
            guard: self.guard.clone(),
        }
    }

    /// Maps an SDK error, naming this table.
    pub(crate) fn sdk_error<E, R>(&self, err: SdkError<E, R>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        map_sdk_error(err, &self.table)
    }
}

/// A request the SDK refused to build (a required field missing): a bug.
pub(crate) fn build_error(err: aws_sdk_dynamodb::error::BuildError) -> Error {
    backend_error(ErrorKind::Backend, "could not build a DynamoDB request").with_source(err)
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("table", &self.table)
            .field("closed", &self.guard.is_closed())
            .finish_non_exhaustive()
    }
}
