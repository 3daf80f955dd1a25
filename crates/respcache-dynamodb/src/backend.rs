//! [`DynamoDbBackend`]: the connection to one table, and the stores in it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::Region;
use futures::StreamExt;
use respcache_core::{Backend, DynStore, Error, Name, Operation, Result, StoreSpec, Timestamp};

use crate::NAME;
use crate::config::{DynamoDbConfig, TableMode, redact};
use crate::connect::load_sdk_config;
use crate::item::{self, Layout};
use crate::query::{self, QuerySpec};
use crate::shared::Shared;
use crate::store::{DynamoDbStore, wipe_partition};
use crate::table;

/// The longest `connect` waits for the SDK to find the region and
/// credentials (instance metadata, SSO, ...) before it sends anything.
const LOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Attribute of a registry item: when the store was first opened (ms).
const CREATED_AT: &str = "created_at";

/// respcache on Amazon DynamoDB: every cache in one shared table, or each
/// cache in its own table; one partition per repository.
///
/// # Semantics
///
/// - Shared mode ([`TableMode::Shared`], `dynamodb://TABLE`): the table is
///   named by the URL or [`DynamoDbConfig::table`]; several caches share
///   it. A repository's entries are the partition `<cache>#<repository>`,
///   sorted by the encoded key (or `#` + its digest when the encoding is
///   over DynamoDB's 1024-byte sort key limit; the full key is then kept in
///   the `key` attribute). The items `pk = <cache>, sk = <repository>` list
///   a cache's stores.
/// - Per-cache mode ([`TableMode::PerCache`], `dynamodb://?table_prefix=P`):
///   the cache `C` is the table `<P><C>`, created (on demand, TTL on
///   `purge_at`) by the first `open_store` of `C` when it is missing. A
///   repository's entries are the partition `<repository>`, its parts
///   `<repository>#parts`, and the items `pk = #stores, sk = <repository>`
///   list the stores. `drop_store` of the cache's last store deletes the
///   table (unless `create_table=false`); an `open_store` meeting a table
///   being deleted waits until it is gone and creates it again.
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
    /// Shared mode: the table. Per-cache mode: the client and settings the
    /// caches' tables are made from.
    shared: Arc<Shared>,
    config: Arc<DynamoDbConfig>,
    layout: Layout,
    /// Per-cache mode: the tables known to exist, by name.
    tables: Arc<Mutex<HashMap<String, Arc<Shared>>>>,
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
        let sdk = tokio::time::timeout(LOAD_TIMEOUT, load_sdk_config(&config))
            .await
            .map_err(|_| {
                crate::error::backend_error(
                    respcache_core::ErrorKind::Timeout,
                    format!(
                        "finding the AWS region and credentials took over {LOAD_TIMEOUT:?} \
                         (set ?region= and AWS_* credentials, or an endpoint)"
                    ),
                )
            })
            .and_then(|loaded| loaded)
            .map_err(connect_context)?;
        DynamoDbBackend::from_client(Client::new(&sdk), config).await
    }

    /// Connects with an SDK configuration the program already has
    /// (credentials, region, HTTP client, retry and timeout settings...);
    /// `config`'s `endpoint` and `region`, when set, override it, and its
    /// `max_attempts` and timeouts are not used (set them in `sdk`).
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
    /// settings apply; its `region`, `endpoint`, `max_attempts` and timeouts
    /// are the client's business and are ignored.
    ///
    /// # Errors
    ///
    /// As [`connect`](DynamoDbBackend::connect).
    pub async fn from_client(client: Client, config: DynamoDbConfig) -> Result<Self> {
        let shared = Shared::new(client, &config);
        let layout = match &config.mode {
            TableMode::PerCache { prefix } => {
                // Tables come with their caches; check that DynamoDB answers.
                let shared = shared.for_table(format!("{prefix}<cache>"));
                shared
                    .client
                    .list_tables()
                    .limit(1)
                    .send()
                    .await
                    .map_err(|e| connect_context(shared.sdk_error(e)))?;
                Layout::PerCache
            }
            TableMode::Shared => {
                table::ensure(&shared, config.create_table)
                    .await
                    .map_err(connect_context)?;
                Layout::Shared
            }
        };
        Ok(DynamoDbBackend {
            shared: Arc::new(shared),
            config: Arc::new(config),
            layout,
            tables: Arc::default(),
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

    /// The table every cache of this backend lives in (per-cache mode:
    /// `<prefix><cache>`, see [`table_for`](DynamoDbBackend::table_for)).
    pub fn table(&self) -> &str {
        &self.shared.table
    }

    /// The table `cache` lives in.
    ///
    /// # Errors
    ///
    /// As [`DynamoDbConfig::table_for`].
    pub fn table_for(&self, cache: &Name) -> Result<String> {
        self.config.table_for(cache)
    }

    /// The table of `cache`; in per-cache mode, made sure to exist first
    /// when `ensure` is set.
    async fn cache_table(&self, cache: &Name, ensure: bool) -> Result<Arc<Shared>> {
        if self.layout == Layout::Shared {
            return Ok(Arc::clone(&self.shared));
        }
        let name = self.config.table_for(cache)?;
        if let Some(known) = self.known_tables().get(&name) {
            return Ok(Arc::clone(known));
        }
        let shared = Arc::new(self.shared.for_table(name.clone()));
        if ensure {
            table::ensure(&shared, self.config.create_table).await?;
            self.known_tables().insert(name, Arc::clone(&shared));
        }
        Ok(shared)
    }

    fn known_tables(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Shared>>> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the registry item of `spec`'s store.
    async fn register(&self, shared: &Shared, spec: &StoreSpec) -> Result<()> {
        shared
            .client
            .update_item()
            .table_name(shared.table.clone())
            .set_key(Some(item::primary(
                &self.layout.registry_pk(&spec.cache),
                spec.repository.as_str(),
            )))
            .update_expression("SET #at = if_not_exists(#at, :now)")
            .expression_attribute_names("#at", CREATED_AT)
            .expression_attribute_values(":now", item::n(Timestamp::now().as_millis()))
            .send()
            .await
            .map_err(|e| shared.sdk_error(e))?;
        Ok(())
    }

    /// The stores registered in `shared`'s table for `cache`, sorted.
    async fn registered(&self, shared: &Arc<Shared>, cache: &Name) -> Result<Vec<Name>> {
        let spec = QuerySpec::partition(self.layout.registry_pk(cache)).project(&[]);
        let mut pages = query::pages(Arc::clone(shared), spec);
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            for found in page?.items {
                match item::sort_key_of(&found).map(Name::new) {
                    Some(Ok(name)) => names.push(name),
                    _ => tracing::warn!(table = %shared.table, cache = %cache,
                        "respcache: ignoring a malformed store registry item"),
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Opens the store of `spec`, with its concrete type. The concrete
    /// store is not behind the backend's
    /// [`BackendGuard`](respcache_core::BackendGuard): it does not check
    /// the closed flag, and its errors name the backend but not the
    /// repository and operation; [`open_store`](Backend::open_store)
    /// returns it behind the guard.
    ///
    /// # Errors
    ///
    /// As [`Backend::open_store`].
    pub async fn open(&self, spec: &StoreSpec) -> Result<DynamoDbStore> {
        let guard = &self.shared.guard;
        guard.check_store(&spec.repository, Operation::OpenStore)?;
        let run = async {
            let mut shared = self.cache_table(&spec.cache, true).await?;
            match self.register(&shared, spec).await {
                // The cache's table was deleted (its last store dropped)
                // since we saw it: make it again.
                Err(e) if self.layout == Layout::PerCache && table::is_missing_table(&e) => {
                    self.known_tables().remove(&shared.table);
                    shared = self.cache_table(&spec.cache, true).await?;
                    self.register(&shared, spec).await?;
                }
                other => other?,
            }
            Ok(DynamoDbStore::new(shared, self.layout, spec))
        };
        run.await
            .map_err(guard.context(Operation::OpenStore, Some(&spec.repository)))
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
        let store = Arc::new(self.open(spec).await?);
        Ok(self.shared.guard.wrap(spec, store))
    }

    async fn drop_store(&self, cache: &Name, repository: &Name) -> Result<()> {
        let guard = &self.shared.guard;
        guard.check_store(repository, Operation::DropStore)?;
        let run = async {
            let shared = self.cache_table(cache, false).await?;
            if self.layout == Layout::PerCache {
                let stores = match self.registered(&shared, cache).await {
                    Ok(stores) => stores,
                    // No table, no store.
                    Err(e) if table::is_missing_table(&e) => return Ok(()),
                    Err(e) => return Err(e),
                };
                if self.config.create_table && stores.iter().all(|s| s == repository) {
                    // The cache's last store: its table goes with it.
                    self.known_tables().remove(&shared.table);
                    return table::delete(&shared).await;
                }
            }
            let layout = self.layout;
            let wiped = async {
                wipe_partition(&shared, &layout.entries_pk(cache, repository)).await?;
                wipe_partition(&shared, &layout.parts_pk(cache, repository)).await?;
                wipe_partition(&shared, &layout.leases_pk(cache, repository)).await?;
                shared
                    .client
                    .delete_item()
                    .table_name(shared.table.clone())
                    .set_key(Some(item::primary(
                        &layout.registry_pk(cache),
                        repository.as_str(),
                    )))
                    .send()
                    .await
                    .map_err(|e| shared.sdk_error(e))?;
                Ok(())
            };
            match wiped.await {
                Err(e) if layout == Layout::PerCache && table::is_missing_table(&e) => Ok(()),
                other => other,
            }
        };
        run.await
            .map_err(guard.context(Operation::DropStore, Some(repository)))
    }

    async fn list_stores(&self, cache: &Name) -> Result<Vec<Name>> {
        let guard = &self.shared.guard;
        guard.check(Operation::ListStores)?;
        let run = async {
            let shared = self.cache_table(cache, false).await?;
            match self.registered(&shared, cache).await {
                // A cache without a table has no stores.
                Err(e) if self.layout == Layout::PerCache && table::is_missing_table(&e) => {
                    Ok(Vec::new())
                }
                other => other,
            }
        };
        run.await
            .map_err(guard.context(Operation::ListStores, None))
    }

    async fn close(&self) -> Result<()> {
        self.shared.guard.close();
        Ok(())
    }
}

impl fmt::Debug for DynamoDbBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDbBackend")
            .field("table", &self.shared.table)
            .field("mode", &self.config.mode)
            .field("region", &self.config.region)
            .field("endpoint", &self.config.endpoint.as_deref().map(redact))
            .finish_non_exhaustive()
    }
}
