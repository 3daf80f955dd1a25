//! The backends under test: which ones exist, how to reach them, and how a
//! second process reaches the same data (for the scan memory probe).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use respcache_core::{Backend, MemoryBackend};
use respcache_fs::{FsBackend, FsConfig};
use respcache_sqlite::SqliteBackend;
use tempfile::TempDir;

use crate::Result;

/// How long a service may take to answer a connect before its rows are
/// marked `unreachable`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default Redis URL (`RESPCACHE_REDIS_URL` overrides it).
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";
/// The default MongoDB URL (`RESPCACHE_MONGODB_URL` overrides it).
pub const DEFAULT_MONGODB_URL: &str = "mongodb://127.0.0.1:27017/?directConnection=true";
/// The default DynamoDB URL (`RESPCACHE_DYNAMODB_URL` overrides it):
/// DynamoDB Local on this machine.
pub const DEFAULT_DYNAMODB_URL: &str =
    "dynamodb://respcache-bench?endpoint=http://127.0.0.1:8000&region=us-east-1";

/// One of the built-in backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackendKind {
    /// [`MemoryBackend`], the reference implementation.
    Memory,
    /// [`SqliteBackend`] on a database file in a temporary folder.
    Sqlite,
    /// [`FsBackend`] in a temporary folder.
    Fs,
    /// Redis at `RESPCACHE_REDIS_URL`.
    Redis,
    /// MongoDB at `RESPCACHE_MONGODB_URL`.
    MongoDb,
    /// DynamoDB at `RESPCACHE_DYNAMODB_URL`.
    DynamoDb,
}

impl BackendKind {
    /// Every backend, in table order.
    pub const ALL: [BackendKind; 6] = [
        BackendKind::Memory,
        BackendKind::Sqlite,
        BackendKind::Fs,
        BackendKind::Redis,
        BackendKind::MongoDb,
        BackendKind::DynamoDb,
    ];

    /// The name the table and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Memory => "memory",
            BackendKind::Sqlite => "sqlite",
            BackendKind::Fs => "fs",
            BackendKind::Redis => "redis",
            BackendKind::MongoDb => "mongodb",
            BackendKind::DynamoDb => "dynamodb",
        }
    }

    /// The backend called `name`.
    pub fn parse(name: &str) -> Option<BackendKind> {
        BackendKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether this build includes the backend (Redis, MongoDB and DynamoDB
    /// are cargo features of this crate, on by default).
    pub fn compiled(self) -> bool {
        match self {
            BackendKind::Memory | BackendKind::Sqlite | BackendKind::Fs => true,
            BackendKind::Redis => cfg!(feature = "redis"),
            BackendKind::MongoDb => cfg!(feature = "mongodb"),
            BackendKind::DynamoDb => cfg!(feature = "dynamodb"),
        }
    }

    /// Whether the backend needs a server.
    pub fn is_service(self) -> bool {
        matches!(
            self,
            BackendKind::Redis | BackendKind::MongoDb | BackendKind::DynamoDb
        )
    }

    /// The service URL (from its environment variable, or the default);
    /// `None` for embedded backends.
    pub fn service_url(self) -> Option<String> {
        let (var, default) = match self {
            BackendKind::Redis => ("RESPCACHE_REDIS_URL", DEFAULT_REDIS_URL),
            BackendKind::MongoDb => ("RESPCACHE_MONGODB_URL", DEFAULT_MONGODB_URL),
            BackendKind::DynamoDb => ("RESPCACHE_DYNAMODB_URL", DEFAULT_DYNAMODB_URL),
            _ => return None,
        };
        Some(std::env::var(var).unwrap_or_else(|_| default.to_owned()))
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A connected backend and what the benchmarks need beside it.
pub struct Connected {
    /// Which backend.
    pub kind: BackendKind,
    /// The backend, as the core and `CachedSession` hold it.
    pub backend: Arc<dyn Backend>,
    /// The concrete filesystem backend (the raw file read needs the entry
    /// paths).
    pub fs: Option<Arc<FsBackend>>,
    /// The SQLite database file (the raw `SELECT` opens it).
    pub sqlite_path: Option<PathBuf>,
    /// Where another process finds the same data: the database file, the
    /// root folder, or the service URL. `None` for memory.
    pub location: Option<String>,
    /// Keeps the temporary folder of SQLite and fs until the end.
    _dir: Option<TempDir>,
}

impl fmt::Debug for Connected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connected")
            .field("kind", &self.kind)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// Connects to `kind` in a new temporary folder (SQLite, fs), in memory,
/// or at its service URL. An unreachable service is an error within
/// [`CONNECT_TIMEOUT`].
pub async fn connect(kind: BackendKind) -> Result<Connected> {
    let dir = match kind {
        BackendKind::Sqlite | BackendKind::Fs => Some(
            tempfile::Builder::new()
                .prefix("respcache-bench-")
                .tempdir()?,
        ),
        _ => None,
    };
    let location = match (&dir, kind) {
        (Some(dir), BackendKind::Sqlite) => {
            Some(dir.path().join("cache.sqlite").display().to_string())
        }
        (Some(dir), _) => Some(dir.path().join("fs").display().to_string()),
        (None, _) => kind.service_url(),
    };
    let mut connected = connect_at(kind, location.as_deref()).await?;
    connected._dir = dir;
    Ok(connected)
}

/// Connects to `kind` at `location` (a database file, a root folder, a
/// service URL; ignored for memory).
pub async fn connect_at(kind: BackendKind, location: Option<&str>) -> Result<Connected> {
    let connect = async {
        let need = || -> Result<&str> {
            location.ok_or_else(|| format!("the {kind} backend needs a location").into())
        };
        let mut fs = None;
        let mut sqlite_path = None;
        let backend: Arc<dyn Backend> = match kind {
            BackendKind::Memory => Arc::new(MemoryBackend::new()),
            BackendKind::Sqlite => {
                let path = PathBuf::from(need()?);
                sqlite_path = Some(path.clone());
                Arc::new(SqliteBackend::open(path).await?)
            }
            BackendKind::Fs => {
                let backend = Arc::new(FsBackend::connect(FsConfig::new(need()?)).await?);
                fs = Some(Arc::clone(&backend));
                backend
            }
            BackendKind::Redis => connect_service(kind, need()?).await?,
            BackendKind::MongoDb => connect_service(kind, need()?).await?,
            BackendKind::DynamoDb => connect_service(kind, need()?).await?,
        };
        Ok::<_, crate::BoxError>(Connected {
            kind,
            backend,
            fs,
            sqlite_path,
            location: location.map(str::to_owned),
            _dir: None,
        })
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}").into()),
    }
}

#[allow(clippy::unused_async)] // Every arm but the compiled-out ones awaits.
async fn connect_service(kind: BackendKind, url: &str) -> Result<Arc<dyn Backend>> {
    let _ = url;
    match kind {
        #[cfg(feature = "redis")]
        BackendKind::Redis => Ok(Arc::new(respcache_redis::RedisBackend::connect(url).await?)),
        #[cfg(feature = "mongodb")]
        BackendKind::MongoDb => Ok(Arc::new(
            respcache_mongodb::MongoDbBackend::connect(url).await?,
        )),
        #[cfg(feature = "dynamodb")]
        BackendKind::DynamoDb => Ok(Arc::new(
            respcache_dynamodb::DynamoDbBackend::connect(url).await?,
        )),
        other => Err(format!(
            "the {other} backend is not compiled in (cargo feature `{other}` of respcache-bench)"
        )
        .into()),
    }
}
