//! [`connect`]: choose a backend at run time from a URL.

use std::sync::Arc;

use respcache_core::economy::{EconomyBackend, EconomyOptions};
use respcache_core::{Backend, Error, ErrorKind, MemoryBackend, Result};

/// Every scheme respcache knows, with the Cargo feature that enables it.
pub const SCHEMES: &[(&str, &str)] = &[
    ("memory", "(always on)"),
    ("sqlite", "sqlite"),
    ("fs", "fs"),
    ("redis", "redis"),
    ("rediss", "redis-tls"),
    ("redis+cluster", "redis"),
    ("mongodb", "mongodb"),
    ("mongodb+srv", "mongodb"),
    ("dynamodb", "dynamodb"),
];

/// Connects to the backend a URL names, by its scheme:
///
/// | URL | backend | feature |
/// |---|---|---|
/// | `memory://` | in process memory | always |
/// | `sqlite:///abs/path/cache.sqlite`, `sqlite://rel.sqlite`, `sqlite::memory:` | SQLite | `sqlite` (default) |
/// | `fs:///abs/dir` | files on disk | `fs` |
/// | `redis://host:6379/0` | Redis | `redis` |
/// | `rediss://…` | Redis over TLS | `redis-tls` |
/// | `redis+cluster://h1:7000,h2:7001/` | Redis Cluster | `redis` |
/// | `mongodb://…`, `mongodb+srv://…` | MongoDB | `mongodb` |
/// | `dynamodb://table?region=…&endpoint=…` | DynamoDB | `dynamodb` |
///
/// Storage-economy options work with every scheme (see
/// [`EconomyOptions::from_url`]): `compress=auto|zstd|lz4` (auto: lz4 below 16 KiB, zstd above) with
/// `compress_min=512B`
/// compress stored payloads; `cleanup=10m` starts the background cleanup
/// (useful on `sqlite`, `fs` and `memory`, which have no native expiry).
/// The returned backend always reads compressed payloads, whatever the
/// options. The local backends also take a budget, `max_bytes=500MB` and
/// `max_entries=100000` (least recently used entries go first; see
/// [`respcache_core::budget`]); on Redis, set the server's `maxmemory` with
/// an LRU policy instead (the Redis backend's docs say how).
///
/// Every option follows one grammar ([`respcache_core::options`]): durations
/// with their unit (`busy_timeout=5s`, `timeout=250ms`; Redis's two time
/// limits are whole milliseconds in their names, `connect_timeout_ms=`,
/// `command_timeout_ms=`), booleans as
/// `true`/`false`, paths with `~/` for the home directory. `cache=NAME`,
/// which names a cache for the `respcache` command, is accepted and left
/// to the caller ([`cache_name`] reads it).
///
/// A known scheme whose feature is off is a [`ErrorKind::Configuration`]
/// error naming the feature to enable; an unknown scheme lists the known
/// ones. Passwords never appear in errors.
///
/// ```
/// # async fn demo() -> respcache::Result<()> {
/// let backend = respcache::connect("sqlite::memory:").await?;
/// assert_eq!(backend.name(), "sqlite");
/// let bounded = respcache::connect("memory://?max_bytes=64MB&compress=zstd").await?;
/// let budget = bounded.eviction().map(|e| e.budget());
/// assert_eq!(budget, Some(respcache::Budget::bytes(64_000_000)));
/// let err = respcache::connect("gopher://x").await.unwrap_err();
/// assert_eq!(err.kind(), respcache::ErrorKind::Configuration);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub async fn connect(url: &str) -> Result<Arc<dyn Backend>> {
    let (url, _) = split_cache_name(url);
    let url = url.as_str();
    let (rest, economy) = EconomyOptions::from_url(url).map_err(|e| {
        Error::new(
            ErrorKind::Configuration,
            format!("{}: {e}", redact_url(url)),
        )
    })?;
    let backend = connect_backend(&rest).await?;
    Ok(Arc::new(EconomyBackend::new(backend, economy)))
}

async fn connect_backend(url: &str) -> Result<Arc<dyn Backend>> {
    let Some((scheme, _)) = url.split_once(':') else {
        return Err(Error::new(
            ErrorKind::Configuration,
            format!(
                "{:?} is not a backend URL: it has no scheme (e.g. sqlite:///path/cache.sqlite)",
                redact_url(url)
            ),
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "memory" => Ok(Arc::new(MemoryBackend::from_url(url)?)),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(
            respcache_sqlite::SqliteBackend::connect(url).await?,
        )),
        #[cfg(feature = "fs")]
        "fs" => Ok(Arc::new(respcache_fs::FsBackend::connect_url(url).await?)),
        #[cfg(feature = "redis")]
        "redis" | "rediss" | "redis+cluster" => {
            Ok(Arc::new(respcache_redis::RedisBackend::connect(url).await?))
        }
        #[cfg(feature = "mongodb")]
        "mongodb" | "mongodb+srv" => Ok(Arc::new(
            respcache_mongodb::MongoDbBackend::connect(url).await?,
        )),
        #[cfg(feature = "dynamodb")]
        "dynamodb" => Ok(Arc::new(
            respcache_dynamodb::DynamoDbBackend::connect(url).await?,
        )),
        other => Err(unavailable(other, url)),
    }
}

/// The cache a URL names with `?cache=NAME` (the `respcache` command's
/// form), if any.
///
/// ```
/// assert_eq!(respcache::cache_name("sqlite:///tmp/a.db?cache=music&busy_timeout=5s").as_deref(), Some("music"));
/// assert_eq!(respcache::cache_name("redis://h:6379/0"), None);
/// ```
pub fn cache_name(url: &str) -> Option<String> {
    split_cache_name(url).1
}

/// `url` without its `cache=` option, and that option's value.
fn split_cache_name(url: &str) -> (String, Option<String>) {
    let mut name = None;
    let rest = respcache_core::options::take_query_options(url, |key, value| {
        if key != "cache" {
            return Ok(false);
        }
        name = url::form_urlencoded::parse(format!("v={value}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned());
        Ok(true)
    })
    .unwrap_or_else(|_| url.to_owned());
    (rest, name)
}

fn unavailable(scheme: &str, url: &str) -> Error {
    match SCHEMES.iter().find(|(s, _)| *s == scheme) {
        Some((_, feature)) => Error::new(
            ErrorKind::Configuration,
            format!(
                "{:?} needs the `{feature}` feature of respcache, which this build does not have: \
                 add `features = [\"{feature}\"]` to the respcache dependency",
                redact_url(url)
            ),
        ),
        None => Error::new(
            ErrorKind::Configuration,
            format!(
                "{:?}: unknown backend scheme {scheme:?}; known schemes: {}",
                redact_url(url),
                SCHEMES
                    .iter()
                    .map(|(s, _)| *s)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    }
}

/// The URL with its password, and the value of any query option that looks
/// like a secret (`token`, `aws_secret_access_key`, …), replaced by `***`,
/// for printing ([`respcache_core::redact::redact_url`]).
///
/// ```
/// assert_eq!(
///     respcache::redact_url("redis://user:secret@host:6379/0"),
///     "redis://user:***@host:6379/0"
/// );
/// assert_eq!(respcache::redact_url("user:secret@host"), "***@host");
/// ```
pub fn redact_url(url: &str) -> String {
    respcache_core::redact::redact_url(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_scheme_lists_the_known_ones() {
        let err = connect("gopher://x").await.err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("unknown backend scheme \"gopher\""), "{text}");
        assert!(text.contains("sqlite, fs, redis"), "{text}");
    }

    #[tokio::test]
    async fn no_scheme_is_a_configuration_error() {
        let err = connect("just-a-path").await.err().map(|e| e.kind());
        assert_eq!(err, Some(ErrorKind::Configuration));
    }

    /// The cluster scheme reaches the Redis backend (an unreachable
    /// cluster, not an unknown scheme).
    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn redis_cluster_urls_reach_the_redis_backend() {
        let err = connect("redis+cluster://127.0.0.1:1,127.0.0.1:2/?connect_timeout_ms=300")
            .await
            .err();
        let kind = err.as_ref().map(|e| e.kind());
        assert!(
            matches!(kind, Some(ErrorKind::Connection | ErrorKind::Timeout)),
            "{err:?}"
        );
        assert_eq!(err.and_then(|e| e.backend()), Some("redis"));
    }

    #[tokio::test]
    async fn economy_options_reach_the_backend_or_the_wrapper() -> Result<()> {
        let b = connect("memory://?max_entries=10&compress=lz4&cleanup=1h").await?;
        assert_eq!(b.name(), "memory");
        assert_eq!(
            b.eviction().map(|e| e.budget()),
            Some(respcache_core::Budget::entries(10))
        );
        let e = connect("memory://?compress=brotli").await.err();
        assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::Configuration));
        let e = connect("memory://?colour=blue").await.err();
        assert!(e.is_some_and(|e| e.to_string().contains("colour")));
        Ok(())
    }

    #[tokio::test]
    async fn memory_always_works() {
        let b = connect("memory://").await.map(|b| b.name());
        assert_eq!(b.ok(), Some("memory"));
    }

    /// Every URL form, with a secret where a user might put one: the
    /// error's `Display` and `Debug` never show it. Servers are
    /// unreachable or refused at once (port 1), so each connect is quick.
    #[tokio::test]
    async fn secrets_never_reach_errors_or_debug() {
        let secret = "hunter2Secret";
        let mut urls = vec![
            format!("gopher://u:{secret}@x"),
            format!("u:{secret}@x"),
            format!("weird://u:{secret}@ho st"),
            format!("sqlite://:{secret}@/x.sqlite"),
            format!("sqlite://u:{secret}@host/x.sqlite"),
            format!("sqlite://x.sqlite?password={secret}"),
        ];
        #[cfg(feature = "fs")]
        urls.extend([
            format!("fs://u:{secret}@/tmp/x"),
            format!("fs:///tmp/x?token={secret}"),
        ]);
        #[cfg(feature = "redis")]
        urls.extend([
            format!("redis://u:{secret}@127.0.0.1:1/0"),
            format!("redis://:{secret}@127.0.0.1:1/0?bogus=1"),
            format!("redis://u:{secret}@127.0.0.1:1/notadb"),
            format!("rediss://u:{secret}@ho st:1/0"),
            format!("redis+cluster://u:{secret}@127.0.0.1:1,127.0.0.1:2/?connect_timeout_ms=300"),
            format!("redis+cluster://u:{secret}@127.0.0.1:1,:2/"),
            format!("redis://u:{secret}@127.0.0.1:1/?cluster=maybe"),
        ]);
        #[cfg(feature = "mongodb")]
        urls.extend([
            format!("mongodb://u:{secret}@127.0.0.1:1/?serverSelectionTimeoutMS=200"),
            format!("mongodb://u:{secret}@127.0.0.1:1/?socketTimeoutMS=soon"),
            format!("mongodb://u:{secret}@127.0.0.1:1/?bogusOption=1&serverSelectionTimeoutMS=200"),
            format!("mongodb+srv://u:{secret}@ho st/"),
        ]);
        #[cfg(feature = "dynamodb")]
        urls.extend([
            format!("dynamodb://k:{secret}@tbl"),
            format!("dynamodb://tbl?aws_secret_access_key={secret}"),
            format!("dynamodb://tbl?session_token={secret}&bogus=1"),
            format!(
                "dynamodb://tbl?region=us-east-1&max_attempts=1&operation_timeout=2s\
                 &endpoint=http://k:{secret}@127.0.0.1:1"
            ),
            format!("dynamodb://tbl?endpoint=http%3A%2F%2Fk%3A{secret}%40127.0.0.1%3A1&timeout=x"),
        ]);
        for url in urls {
            let outcome = tokio::time::timeout(std::time::Duration::from_secs(30), connect(&url))
                .await
                .unwrap_or_else(|_| panic!("{} hung", redact_url(&url)));
            let Err(err) = outcome else {
                panic!("{} connected", redact_url(&url));
            };
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(secret), "{}: {shown}", redact_url(&url));
            assert!(!redact_url(&url).contains(secret), "{}", redact_url(&url));
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("mongodb://u:p%40ss@h/db"),
            "mongodb://u:***@h/db"
        );
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact_url("weird://u:pw@ho st"), "weird://u:***@ho st");
        assert_eq!(
            redact_url("dynamodb://t?token=abc"),
            "dynamodb://t?token=***"
        );
    }
}
