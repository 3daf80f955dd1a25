//! [`RedisBackend`]: the connection to one Redis server and its stores.

use std::fmt;
use std::sync::Arc;

use respcache_core::{
    Backend, BackendGuard, DynStore, Error, ErrorKind, Limits, Name, Operation, Result, StoreSpec,
    async_trait,
};

use crate::NAME;
use crate::config::RedisConfig;
use crate::connection::{Conn, Shared};
use crate::error::is_wrong_type;
use crate::layout::{entry_prefix, prefix_pattern, registry_key, slot_tag, tag_prefix};
use crate::store::{RedisStore, scan_step, unlink_matching};

/// Keys asked per `SCAN` step when a store is dropped.
const DROP_SCAN_COUNT: usize = 1000;

#[doc = include_str!("docs.md")]
pub struct RedisBackend {
    shared: Arc<Shared>,
    guard: BackendGuard,
}

impl RedisBackend {
    /// Connects to the server a `redis://` or `rediss://` URL names (see
    /// [`RedisConfig`] for the accepted forms).
    ///
    /// # Errors
    ///
    /// [`Configuration`](respcache_core::ErrorKind::Configuration) for a bad
    /// URL or refused credentials, [`Connection`](respcache_core::ErrorKind::Connection)
    /// when the server cannot be reached,
    /// [`Timeout`](respcache_core::ErrorKind::Timeout) when it does not
    /// answer within the connect timeout. Messages never show the password.
    pub async fn connect(url: &str) -> Result<Self> {
        let config =
            RedisConfig::from_url(url).map_err(|e| e.with_operation(Operation::Connect))?;
        RedisBackend::connect_with(config).await
    }

    /// Connects with a [`RedisConfig`].
    ///
    /// # Errors
    ///
    /// As for [`connect`](RedisBackend::connect).
    pub async fn connect_with(config: RedisConfig) -> Result<Self> {
        config
            .validate()
            .map_err(|e| e.with_operation(Operation::Connect))?;
        let shared = if config.is_cluster() {
            let nodes = config
                .cluster_connection_infos()
                .map_err(|e| e.with_operation(Operation::Connect))?;
            Shared::connect_cluster(
                nodes,
                config.to_string(),
                config.connect_timeout(),
                config.command_timeout(),
            )
            .await
        } else {
            let info = config
                .connection_info()
                .map_err(|e| e.with_operation(Operation::Connect))?;
            let client = redis::Client::open(info)
                .map_err(|e| crate::error::map_redis_error(e).with_operation(Operation::Connect))?;
            Shared::connect(
                client,
                config.to_string(),
                config.connect_timeout(),
                config.command_timeout(),
            )
            .await
        }
        .map_err(|e| e.with_operation(Operation::Connect))?;
        Ok(RedisBackend {
            shared: Arc::new(shared),
            guard: BackendGuard::new(NAME),
        })
    }

    /// Uses an existing `redis` [`Client`](redis::Client) (for options this
    /// crate does not expose: Unix sockets, custom TLS certificates, RESP3…),
    /// with the connect and command timeouts of `timeouts` (its address and
    /// credentials are ignored).
    ///
    /// # Errors
    ///
    /// As for [`connect`](RedisBackend::connect).
    pub async fn from_client(client: redis::Client, timeouts: &RedisConfig) -> Result<Self> {
        timeouts
            .validate()
            .map_err(|e| e.with_operation(Operation::Connect))?;
        let target = describe_client(&client);
        let shared = Shared::connect(
            client,
            target,
            timeouts.connect_timeout(),
            timeouts.command_timeout(),
        )
        .await
        .map_err(|e| e.with_operation(Operation::Connect))?;
        Ok(RedisBackend {
            shared: Arc::new(shared),
            guard: BackendGuard::new(NAME),
        })
    }

    /// Opens a store, typed (what [`open_store`](Backend::open_store)
    /// returns behind a pointer and the backend's [`BackendGuard`]). The
    /// typed store is not behind the guard: after [`close`](Backend::close)
    /// its calls fail with `Closed` because the connection is gone, and
    /// its errors name the backend but not the repository and operation.
    ///
    /// # Errors
    ///
    /// [`Closed`](respcache_core::ErrorKind::Closed) after
    /// [`close`](Backend::close); connection and timeout errors.
    pub async fn store(&self, spec: &StoreSpec) -> Result<RedisStore> {
        self.guard
            .check_store(&spec.repository, Operation::OpenStore)?;
        self.update_registry(redis::cmd("SADD"), &spec.cache, &spec.repository)
            .await
            .map_err(
                self.guard
                    .context(Operation::OpenStore, Some(&spec.repository)),
            )?;
        Ok(RedisStore::new(Arc::clone(&self.shared), spec.clone()))
    }

    /// Adds `repository` to (`SADD`) or removes it from (`SREM`) the set of
    /// `cache`'s stores. A value of another type under that key belongs to
    /// another program sharing the database: it is left alone with a
    /// warning, and the store works all the same (only `list_stores` cannot
    /// list it).
    async fn update_registry(
        &self,
        mut command: redis::Cmd,
        cache: &Name,
        repository: &Name,
    ) -> Result<()> {
        let key = registry_key(cache);
        command.arg(&key).arg(repository.as_str());
        match self.shared.query::<()>(&command).await {
            Err(e) if is_wrong_type(&e) => {
                tracing::warn!(
                    key = %key,
                    repository = %repository,
                    "respcache-redis: the store registry key holds another program's value \
                     (not a set); the store works but is not listed"
                );
                Ok(())
            }
            other => other,
        }
    }

    /// A handle on the underlying self-reconnecting connection, for commands
    /// of your own (cheap to clone; shares the backend's connection).
    ///
    /// # Errors
    ///
    /// [`Closed`](respcache_core::ErrorKind::Closed) after
    /// [`close`](Backend::close);
    /// [`Configuration`](respcache_core::ErrorKind::Configuration) on a
    /// cluster backend (use [`cluster_connection`](Self::cluster_connection)).
    pub fn connection(&self) -> Result<redis::aio::ConnectionManager> {
        match self.shared.connection()? {
            Conn::Single(con) => Ok(con),
            Conn::Cluster(_) => Err(not_this_kind("a Redis Cluster", "cluster_connection")),
        }
    }

    /// A handle on the cluster connection of a `redis+cluster://` backend,
    /// for commands of your own (cheap to clone; it routes each command to
    /// the master of its key's slot).
    ///
    /// # Errors
    ///
    /// [`Closed`](respcache_core::ErrorKind::Closed) after
    /// [`close`](Backend::close);
    /// [`Configuration`](respcache_core::ErrorKind::Configuration) on a
    /// single-server backend (use [`connection`](Self::connection)).
    pub fn cluster_connection(&self) -> Result<redis::cluster_async::ClusterConnection> {
        match self.shared.connection()? {
            Conn::Cluster(con) => Ok(con),
            Conn::Single(_) => Err(not_this_kind("one Redis server", "connection")),
        }
    }

    /// Whether this backend talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.shared.is_cluster()
    }

    /// Whether [`close`](Backend::close) was called on this handle.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    async fn drop_inner(&self, cache: &Name, repository: &Name) -> Result<()> {
        let cluster = self.shared.is_cluster();
        let pattern = prefix_pattern(&entry_prefix(cache, repository, cluster));
        let slot_key = slot_tag(cache, repository);
        let tags = prefix_pattern(&tag_prefix(cache, repository, cluster));
        unlink_matching(&self.shared, &tags, &slot_key).await?;
        let mut cursor = 0u64;
        loop {
            let (next, keys) =
                scan_step(&self.shared, &pattern, &slot_key, cursor, DROP_SCAN_COUNT).await?;
            if !keys.is_empty() {
                self.shared
                    .query::<()>(redis::cmd("UNLINK").arg(&keys))
                    .await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // Unregister last: if a step above fails, the store stays listed
        // and a later drop finishes the job.
        self.update_registry(redis::cmd("SREM"), cache, repository)
            .await
    }
}

#[async_trait]
impl Backend for RedisBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    /// No practical limit: Redis takes values up to 512 MiB.
    fn limits(&self) -> Limits {
        Limits::NONE
    }

    async fn open_store(&self, spec: &StoreSpec) -> Result<Arc<DynStore>> {
        let store = Arc::new(self.store(spec).await?);
        Ok(self.guard.wrap(spec, store))
    }

    async fn drop_store(&self, cache: &Name, repository: &Name) -> Result<()> {
        self.guard.check_store(repository, Operation::DropStore)?;
        self.drop_inner(cache, repository)
            .await
            .map_err(self.guard.context(Operation::DropStore, Some(repository)))
    }

    async fn list_stores(&self, cache: &Name) -> Result<Vec<Name>> {
        self.guard.check(Operation::ListStores)?;
        let key = registry_key(cache);
        let members: Vec<String> = self
            .shared
            .query(redis::cmd("SMEMBERS").arg(&key))
            .await
            .map_err(|e| {
                if is_wrong_type(&e) {
                    Error::new(
                        ErrorKind::Backend,
                        format!(
                            "the key {key:?} holds another program's value, not respcache's set \
                             of store names: the stores of this cache cannot be listed \
                             (rename or delete that key, or use another cache name)"
                        ),
                    )
                    .with_backend(NAME)
                    .with_source(e)
                } else {
                    e
                }
            })
            .map_err(self.guard.context(Operation::ListStores, None))?;
        let mut names: Vec<Name> = members
            .into_iter()
            .filter_map(|m| Name::new(m).ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Closes this handle: every later call on it and on its stores is a
    /// [`Closed`](respcache_core::ErrorKind::Closed) error, and the
    /// connection is dropped once calls in flight finish. Other handles
    /// (other `connect` calls) are not affected. Closing twice is fine.
    async fn close(&self) -> Result<()> {
        self.guard.close();
        self.shared.close();
        Ok(())
    }
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("server", &self.shared.target)
            .field("closed", &self.shared.is_closed())
            .finish()
    }
}

/// The error for asking a backend for the other kind of connection.
fn not_this_kind(what: &str, use_instead: &str) -> respcache_core::Error {
    respcache_core::Error::new(
        respcache_core::ErrorKind::Configuration,
        format!("this backend is connected to {what}: use `{use_instead}()`"),
    )
    .with_backend(NAME)
}

/// A client's address as a URL with the password hidden.
fn describe_client(client: &redis::Client) -> String {
    let info = client.get_connection_info();
    let settings = info.redis_settings();
    let scheme = match info.addr() {
        redis::ConnectionAddr::TcpTls { .. } => crate::TLS_SCHEME,
        redis::ConnectionAddr::Unix(_) => "redis+unix",
        _ => crate::SCHEME,
    };
    let user = match (settings.username(), settings.password()) {
        (Some(u), Some(_)) => format!("{u}:***@"),
        (Some(u), None) => format!("{u}@"),
        (None, Some(_)) => ":***@".to_owned(),
        (None, None) => String::new(),
    };
    format!("{scheme}://{user}{}/{}", info.addr(), settings.db())
}
