//! The raw baselines: what the same read costs without respcache, measured
//! by the same harness in the same run — a rusqlite point `SELECT` of the
//! same blob (inline and through one tokio-rusqlite `call`), a file read of
//! the same file, a Redis `GET` of the same bytes, and an uncached hyper
//! `GET` to the same local origin.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use respcache_core::{Key, Name};
use rusqlite::{Connection, OpenFlags, OptionalExtension as _};

use crate::Result;
use crate::store_ops::{HIT_KEYS, Hits, Size};

/// The SQL of the raw point read: the `payload` column of the row the
/// SQLite backend keeps the entry in (table `<cache>:<repository>`, key
/// columns `method` and `f_id`, as its documentation lays out).
fn select_sql(cache: &Name, repository: &str) -> String {
    format!(
        "SELECT payload FROM \"{}:{repository}\" WHERE method = ?1 AND f_id = ?2",
        cache.as_str()
    )
}

fn key_id(key: &Key) -> Result<&str> {
    key.fields()
        .first()
        .and_then(|p| p.as_text())
        .ok_or_else(|| "a benchmark key without its text field".into())
}

/// A plain `rusqlite::Connection` on the SQLite backend's database file,
/// reading the same rows with a cached prepared statement, on the calling
/// thread.
#[derive(Debug)]
pub struct RawSqlite {
    conn: Mutex<Connection>,
    sql: String,
}

impl RawSqlite {
    /// Opens `path` read-only for the rows of repository `repository` of
    /// `cache`.
    pub fn open(path: &Path, cache: &Name, repository: &str) -> Result<RawSqlite> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Ok(RawSqlite {
            conn: Mutex::new(conn),
            sql: select_sql(cache, repository),
        })
    }

    /// One point read of `key`'s payload; fails unless it is `len` bytes.
    pub fn read(&self, key: &Key, len: usize) -> Result<()> {
        let id = key_id(key)?;
        let conn = self.conn.lock().map_err(|_| "poisoned")?;
        let mut stmt = conn.prepare_cached(&self.sql)?;
        let got: Option<Vec<u8>> = stmt
            .query_row((key.method(), id), |row| row.get(0))
            .optional()?;
        check_len(got.map(|b| b.len()), len)
    }
}

/// The same point read through one `tokio_rusqlite::Connection::call` per
/// read (two cross-thread hops).
#[derive(Debug)]
pub struct RawTokioSqlite {
    conn: tokio_rusqlite::Connection,
    sql: String,
}

impl RawTokioSqlite {
    /// Opens `path` read-only, as [`RawSqlite::open`].
    pub async fn open(path: PathBuf, cache: &Name, repository: &str) -> Result<RawTokioSqlite> {
        let conn = tokio_rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .await?;
        Ok(RawTokioSqlite {
            conn,
            sql: select_sql(cache, repository),
        })
    }

    /// One point read of `key`'s payload in one `call`.
    pub async fn read(&self, key: &Key, len: usize) -> Result<()> {
        let id = key_id(key)?.to_owned();
        let method = key.method().to_owned();
        let sql = self.sql.clone();
        let got = self
            .conn
            .call(move |c| {
                let mut stmt = c.prepare_cached(&sql)?;
                stmt.query_row((method, id), |row| row.get::<_, Vec<u8>>(0))
                    .optional()
            })
            .await
            .map_err(|e| e.to_string())?;
        check_len(got.map(|b| b.len()), len)
    }
}

/// `std::fs::read` of the files the filesystem backend wrote.
#[derive(Debug)]
pub struct RawFile {
    small: Vec<PathBuf>,
    large: Vec<PathBuf>,
}

impl RawFile {
    /// The entry files of `hits`' keys, as `path_of` names them.
    pub fn new(hits: &Hits, path_of: impl Fn(&Key) -> PathBuf) -> RawFile {
        let paths = |size| (0..HIT_KEYS).map(|i| path_of(hits.key(size, i))).collect();
        RawFile {
            small: paths(Size::Small),
            large: paths(Size::Large),
        }
    }

    /// One read of the whole file of run `i`; fails unless it holds at
    /// least the payload.
    pub fn read(&self, size: Size, i: u64) -> Result<()> {
        let paths = match size {
            Size::Small => &self.small,
            Size::Large => &self.large,
        };
        let bytes = std::fs::read(&paths[(i % HIT_KEYS) as usize])?;
        if bytes.len() < size.bytes() {
            return Err(format!("{} B read, wanted at least {}", bytes.len(), size.bytes()).into());
        }
        Ok(())
    }
}

/// A Redis `GET` of the same payload bytes, stored under keys of their own,
/// over the same kind of connection the backend uses (a
/// `ConnectionManager`).
#[cfg(feature = "redis")]
#[derive(Clone)]
pub struct RawRedis {
    con: respcache_redis::redis::aio::ConnectionManager,
    prefix: String,
}

#[cfg(feature = "redis")]
impl std::fmt::Debug for RawRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawRedis")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "redis")]
impl RawRedis {
    /// Connects to `url` and `SET`s the hit payloads under `<prefix>:...`.
    pub async fn connect(url: &str, prefix: &str) -> Result<RawRedis> {
        use respcache_redis::redis;
        let client = redis::Client::open(url)?;
        let mut con = redis::aio::ConnectionManager::new(client).await?;
        let mut pipe = redis::pipe();
        for size in [Size::Small, Size::Large] {
            for i in 0..HIT_KEYS {
                let key = format!("{prefix}:{}:{i}", size.bytes());
                pipe.set(key, crate::store_ops::hit_payload(size, i).to_vec())
                    .ignore();
            }
        }
        pipe.query_async::<()>(&mut con).await?;
        Ok(RawRedis {
            con,
            prefix: prefix.to_owned(),
        })
    }

    /// One `GET` of run `i`'s payload.
    pub async fn get(&self, size: Size, i: u64) -> Result<()> {
        use respcache_redis::redis::AsyncCommands as _;
        let mut con = self.con.clone();
        let key = format!("{}:{}:{}", self.prefix, size.bytes(), i % HIT_KEYS);
        let got: Option<Vec<u8>> = con.get(key).await?;
        check_len(got.map(|b| b.len()), size.bytes())
    }

    /// Deletes the keys [`connect`](Self::connect) set.
    pub async fn cleanup(&self) -> Result<()> {
        let mut con = self.con.clone();
        let mut cmd = respcache_redis::redis::cmd("DEL");
        for size in [Size::Small, Size::Large] {
            for i in 0..HIT_KEYS {
                cmd.arg(format!("{}:{}:{i}", self.prefix, size.bytes()));
            }
        }
        cmd.query_async::<()>(&mut con).await?;
        Ok(())
    }
}

/// A plain pooled hyper client (no cache), set up as `CachedSession`'s
/// transport is (HTTP/1.1, `TCP_NODELAY`).
#[derive(Clone, Debug)]
pub struct RawHttp {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp::new()
    }
}

impl RawHttp {
    /// A new client.
    pub fn new() -> RawHttp {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(32)
            .build(connector);
        RawHttp { client }
    }

    /// One `GET url`, reading the whole body; fails unless the status is
    /// `status`. Returns the body length.
    pub async fn get(&self, url: &str, headers: &[(&str, &str)], status: u16) -> Result<usize> {
        let mut req = http::Request::get(url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let response = self.client.request(req.body(Empty::new())?).await?;
        if response.status().as_u16() != status {
            return Err(format!("GET {url}: {}, wanted {status}", response.status()).into());
        }
        let body = response.into_body().collect().await?.to_bytes();
        Ok(body.len())
    }
}

fn check_len(got: Option<usize>, want: usize) -> Result<()> {
    match got {
        Some(n) if n == want => Ok(()),
        Some(n) => Err(format!("{n} B read, wanted {want} B").into()),
        None => Err("no row where one was expected".into()),
    }
}
