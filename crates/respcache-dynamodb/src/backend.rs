//! [`DynamoDbBackend`]: the connection to one table, and the stores in it.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::Region;
use futures::StreamExt;
use respcache_core::{Backend, DynStore, Error, Name, Operation, Result, StoreSpec, Timestamp};

use crate::NAME;
use crate::config::{DynamoDbConfig, redact};
use crate::connect::load_sdk_config;
use crate::item;
use crate::query::{self, QuerySpec};
use crate::shared::Shared;
use crate::store::{DynamoDbStore, wipe_partition};
use crate::table;

/// Attribute of a registry item: when the store was first opened (ms).
const CREATED_AT: &str = "created_at";

/// respcache on Amazon DynamoDB: every cache in one table, one partition per
/// repository.
///
/// # Semantics
///
/// - The table is named by the URL or [`DynamoDbConfig::table`]; several
///   caches share it. A repository's entries are the partition
///   `<cache>#<repository>`, sorted by the encoded key (or `#` + its digest
///   when the encoding is over DynamoDB's 1024-byte sort key limit; the full
///   key is then kept in the `key` attribute). The items
///   `pk = <cache>, sk = <repository>` list a cache's stores.
/// - `scan`, `count`, `clear` and `drop_store` are paginated Queries over
///   the repository's partition, never a table Scan; `count` uses
///   `Select: COUNT`, `clear` reads keys only.
/// - `get_many` uses BatchGetItem (100 keys per request), `put_many` and
///   `clear(All)` BatchWriteItem (25 per request), a few requests in flight
///   ([`DynamoDbConfig::batch_concurrency`]); unprocessed items are retried
///   with backoff for [`DynamoDbConfig::batch_retry_timeout`].
/// - `delete_many` and `clear(Fresh | Expired)` send one DeleteItem per
///   entry, `batch_concurrency` in flight: `delete_many` counts only what it
///   really deleted, and a filtered `clear` deletes an entry only if it
///   still matches the selection (a condition), so an entry rewritten
///   during the `clear` is kept.
/// - Reads are strongly consistent by default.
///
/// # Native expiry
///
/// The TTL attribute `purge_at` is `expires_at + retention` in epoch
/// seconds ([`StoreSpec::purge_at`]), never `expires_at` itself: stale
/// entries stay readable for revalidation. DynamoDB deletes expired items
/// late (often days), so every read also hides items past `purge_at`.
///
/// # Limits
///
/// None on payload size: an entry whose item would pass the 400 KB item
/// limit is split into parts of 384 KiB under `<cache>#<repository>#parts`,
/// written before the manifest item that names them, so readers see the
/// old or the new version, never a mix. Parts are never counted or scanned
/// as entries; `delete`, `clear`, overwrites and `drop_store` remove them.
///
/// # Blocking
///
/// Never: every call is an async HTTPS request through the AWS SDK, whose
/// standard retry mode retries throttling and transient errors.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> respcache_core::Result<()> {
/// use respcache_dynamodb::DynamoDbBackend;
///
/// let backend = DynamoDbBackend::connect(
///     "dynamodb://my-cache-table?endpoint=http://127.0.0.1:8000&region=us-east-1",
/// )
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DynamoDbBackend {
    shared: Arc<Shared>,
    config: Arc<DynamoDbConfig>,
}

impl DynamoDbBackend {
    /// Connects from a `dynamodb://TABLE?...` URL (see [`DynamoDbConfig`]),
    /// creating the table if it is missing and the URL allows.
    ///
    /// # Errors
    ///
    /// [`Configuration`](respcache_core::ErrorKind::Configuration) for a bad
    /// URL, no region, bad credentials, or a missing table with
    /// `create_table=false`; [`Connection`](respcache_core::ErrorKind::Connection)
    /// or [`Timeout`](respcache_core::ErrorKind::Timeout) when DynamoDB cannot
    /// be reached.
    pub async fn connect(url: &str) -> Result<Self> {
        let config = DynamoDbConfig::from_url(url).map_err(connect_context)?;
        DynamoDbBackend::connect_with(config).await
    }

    /// Connects with `config`; credentials come from the standard chain.
    ///
    /// # Errors
    ///
    /// As [`connect`](DynamoDbBackend::connect).
    pub async fn connect_with(config: DynamoDbConfig) -> Result<Self> {
        let sdk = load_sdk_config(&config).await.map_err(connect_context)?;
        DynamoDbBackend::from_client(Client::new(&sdk), config).await
    }

    /// Connects with an SDK configuration the program already has
    /// (credentials, region, HTTP client, retry and timeout settings...);
    /// `config`'s `endpoint` and `region`, when set, override it, and its
    /// `max_attempts` and `timeout` are not used.
    ///
    /// # Errors
    ///
    /// As [`connect`](DynamoDbBackend::connect).
    pub async fn from_sdk_config(
        sdk: &aws_config::SdkConfig,
        config: DynamoDbConfig,
    ) -> Result<Self> {
        let mut builder = aws_sdk_dynamodb::config::Builder::from(sdk);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint.clone());
        }
        if let Some(region) = &config.region {
            builder = builder.region(Region::new(region.clone()));
        }
        DynamoDbBackend::from_client(Client::from_conf(builder.build()), config).await
    }

    /// Uses a client the program already has. `config`'s table and behaviour
    /// settings apply; its `region`, `endpoint`, `max_attempts` and `timeout`
    /// are the client's business and are ignored.
    ///
    /// # Errors
    ///
    /// As [`connect`](DynamoDbBackend::connect).
    pub async fn from_client(client: Client, config: DynamoDbConfig) -> Result<Self> {
        let shared = Arc::new(Shared::new(client, &config));
        table::ensure(&shared, config.create_table)
            .await
            .map_err(connect_context)?;
        Ok(DynamoDbBackend {
            shared,
            config: Arc::new(config),
        })
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// The configuration.
    pub fn config(&self) -> &DynamoDbConfig {
        &self.config
    }

    /// The table every cache of this backend lives in.
    pub fn table(&self) -> &str {
        &self.shared.table
    }

    /// Opens the store of `spec`, with its concrete type.
    ///
    /// # Errors
    ///
    /// As [`Backend::open_store`].
    pub async fn open(&self, spec: &StoreSpec) -> Result<DynamoDbStore> {
        let run = async {
            self.shared.check_open()?;
            self.shared
                .client
                .update_item()
                .table_name(self.shared.table.clone())
                .set_key(Some(item::primary(
                    &item::registry_pk(&spec.cache),
                    spec.repository.as_str(),
                )))
                .update_expression("SET #at = if_not_exists(#at, :now)")
                .expression_attribute_names("#at", CREATED_AT)
                .expression_attribute_values(":now", item::n(Timestamp::now().as_millis()))
                .send()
                .await
                .map_err(|e| self.shared.sdk_error(e))?;
            Ok(DynamoDbStore::new(Arc::clone(&self.shared), spec))
        };
        run.await
            .map_err(|e: Error| e.in_context(NAME, spec.repository.as_str(), Operation::OpenStore))
    }
}

fn connect_context(e: Error) -> Error {
    let e = if e.backend().is_none() {
        e.with_backend(NAME)
    } else {
        e
    };
    if e.operation().is_none() {
        e.with_operation(Operation::Connect)
    } else {
        e
    }
}

#[async_trait]
impl Backend for DynamoDbBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn open_store(&self, spec: &StoreSpec) -> Result<Arc<DynStore>> {
        Ok(Arc::new(self.open(spec).await?))
    }

    async fn drop_store(&self, cache: &Name, repository: &Name) -> Result<()> {
        let run = async {
            self.shared.check_open()?;
            wipe_partition(&self.shared, &item::entries_pk(cache, repository)).await?;
            wipe_partition(&self.shared, &item::parts_pk(cache, repository)).await?;
            self.shared
                .client
                .delete_item()
                .table_name(self.shared.table.clone())
                .set_key(Some(item::primary(
                    &item::registry_pk(cache),
                    repository.as_str(),
                )))
                .send()
                .await
                .map_err(|e| self.shared.sdk_error(e))?;
            Ok(())
        };
        run.await
            .map_err(|e: Error| e.in_context(NAME, repository.as_str(), Operation::DropStore))
    }

    async fn list_stores(&self, cache: &Name) -> Result<Vec<Name>> {
        let run = async {
            self.shared.check_open()?;
            let spec = QuerySpec::partition(item::registry_pk(cache)).project(&[]);
            let mut pages = query::pages(Arc::clone(&self.shared), spec);
            let mut names = Vec::new();
            while let Some(page) = pages.next().await {
                for found in page?.items {
                    match item::sort_key_of(&found).map(Name::new) {
                        Some(Ok(name)) => names.push(name),
                        _ => tracing::warn!(table = %self.shared.table, cache = %cache,
                            "respcache: ignoring a malformed store registry item"),
                    }
                }
            }
            names.sort();
            Ok(names)
        };
        run.await.map_err(|e: Error| {
            let e = if e.backend().is_none() {
                e.with_backend(NAME)
            } else {
                e
            };
            if e.operation().is_none() {
                e.with_operation(Operation::ListStores)
            } else {
                e
            }
        })
    }

    async fn close(&self) -> Result<()> {
        self.shared.close();
        Ok(())
    }
}

impl fmt::Debug for DynamoDbBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDbBackend")
            .field("table", &self.shared.table)
            .field("region", &self.config.region)
            .field("endpoint", &self.config.endpoint.as_deref().map(redact))
            .finish_non_exhaustive()
    }
}
