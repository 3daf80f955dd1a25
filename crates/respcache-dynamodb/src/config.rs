//! [`DynamoDbConfig`]: where the table is and how to talk to it, from a URL
//! or built in code.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use respcache_core::{ErrorKind, Result};

use crate::SCHEME;
use crate::error::backend_error;

/// The conventional name of the shared table (`dynamodb://respcache`); also
/// the (unused) [`DynamoDbConfig::table`] of a per-cache URL.
pub const DEFAULT_TABLE: &str = "respcache";

/// The default time limit of one request attempt ([`DynamoDbConfig::timeout`]),
/// like Redis's command timeout: an endpoint that accepts connections and
/// never answers fails the attempt after this long.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// The default time limit of one SDK call, retries and back-off included
/// ([`DynamoDbConfig::operation_timeout`]).
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The default time limit of opening a TCP (and TLS) connection
/// ([`DynamoDbConfig::connect_timeout`]).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Which table a cache lives in.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TableMode {
    /// Every cache in the one table [`DynamoDbConfig::table`]; a
    /// repository's entries are the partition `<cache>#<repository>`.
    Shared,
    /// Every cache in its own table `<prefix><cache>`, created on the first
    /// `open_store` of the cache; a repository's entries are the partition
    /// `<repository>`. The table is deleted when the cache's last store is
    /// dropped.
    PerCache {
        /// Put before the cache name to make the table name (may be empty).
        prefix: String,
    },
}

/// How to reach DynamoDB and which table holds the caches.
///
/// # URL
///
/// `dynamodb://TABLE?region=REGION&endpoint=URL&create_table=false&...`
/// (one shared table for every cache) or
/// `dynamodb://?table_prefix=PREFIX&region=REGION&...` (no table: one table
/// per cache, [`TableMode::PerCache`]).
///
/// | part | meaning | default |
/// |---|---|---|
/// | `TABLE` | the table every cache of this backend lives in (3–255 of `A-Z a-z 0-9 _ - .`); without it every cache has its own table | none: a table per cache |
/// | `table_prefix` | without `TABLE`: a cache's table is named `<table_prefix><cache>` | empty |
/// | `region` | AWS region | the standard chain (`AWS_REGION`, profile, ...); with `endpoint`: `us-east-1` if none is found |
/// | `endpoint` | endpoint URL, e.g. `http://127.0.0.1:8000` for DynamoDB Local | AWS's endpoint for the region |
/// | `create_table` | create the table (on-demand, TTL on `purge_at`) if it is missing | `true` |
/// | `consistent_read` | strongly consistent reads (a `put` is seen by the next `get`) | `true` |
/// | `max_attempts` | attempts per request in the SDK's standard retry mode (throttling, 5xx, connection errors) | `3` |
/// | `timeout` | time limit of one request attempt (`500ms`, `10s`, `2m`: a duration with its unit, [`respcache_core::options`]; `0`: none) | `2s` |
/// | `operation_timeout` | time limit of one request, retries and back-off included (`0`: none) | `5s` |
/// | `connect_timeout` | time limit of opening a connection (`0`: none) | `2s` |
/// | `batch_concurrency` | requests (BatchGetItem / BatchWriteItem, or DeleteItem for `delete_many` and filtered `clear`) in flight per call | `8` |
/// | `batch_retry_timeout` | how long unprocessed batch items are retried before the call fails | `30s` |
/// | `page_size` | items per Query page of `scan`, `count`, `clear` (DynamoDB also stops a page at 1 MB) | `1000` |
///
/// Credentials always come from the SDK's standard chain (environment,
/// profile files, SSO, web identity, container and instance roles), never
/// from the URL. With an `endpoint` only the environment variables and the
/// profile files are asked, and when they have none, static dummy
/// credentials are used — which is what DynamoDB Local accepts.
///
/// ```
/// use respcache_dynamodb::{DynamoDbConfig, TableMode};
///
/// let config: DynamoDbConfig =
///     "dynamodb://my-cache?region=eu-west-1&create_table=false".parse()?;
/// assert_eq!(config.table, "my-cache");
/// assert_eq!(config.region.as_deref(), Some("eu-west-1"));
/// assert!(!config.create_table);
///
/// let local = DynamoDbConfig::new("my-cache")?.with_endpoint("http://127.0.0.1:8000");
/// assert_eq!(local.endpoint.as_deref(), Some("http://127.0.0.1:8000"));
///
/// // A table per cache: the cache "weather" lives in the table "rc-weather".
/// let per_cache: DynamoDbConfig = "dynamodb://?table_prefix=rc-&region=eu-west-1".parse()?;
/// assert_eq!(per_cache.mode, TableMode::PerCache { prefix: "rc-".into() });
/// # Ok::<(), respcache_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DynamoDbConfig {
    /// The table every cache of this backend lives in, in
    /// [`TableMode::Shared`]; unused otherwise.
    pub table: String,
    /// One table for all caches, or one per cache.
    pub mode: TableMode,
    /// The AWS region; `None`: the standard region chain.
    pub region: Option<String>,
    /// An endpoint URL (DynamoDB Local, a VPC endpoint, ...).
    pub endpoint: Option<String>,
    /// Create the table if it is missing. When `false`, a missing table is a
    /// [`Configuration`](ErrorKind::Configuration) error at connect time
    /// (shared mode) or at the cache's first `open_store` (per-cache mode),
    /// and per-cache tables are never deleted either.
    pub create_table: bool,
    /// Use strongly consistent reads (twice the read capacity of eventually
    /// consistent ones; without them a `get` right after a `put` may miss).
    pub consistent_read: bool,
    /// Attempts per request in the SDK's standard retry mode.
    pub max_attempts: u32,
    /// Time limit of one request attempt ([`DEFAULT_ATTEMPT_TIMEOUT`];
    /// `None`: none).
    pub timeout: Option<Duration>,
    /// Time limit of one request, its retries and back-off included
    /// ([`DEFAULT_OPERATION_TIMEOUT`]; `None`: none). Every call to
    /// DynamoDB — `connect`'s too — fails with
    /// [`Timeout`](ErrorKind::Timeout) after this long at most.
    pub operation_timeout: Option<Duration>,
    /// Time limit of opening a TCP (and TLS) connection
    /// ([`DEFAULT_CONNECT_TIMEOUT`]; `None`: none).
    pub connect_timeout: Option<Duration>,
    /// Batch requests in flight per `get_many` / `put_many` / `delete_many` /
    /// `clear` call.
    pub batch_concurrency: usize,
    /// How long items a batch request left unprocessed (throttling) are
    /// retried, with backoff, before the call fails.
    pub batch_retry_timeout: Duration,
    /// Items per Query page of `scan`, `count`, `clear` and `drop_store`
    /// (DynamoDB also ends a page at 1 MB). Smaller pages give the first
    /// scanned entry sooner; larger ones need fewer requests.
    pub page_size: u32,
}

impl DynamoDbConfig {
    /// The defaults, all caches in the shared table `table` (see the table
    /// above).
    ///
    /// # Errors
    ///
    /// [`Configuration`](ErrorKind::Configuration) if `table` is not a valid
    /// DynamoDB table name.
    pub fn new(table: impl Into<String>) -> Result<Self> {
        let table = table.into();
        validate_table(&table)?;
        Ok(DynamoDbConfig {
            table,
            mode: TableMode::Shared,
            region: None,
            endpoint: None,
            create_table: true,
            consistent_read: true,
            max_attempts: 3,
            timeout: Some(DEFAULT_ATTEMPT_TIMEOUT),
            operation_timeout: Some(DEFAULT_OPERATION_TIMEOUT),
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            batch_concurrency: 8,
            batch_retry_timeout: Duration::from_secs(30),
            page_size: 1000,
        })
    }

    /// Parses a `dynamodb://` URL (see the table above).
    ///
    /// # Errors
    ///
    /// [`Configuration`](ErrorKind::Configuration), naming the part of the
    /// URL that is wrong.
    pub fn from_url(url: &str) -> Result<Self> {
        let parsed = url::Url::parse(url).map_err(|e| {
            config_error(format!("cannot parse the URL {:?}: {e}", redact(url))).with_source(e)
        })?;
        if parsed.scheme() != SCHEME {
            return Err(config_error(format!(
                "the URL scheme is {:?}; expected \"{SCHEME}\"",
                parsed.scheme()
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(config_error(
                "credentials do not belong in the URL; they come from the AWS standard chain \
                 (environment, profile files, roles)",
            ));
        }
        if parsed.port().is_some() {
            return Err(config_error(
                "a dynamodb:// URL names a table, not a host; put the server in ?endpoint=",
            ));
        }
        if !matches!(parsed.path(), "" | "/") {
            return Err(config_error(format!(
                "unexpected path {:?}; the URL is dynamodb://TABLE?options",
                parsed.path()
            )));
        }
        let mut config = match parsed.host_str() {
            None | Some("") => DynamoDbConfig::new(DEFAULT_TABLE)?.with_table_per_cache(),
            Some(t) => DynamoDbConfig::new(t)?,
        };
        for (name, value) in parsed.query_pairs() {
            config.set_option(&name, &value)?;
        }
        Ok(config)
    }

    fn set_option(&mut self, name: &str, value: &str) -> Result<()> {
        match name {
            "region" => self.region = Some(non_empty(name, value)?.to_owned()),
            "table_prefix" => {
                if self.mode == TableMode::Shared {
                    return Err(config_error(format!(
                        "table_prefix is for a table per cache, but the URL names the table {:?}; \
                         use dynamodb://?table_prefix=... for a table per cache",
                        self.table
                    )));
                }
                validate_prefix(value)?;
                self.mode = TableMode::PerCache {
                    prefix: value.to_owned(),
                };
            }
            "endpoint" => {
                let endpoint = non_empty(name, value)?;
                url::Url::parse(endpoint).map_err(|e| {
                    config_error(format!("endpoint {:?} is not a URL: {e}", redact(endpoint)))
                })?;
                self.endpoint = Some(endpoint.to_owned());
            }
            "create_table" => self.create_table = parse_bool(name, value)?,
            "consistent_read" => self.consistent_read = parse_bool(name, value)?,
            "max_attempts" => {
                self.max_attempts = parse_number(name, value)?;
                if self.max_attempts == 0 {
                    return Err(config_error("max_attempts must be at least 1"));
                }
            }
            "timeout" => self.timeout = parse_limit(name, value)?,
            "operation_timeout" => self.operation_timeout = parse_limit(name, value)?,
            "connect_timeout" => self.connect_timeout = parse_limit(name, value)?,
            "batch_concurrency" => {
                self.batch_concurrency = parse_number(name, value)?;
                if self.batch_concurrency == 0 {
                    return Err(config_error("batch_concurrency must be at least 1"));
                }
            }
            "batch_retry_timeout" => self.batch_retry_timeout = parse_duration(name, value)?,
            "page_size" => {
                self.page_size = parse_number(name, value)?;
                if self.page_size == 0 {
                    return Err(config_error("page_size must be at least 1"));
                }
            }
            other => {
                return Err(config_error(format!(
                    "unknown option {other:?}; known: region, endpoint, table_prefix, create_table, \
                     consistent_read, max_attempts, timeout, operation_timeout, connect_timeout, \
                     batch_concurrency, batch_retry_timeout, page_size"
                )));
            }
        }
        Ok(())
    }

    /// Puts every cache in the one table `table` ([`TableMode::Shared`]).
    ///
    /// # Errors
    ///
    /// [`Configuration`](ErrorKind::Configuration) if `table` is not a valid
    /// DynamoDB table name.
    pub fn with_table(mut self, table: impl Into<String>) -> Result<Self> {
        let table = table.into();
        validate_table(&table)?;
        self.table = table;
        self.mode = TableMode::Shared;
        Ok(self)
    }

    /// Gives every cache its own table, named like the cache
    /// ([`TableMode::PerCache`] without a prefix).
    pub fn with_table_per_cache(mut self) -> Self {
        self.mode = TableMode::PerCache {
            prefix: String::new(),
        };
        self
    }

    /// Gives every cache its own table, named `<prefix><cache>`.
    ///
    /// # Errors
    ///
    /// [`Configuration`](ErrorKind::Configuration) if `prefix` has a
    /// character a table name cannot have or is over 191 characters.
    pub fn with_table_prefix(mut self, prefix: impl Into<String>) -> Result<Self> {
        let prefix = prefix.into();
        validate_prefix(&prefix)?;
        self.mode = TableMode::PerCache { prefix };
        Ok(self)
    }

    /// The table `cache` lives in.
    ///
    /// # Errors
    ///
    /// [`Configuration`](ErrorKind::Configuration) in per-cache mode when
    /// `<prefix><cache>` is shorter than DynamoDB's 3 characters.
    ///
    /// ```
    /// use respcache_core::Name;
    /// use respcache_dynamodb::DynamoDbConfig;
    ///
    /// let shared = DynamoDbConfig::new("all-caches")?;
    /// assert_eq!(shared.table_for(&Name::new("weather")?)?, "all-caches");
    /// let per_cache = shared.with_table_prefix("rc-")?;
    /// assert_eq!(per_cache.table_for(&Name::new("weather")?)?, "rc-weather");
    /// # Ok::<(), respcache_core::Error>(())
    /// ```
    pub fn table_for(&self, cache: &respcache_core::Name) -> Result<String> {
        match &self.mode {
            TableMode::Shared => Ok(self.table.clone()),
            TableMode::PerCache { prefix } => {
                let table = format!("{prefix}{cache}");
                if table.len() < 3 {
                    return Err(config_error(format!(
                        "the cache {cache:?} would live in the table {table:?}, but DynamoDB \
                         table names have at least 3 characters: set a table_prefix"
                    )));
                }
                Ok(table)
            }
        }
    }

    /// Sets the region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets the endpoint URL.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Whether to create the table if it is missing.
    pub fn with_create_table(mut self, create: bool) -> Self {
        self.create_table = create;
        self
    }

    /// Whether reads are strongly consistent.
    pub fn with_consistent_read(mut self, consistent: bool) -> Self {
        self.consistent_read = consistent;
        self
    }

    /// Sets the attempts per request (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the time limit of one request attempt (`None`: none).
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the time limit of one request, retries included (`None`: none).
    pub fn with_operation_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sets the time limit of opening a connection (`None`: the SDK's).
    pub fn with_connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the batch requests in flight per call (at least 1).
    pub fn with_batch_concurrency(mut self, concurrency: usize) -> Self {
        self.batch_concurrency = concurrency.max(1);
        self
    }

    /// Sets how long unprocessed batch items are retried.
    pub fn with_batch_retry_timeout(mut self, timeout: Duration) -> Self {
        self.batch_retry_timeout = timeout;
        self
    }

    /// Sets the items per Query page (at least 1).
    pub fn with_page_size(mut self, items: u32) -> Self {
        self.page_size = items.max(1);
        self
    }
}

impl FromStr for DynamoDbConfig {
    type Err = respcache_core::Error;

    fn from_str(url: &str) -> Result<Self> {
        DynamoDbConfig::from_url(url)
    }
}

impl fmt::Debug for DynamoDbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDbConfig")
            .field("table", &self.table)
            .field("mode", &self.mode)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint.as_deref().map(redact))
            .field("create_table", &self.create_table)
            .field("consistent_read", &self.consistent_read)
            .field("max_attempts", &self.max_attempts)
            .field("timeout", &self.timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("batch_concurrency", &self.batch_concurrency)
            .field("batch_retry_timeout", &self.batch_retry_timeout)
            .field("page_size", &self.page_size)
            .finish()
    }
}

/// `url` with any password, and secret-looking query values, replaced by
/// `***` ([`respcache_core::redact::redact_url`]).
pub(crate) fn redact(url: &str) -> String {
    respcache_core::redact::redact_url(url)
}

fn validate_table(table: &str) -> Result<()> {
    if !(3..=255).contains(&table.len()) {
        return Err(config_error(format!(
            "table name {table:?} must be 3 to 255 characters long"
        )));
    }
    if let Some(c) = table
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(config_error(format!(
            "table name {table:?} contains {c:?}; use A-Z, a-z, 0-9, '_', '-' and '.'"
        )));
    }
    Ok(())
}

/// A prefix leaves room for the longest cache name (64) in 255 characters.
fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.len() > 255 - 64 {
        return Err(config_error(format!(
            "table_prefix {prefix:?} is over 191 characters"
        )));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(config_error(format!(
            "table_prefix {prefix:?} contains {c:?}; use A-Z, a-z, 0-9, '_', '-' and '.'"
        )));
    }
    Ok(())
}

fn config_error(message: impl Into<String>) -> respcache_core::Error {
    backend_error(ErrorKind::Configuration, message)
}

fn non_empty<'a>(name: &str, value: &'a str) -> Result<&'a str> {
    if value.is_empty() {
        return Err(config_error(format!("option {name} is empty")));
    }
    Ok(value)
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    respcache_core::options::boolean(name, value).map_err(|e| config_error(e.message().to_owned()))
}

fn parse_number<T: FromStr>(name: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| config_error(format!("option {name}={value:?} is not a whole number")))
}

/// A time limit: a duration, `0` meaning none.
fn parse_limit(name: &str, value: &str) -> Result<Option<Duration>> {
    respcache_core::options::limit(name, value).map_err(|e| config_error(e.message().to_owned()))
}

fn parse_duration(name: &str, value: &str) -> Result<Duration> {
    respcache_core::options::duration(name, value).map_err(|e| config_error(e.message().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_full_url() {
        let c = DynamoDbConfig::from_url(
            "dynamodb://Cache_Table.v2?region=us-east-1&endpoint=http://127.0.0.1:8000\
             &create_table=false&consistent_read=0&max_attempts=5&timeout=250ms\
             &batch_concurrency=8&batch_retry_timeout=2m&page_size=50\
             &operation_timeout=3s&connect_timeout=0",
        )
        .unwrap();
        assert_eq!(c.operation_timeout, Some(Duration::from_secs(3)));
        assert_eq!(c.connect_timeout, None);
        assert_eq!(c.table, "Cache_Table.v2");
        assert_eq!(c.region.as_deref(), Some("us-east-1"));
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:8000"));
        assert!(!c.create_table);
        assert!(!c.consistent_read);
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.timeout, Some(Duration::from_millis(250)));
        assert_eq!(c.batch_concurrency, 8);
        assert_eq!(c.batch_retry_timeout, Duration::from_secs(120));
        assert_eq!(c.page_size, 50);
    }

    #[test]
    fn defaults() {
        let c = DynamoDbConfig::from_url("dynamodb://").unwrap();
        assert_eq!(
            c.mode,
            TableMode::PerCache {
                prefix: String::new()
            }
        );
        assert!(c.create_table && c.consistent_read);
        assert_eq!(c.region, None);
        // Seconds, like Redis's command timeout: a frozen endpoint never hangs a call.
        assert_eq!(c.timeout, Some(DEFAULT_ATTEMPT_TIMEOUT));
        assert_eq!(c.operation_timeout, Some(DEFAULT_OPERATION_TIMEOUT));
        assert_eq!(c.connect_timeout, Some(DEFAULT_CONNECT_TIMEOUT));
        let c = DynamoDbConfig::from_url("dynamodb://tbl").unwrap();
        assert_eq!((c.table.as_str(), &c.mode), ("tbl", &TableMode::Shared));
        let c = DynamoDbConfig::from_url("dynamodb://tbl?endpoint=http%3A%2F%2Flocalhost%3A8000")
            .unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://localhost:8000"));
    }

    #[test]
    fn no_table_in_the_url_means_a_table_per_cache() {
        for url in [
            "dynamodb://?region=eu-west-1&table_prefix=rc-",
            "dynamodb:///?table_prefix=rc-&region=eu-west-1",
        ] {
            let c = DynamoDbConfig::from_url(url).unwrap();
            assert_eq!(
                c.mode,
                TableMode::PerCache {
                    prefix: "rc-".into()
                },
                "{url}"
            );
            assert_eq!(c.region.as_deref(), Some("eu-west-1"));
            let cache = respcache_core::Name::new("weather").unwrap();
            assert_eq!(c.table_for(&cache).unwrap(), "rc-weather");
        }
        let c = DynamoDbConfig::from_url("dynamodb:///").unwrap();
        let short = respcache_core::Name::new("ab").unwrap();
        assert_eq!(
            c.table_for(&short).unwrap_err().kind(),
            ErrorKind::Configuration
        );
        let c = DynamoDbConfig::new("tbl").unwrap().with_table_per_cache();
        assert_eq!(c.table_for(&short.clone()).ok(), None);
        let c = c.with_table("tbl2").unwrap();
        assert_eq!(c.table_for(&short).unwrap(), "tbl2");
    }

    #[test]
    fn refuses_bad_urls_with_a_configuration_error() {
        for bad in [
            "redis://tbl",
            "dynamodb://ab",
            "dynamodb://tbl/path",
            "dynamodb://tbl:8000",
            "dynamodb://key:secret@tbl",
            "dynamodb://tbl?unknown=1",
            "dynamodb://tbl?create_table=maybe",
            "dynamodb://tbl?max_attempts=0",
            "dynamodb://tbl?page_size=0",
            "dynamodb://tbl?timeout=5x",
            "dynamodb://tbl?operation_timeout=soon",
            "dynamodb://tbl?connect_timeout=-1",
            "dynamodb://tbl?endpoint=",
            "dynamodb://tbl?endpoint=not a url",
            "dynamodb://t%21bl",
            "dynamodb://tbl?table_prefix=rc-",
            "dynamodb://?table_prefix=r%21c",
        ] {
            let e = DynamoDbConfig::from_url(bad).err();
            assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::Configuration), "{bad}");
        }
    }

    #[test]
    fn credentials_in_the_url_are_not_echoed() {
        for url in [
            "dynamodb://key:hunter2@tbl",
            "dynamodb://t bl?aws_secret_access_key=hunter2",
            "dynamodb://tbl?endpoint=http://k:hunter2@h%ZZ",
            "dynamodb://tbl?aws_session_token=hunter2",
        ] {
            let e = DynamoDbConfig::from_url(url).unwrap_err();
            assert!(!format!("{e} {e:?}").contains("hunter2"), "{e:?}");
        }
        let c = DynamoDbConfig::new("tbl")
            .unwrap()
            .with_endpoint("http://user:hunter2@127.0.0.1:8000");
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("***"), "{debug}");
    }
}
