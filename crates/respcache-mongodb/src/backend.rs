//! [`MongoDbBackend`]: the client, and one database per cache.

use std::fmt;
use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::{Document, doc};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};
use respcache_core::{
    Backend, BackendGuard, DynStore, Error, ErrorKind, Limits, Name, Operation, Result, StoreSpec,
};
use tokio::sync::OnceCell;

use crate::NAME;
use crate::config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_SERVER_SELECTION_TIMEOUT, DateWrites, MongoDbConfig,
    redact_url, url_password,
};
use crate::document::MAX_PAYLOAD_BYTES;
use crate::error::{NAMESPACE_NOT_FOUND, Secret, has_code, map_mongodb_error, operation_timed_out};
use crate::indexes;
use crate::names::{collection_name, repository_name};
use crate::store::MongoDbStore;

/// How many operation timeouts a call over a whole store (`count`,
/// `clear`) may take: its time grows with the store.
const WHOLE_STORE_FACTOR: u32 = 6;

/// Databases MongoDB keeps for itself; no cache may use them.
const RESERVED_DATABASES: [&str; 3] = ["admin", "local", "config"];

/// Entries in MongoDB: a database per cache, a collection per repository, a
/// document per entry (its encoded key as `_id`), purged natively by a TTL
/// index.
///
/// # Semantics
///
/// Every call gives the same answers as the reference
/// [`MemoryBackend`](respcache_core::MemoryBackend). A `put` is one atomic
/// `$set` upsert: a concurrent reader sees the old entry or the new one.
/// Bulk calls are one round trip: `get_many` and `delete_many` use `$in`,
/// `put_many` one ordered client bulk write (MongoDB 8.0+; older servers get
/// single updates, 16 at a time). `count`, `clear` and `contains` filter on
/// the server, on the indexed `expires_at` (`null` = never stale); `scan` is
/// a cursor streamed batch by batch. The document layout is in the crate
/// docs.
///
/// # Native expiry
///
/// With a retention (`StoreSpec::retention`), each document carries
/// `purge_at = expires_at + retention` as a date, and a TTL index with
/// `expireAfterSeconds: 0` lets MongoDB delete it then (the TTL monitor runs
/// about once a minute, so deletion is late; every read checks `expires_at`
/// itself). The index never changes with the retention, so reopening a
/// store with another retention just writes other dates — no index
/// conflict; entries written before keep their purge date until rewritten.
///
/// # Limits
///
/// A document holds at most 16 MiB: payloads up to
/// [`MAX_PAYLOAD_BYTES`](crate::MAX_PAYLOAD_BYTES) (16 MiB − 256 KiB) are
/// accepted; a larger entry is refused with
/// [`ErrorKind::PayloadTooLarge`] before anything is sent. Cache names
/// `admin`, `local` and `config` are refused, and MongoDB does not allow two
/// database names that differ only in case.
///
/// # Errors and timeouts
///
/// Server selection, connect and per-call timeouts are
/// [`ErrorKind::Timeout`]; broken connections [`ErrorKind::Connection`].
/// The driver reconnects on its own: once a server that went away is back,
/// calls succeed again. Passwords never appear in `Debug` or errors.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> respcache_core::Result<()> {
/// use std::sync::Arc;
/// use respcache_core::{Request, ResponseCache, TemplateSettings, TextCodec};
/// use respcache_mongodb::MongoDbBackend;
///
/// let backend = MongoDbBackend::connect("mongodb://127.0.0.1:27017/?directConnection=true").await?;
/// let cache = ResponseCache::<String>::builder("weather")
///     .create_repository(TemplateSettings::new("forecast", "/forecast/{city}", TextCodec)?)
///     .connect(Arc::new(backend))
///     .await?;
/// cache.save(&Request::get("https://weather.example/forecast/oslo")?, &"snow".to_string()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MongoDbBackend {
    shared: Arc<Shared>,
}

/// What the server turned out to be.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Server {
    /// The nx-27017 emulator (keeps empty databases, stores `$set` dates as text).
    pub(crate) emulator: bool,
    /// Writes carrying a purge date rewrite the whole document.
    pub(crate) reinsert_dates: bool,
}

/// State the backend shares with its stores.
pub(crate) struct Shared {
    pub(crate) client: Client,
    owned: bool,
    /// The closed flag every store is checked against.
    guard: BackendGuard,
    operation_timeout: Option<Duration>,
    date_writes: DateWrites,
    server: OnceCell<Server>,
    pub(crate) no_bulk_write: AtomicBool,
    secret: Option<Secret>,
    url: Option<String>,
}

impl Shared {
    /// Maps a driver error, scrubbing the password.
    pub(crate) fn map(&self, err: mongodb::error::Error) -> Error {
        map_mongodb_error(err, self.secret.as_ref())
    }

    /// Runs one driver call under the operation timeout.
    pub(crate) async fn call<T>(
        &self,
        fut: impl IntoFuture<Output = std::result::Result<T, mongodb::error::Error>>,
    ) -> Result<T> {
        let fut = fut.into_future();
        let result = match self.operation_timeout {
            Some(limit) => tokio::time::timeout(limit, fut)
                .await
                .map_err(|_| operation_timed_out(limit))?,
            None => fut.await,
        };
        result.map_err(|e| self.map(e))
    }

    /// [`call`](Self::call) for a call over a whole store (`count`,
    /// `clear`), whose time grows with the store's size: under
    /// [`WHOLE_STORE_FACTOR`] times the operation timeout.
    pub(crate) async fn call_whole_store<T>(
        &self,
        fut: impl IntoFuture<Output = std::result::Result<T, mongodb::error::Error>>,
    ) -> Result<T> {
        let fut = fut.into_future();
        let result = match self.whole_store_timeout() {
            Some(limit) => tokio::time::timeout(limit, fut)
                .await
                .map_err(|_| operation_timed_out(limit))?,
            None => fut.await,
        };
        result.map_err(|e| self.map(e))
    }

    /// The limit of a call over a whole store, for the scan stream.
    pub(crate) fn whole_store_timeout(&self) -> Option<Duration> {
        self.operation_timeout
            .map(|limit| limit.saturating_mul(WHOLE_STORE_FACTOR))
    }

    /// Whether the backend was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.guard.is_closed()
    }

    /// Asks the server what it is, once (`buildInfo`; also proves it answers).
    pub(crate) async fn server(&self) -> Result<Server> {
        let server = self
            .server
            .get_or_try_init(|| async {
                let info = self
                    .call(
                        self.client
                            .database("admin")
                            .run_command(doc! { "buildInfo": 1 }),
                    )
                    .await?;
                let emulator = info
                    .get_str("process")
                    .is_ok_and(|p| p.starts_with("nx_27017") || p.starts_with("nx-27017"));
                let reinsert_dates = match self.date_writes {
                    DateWrites::Update => false,
                    DateWrites::Reinsert => true,
                    _ => emulator,
                };
                if emulator {
                    tracing::debug!(
                        reinsert_dates,
                        "respcache: the server is the nx-27017 emulator"
                    );
                }
                Ok::<_, Error>(Server {
                    emulator,
                    reinsert_dates,
                })
            })
            .await?;
        Ok(*server)
    }
}

impl MongoDbBackend {
    /// Connects to the server at `url` (`mongodb://` or `mongodb+srv://`)
    /// and checks that it answers.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`] for a bad URL; [`ErrorKind::Timeout`]
    /// when no server answered within the server selection timeout;
    /// [`ErrorKind::Connection`] for DNS or network failures.
    pub async fn connect(url: &str) -> Result<Self> {
        MongoDbBackend::connect_with(MongoDbConfig::from_url(url)?).await
    }

    /// Connects with a full [`MongoDbConfig`] and checks that the server
    /// answers.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with(config: MongoDbConfig) -> Result<Self> {
        MongoDbBackend::start(config).await.map_err(|e| {
            if e.operation().is_none() {
                e.with_operation(Operation::Connect)
            } else {
                e
            }
        })
    }

    async fn start(config: MongoDbConfig) -> Result<Self> {
        let secret = url_password(&config.url).map(|p| Secret::new(&p));
        let map = |e| map_mongodb_error(e, secret.as_ref());
        // `mongodb+srv://` asks DNS here: bounded like server selection.
        let parse_limit = config
            .server_selection_timeout
            .unwrap_or(DEFAULT_SERVER_SELECTION_TIMEOUT);
        let mut options = tokio::time::timeout(parse_limit, ClientOptions::parse(&config.url))
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    format!("resolving the hosts of the URL took over {parse_limit:?}"),
                )
                .with_backend(NAME)
            })?
            .map_err(map)?;
        options.server_selection_timeout = config
            .server_selection_timeout
            .or(options.server_selection_timeout)
            .or(Some(DEFAULT_SERVER_SELECTION_TIMEOUT));
        options.connect_timeout = config
            .connect_timeout
            .or(options.connect_timeout)
            .or(Some(DEFAULT_CONNECT_TIMEOUT));
        if options.app_name.is_none() {
            options.app_name = Some("respcache".to_owned());
        }
        let client = Client::with_options(options).map_err(map)?;
        let backend = MongoDbBackend::build(client, true, &config, secret);
        backend.shared.server().await?;
        Ok(backend)
    }

    /// Connects to [`MongoDbConfig::from_env`]: `RESPCACHE_MONGODB_URL`, or
    /// a server on this machine.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_from_env() -> Result<Self> {
        MongoDbBackend::connect_with(MongoDbConfig::from_env()?).await
    }

    /// Uses a client the program already has, with the default operation
    /// timeout and write strategy. Nothing is sent until the first call.
    /// [`close`](Backend::close) does not shut the client down.
    pub fn from_client(client: Client) -> Self {
        MongoDbBackend::from_client_with(client, &MongoDbConfig::default())
    }

    /// Uses a client the program already has, with `config`'s operation
    /// timeout and [`DateWrites`]. The config's URL and connection timeouts
    /// are not used: the client is already built.
    pub fn from_client_with(client: Client, config: &MongoDbConfig) -> Self {
        MongoDbBackend::build(client, false, config, None)
    }

    /// `secret` is `Some` only for a client built from `config.url`, whose
    /// redacted form is then shown by `Debug`.
    fn build(client: Client, owned: bool, config: &MongoDbConfig, secret: Option<Secret>) -> Self {
        MongoDbBackend {
            shared: Arc::new(Shared {
                client,
                owned,
                guard: BackendGuard::new(NAME),
                operation_timeout: config.operation_timeout,
                date_writes: config.date_writes,
                server: OnceCell::new(),
                no_bulk_write: AtomicBool::new(false),
                secret,
                url: owned.then(|| redact_url(&config.url)),
            }),
        }
    }

    /// The driver's client, for anything respcache does not do.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// The collection that holds `repository` of `cache` (named after the
    /// repository; escaped on the nx-27017 emulator, see the crate docs),
    /// for reading documents directly. It may not exist yet.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidName`] for a reserved cache name; errors of the
    /// first call to the server (which tells what it is).
    pub async fn collection(
        &self,
        cache: &Name,
        repository: &Name,
    ) -> Result<Collection<Document>> {
        self.shared
            .guard
            .check_store(repository, Operation::OpenStore)?;
        let db = self.database(cache)?;
        let server = self.shared.server().await?;
        Ok(db.collection(&collection_name(repository, server.emulator)))
    }

    /// The database that holds `cache`.
    fn database(&self, cache: &Name) -> Result<Database> {
        if RESERVED_DATABASES
            .iter()
            .any(|r| r.eq_ignore_ascii_case(cache.as_str()))
        {
            return Err(Error::new(
                ErrorKind::InvalidName,
                format!(
                    "{cache:?} is a database MongoDB keeps for itself; choose another cache name"
                ),
            )
            .with_backend(NAME));
        }
        Ok(self.shared.client.database(cache.as_str()))
    }
}

#[async_trait]
impl Backend for MongoDbBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn limits(&self) -> Limits {
        Limits::max_payload(MAX_PAYLOAD_BYTES)
    }

    async fn open_store(&self, spec: &StoreSpec) -> Result<Arc<DynStore>> {
        let guard = &self.shared.guard;
        guard.check_store(&spec.repository, Operation::OpenStore)?;
        let store = self
            .open_inner(spec)
            .await
            .map_err(guard.context(Operation::OpenStore, Some(&spec.repository)))?;
        Ok(guard.wrap(spec, Arc::new(store)))
    }

    async fn drop_store(&self, cache: &Name, repository: &Name) -> Result<()> {
        let guard = &self.shared.guard;
        guard.check_store(repository, Operation::DropStore)?;
        self.drop_inner(cache, repository)
            .await
            .map_err(guard.context(Operation::DropStore, Some(repository)))
    }

    async fn list_stores(&self, cache: &Name) -> Result<Vec<Name>> {
        let guard = &self.shared.guard;
        guard.check(Operation::ListStores)?;
        self.list_inner(cache)
            .await
            .map_err(guard.context(Operation::ListStores, None))
    }

    async fn close(&self) -> Result<()> {
        if !self.shared.guard.close() {
            return Ok(());
        }
        if self.shared.owned {
            // `immediate`: an unfinished scan must not keep close waiting.
            self.shared.client.clone().shutdown().immediate(true).await;
        }
        Ok(())
    }
}

impl MongoDbBackend {
    async fn open_inner(&self, spec: &StoreSpec) -> Result<MongoDbStore> {
        let db = self.database(&spec.cache)?;
        let server = self.shared.server().await?;
        let coll = db.collection::<Document>(&collection_name(&spec.repository, server.emulator));
        let ttl = self.shared.call(indexes::ensure(&db, &coll)).await?;
        tracing::debug!(collection = %coll.namespace(), ?ttl, "respcache: store opened");
        Ok(MongoDbStore::new(
            Arc::clone(&self.shared),
            coll,
            spec.clone(),
            server.reinsert_dates,
        ))
    }

    async fn drop_inner(&self, cache: &Name, repository: &Name) -> Result<()> {
        let db = self.database(cache)?;
        let server = self.shared.server().await?;
        let coll = db.collection::<Document>(&collection_name(repository, server.emulator));
        let leases = db.collection::<Document>(&crate::lease::collection_name(coll.name()));
        for coll in [&coll, &leases] {
            self.shared
                .call(async {
                    match coll.drop().await {
                        Err(e) if has_code(&e, NAMESPACE_NOT_FOUND) => Ok(()),
                        other => other,
                    }
                })
                .await?;
        }
        // Genuine MongoDB forgets a database with no collections by itself.
        // The emulator keeps it (and its TTL rules): drop it once empty.
        if server.emulator {
            let left = self.shared.call(db.list_collection_names()).await?;
            if left.is_empty() {
                self.shared.call(db.drop()).await?;
            }
        }
        Ok(())
    }

    async fn list_inner(&self, cache: &Name) -> Result<Vec<Name>> {
        let db = self.database(cache)?;
        let server = self.shared.server().await?;
        let names = self.shared.call(db.list_collection_names()).await?;
        if server.emulator && names.is_empty() {
            // The emulator creates a database on any access, this listing
            // included: drop it again so that a look leaves nothing behind.
            // (Asking `listDatabases` first would be worse: on the emulator
            // it re-creates databases that other clients drop meanwhile.)
            self.shared.call(db.drop()).await?;
        }
        let mut stores: Vec<Name> = names
            .iter()
            .filter_map(|n| repository_name(n, server.emulator))
            .collect();
        stores.sort();
        Ok(stores)
    }
}

impl fmt::Debug for MongoDbBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoDbBackend")
            .field(
                "url",
                &self
                    .shared
                    .url
                    .as_deref()
                    .unwrap_or("<client given by the program>"),
            )
            .field("operation_timeout", &self.shared.operation_timeout)
            .field("date_writes", &self.shared.date_writes)
            .field("closed", &self.shared.is_closed())
            .finish()
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("url", &self.url)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}
