//! [`MongoDbConfig`]: the connection string, timeouts and write strategy.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use respcache_core::{Error, ErrorKind, Result};

use crate::NAME;

/// The environment variable the tests (and [`MongoDbConfig::from_env`]) read.
pub const ENV_URL: &str = "RESPCACHE_MONGODB_URL";

/// The URL used when [`ENV_URL`] is not set: a server on this machine.
pub const DEFAULT_URL: &str = "mongodb://127.0.0.1:27017/?directConnection=true";

/// How long the driver waits for a suitable server before a call fails with
/// [`ErrorKind::Timeout`], unless the URL (`serverSelectionTimeoutMS`) or
/// [`MongoDbConfig::server_selection_timeout`] says otherwise. The driver's
/// own default (30 s) is long for a cache, which should fail fast.
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// The TCP connect timeout used unless the URL (`connectTimeoutMS`) or
/// [`MongoDbConfig::connect_timeout`] says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a single call may take before it fails with
/// [`ErrorKind::Timeout`], unless the URL (`socketTimeoutMS`) or
/// [`MongoDbConfig::operation_timeout`] says otherwise. Seconds, like
/// Redis's command timeout: a frozen server costs a call this long at most.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// How a document's purge date (the TTL field) is rewritten.
///
/// Genuine MongoDB sets a date on an existing document with `$set`, so
/// every write is one atomic update ([`Update`](DateWrites::Update)). The
/// nx-27017 wire emulator stores such a date as *text*, which its TTL
/// sweep then never matches; for it, a write that carries a purge date
/// rewrites the whole document instead ([`Reinsert`](DateWrites::Reinsert)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DateWrites {
    /// Ask the server once (`buildInfo`): `Reinsert` for the nx-27017
    /// emulator, `Update` for everything else.
    #[default]
    Auto,
    /// One atomic `$set` update per entry (upsert). Readers never see a gap.
    Update,
    /// A write that carries a purge date deletes and re-inserts the whole
    /// document in one ordered bulk write; other writes are `$set` updates.
    /// A concurrent reader can miss such an entry for the instant between
    /// the delete and the insert.
    Reinsert,
}

/// How to reach MongoDB: a `mongodb://` or `mongodb+srv://` connection
/// string plus the timeouts and write strategy.
///
/// | URL | meaning |
/// |---|---|
/// | `mongodb://127.0.0.1:27017/?directConnection=true` | one local server |
/// | `mongodb://user:pass@h1:27017,h2:27017/?replicaSet=rs0` | a replica set, with credentials |
/// | `mongodb+srv://user:pass@cluster0.example.net/` | DNS seed list (Atlas); TLS on by default |
/// | `...?serverSelectionTimeoutMS=2000&connectTimeoutMS=2000` | driver timeouts |
/// | `...?socketTimeoutMS=10000` | respcache's per-call timeout (the Rust driver has no socket timeout, so respcache applies it to every call; `0` = none) |
///
/// Every other option of the connection string goes to the driver as is.
/// The database is not taken from the URL: each cache is its own database.
/// `Debug` and error messages never show the password.
///
/// ```
/// use std::time::Duration;
/// use respcache_mongodb::MongoDbConfig;
///
/// let config = MongoDbConfig::from_url("mongodb://app:s3cret@db.example:27017/?socketTimeoutMS=2500")?
///     .server_selection_timeout(Duration::from_secs(2));
/// assert_eq!(config.operation_timeout, Some(Duration::from_millis(2500)));
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), respcache_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct MongoDbConfig {
    /// The connection string, without `socketTimeoutMS` (which became
    /// [`operation_timeout`](Self::operation_timeout)).
    pub url: String,
    /// Overrides the URL's `serverSelectionTimeoutMS`; when neither is set,
    /// [`DEFAULT_SERVER_SELECTION_TIMEOUT`].
    pub server_selection_timeout: Option<Duration>,
    /// Overrides the URL's `connectTimeoutMS`; when neither is set,
    /// [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Option<Duration>,
    /// The longest one call may take; `None`: no limit beyond the driver's.
    pub operation_timeout: Option<Duration>,
    /// How purge dates are rewritten.
    pub date_writes: DateWrites,
}

impl Default for MongoDbConfig {
    fn default() -> Self {
        MongoDbConfig {
            url: DEFAULT_URL.to_owned(),
            server_selection_timeout: None,
            connect_timeout: None,
            operation_timeout: Some(DEFAULT_OPERATION_TIMEOUT),
            date_writes: DateWrites::Auto,
        }
    }
}

impl MongoDbConfig {
    /// Parses a `mongodb://` or `mongodb+srv://` connection string.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`] for another scheme or a `socketTimeoutMS`
    /// that is not a number of milliseconds. Other options are checked by the
    /// driver when connecting.
    pub fn from_url(url: &str) -> Result<Self> {
        let url = url.trim();
        if !(url.starts_with("mongodb://") || url.starts_with("mongodb+srv://")) {
            return Err(config_error(format!(
                "expected a mongodb:// or mongodb+srv:// URL, got {:?}",
                redact_url(url)
            )));
        }
        let (url, socket_timeout) = take_socket_timeout(url)?;
        let operation_timeout = match socket_timeout {
            None => Some(DEFAULT_OPERATION_TIMEOUT),
            Some(0) => None,
            Some(ms) => Some(Duration::from_millis(ms)),
        };
        Ok(MongoDbConfig {
            url,
            operation_timeout,
            ..MongoDbConfig::default()
        })
    }

    /// The URL in [`ENV_URL`] (`RESPCACHE_MONGODB_URL`), or [`DEFAULT_URL`].
    ///
    /// # Errors
    ///
    /// As [`from_url`](Self::from_url).
    pub fn from_env() -> Result<Self> {
        match std::env::var(ENV_URL) {
            Ok(url) if !url.trim().is_empty() => MongoDbConfig::from_url(&url),
            _ => MongoDbConfig::from_url(DEFAULT_URL),
        }
    }

    /// Sets how long to wait for a suitable server.
    pub fn server_selection_timeout(mut self, timeout: Duration) -> Self {
        self.server_selection_timeout = Some(timeout);
        self
    }

    /// Sets the TCP connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Sets the per-call timeout (`None`: no limit).
    pub fn operation_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sets how purge dates are rewritten.
    pub fn date_writes(mut self, date_writes: DateWrites) -> Self {
        self.date_writes = date_writes;
        self
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl FromStr for MongoDbConfig {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self> {
        MongoDbConfig::from_url(url)
    }
}

impl fmt::Debug for MongoDbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoDbConfig")
            .field("url", &self.redacted_url())
            .field("server_selection_timeout", &self.server_selection_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("date_writes", &self.date_writes)
            .finish()
    }
}

fn config_error(message: String) -> Error {
    Error::new(ErrorKind::Configuration, message).with_backend(NAME)
}

/// Removes `socketTimeoutMS` from the query (the driver refuses it) and
/// returns its value.
fn take_socket_timeout(url: &str) -> Result<(String, Option<u64>)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let mut value = None;
    let mut kept = Vec::new();
    for pair in query.split(['&', ';']).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k.eq_ignore_ascii_case("socketTimeoutMS") {
            let ms = v.parse::<u64>().map_err(|_| {
                config_error(format!(
                    "socketTimeoutMS must be a number of milliseconds, got {v:?}"
                ))
            })?;
            value = Some(ms);
        } else {
            kept.push(pair);
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, value))
}

/// The `user:password@` part's bounds in a connection string, if any.
fn userinfo(url: &str) -> Option<(usize, &str)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    Some((start, &rest[..at]))
}

/// The password written in a connection string, as written (percent-encoded).
pub(crate) fn url_password(url: &str) -> Option<String> {
    let (_, info) = userinfo(url)?;
    let (_, password) = info.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

/// `url` with the password replaced by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    match userinfo(url) {
        Some((start, info)) => match info.split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..start], &url[start + info.len()..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Decodes `%XX` escapes (a password as the driver sees it).
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_redacted_in_debug_and_helpers() -> Result<()> {
        let c = MongoDbConfig::from_url("mongodb://app:p%40ss@h1:1,h2:2/db?replicaSet=rs")?;
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("p%40ss"), "{dbg}");
        assert!(
            dbg.contains("mongodb://app:***@h1:1,h2:2/db?replicaSet=rs"),
            "{dbg}"
        );
        assert_eq!(url_password(&c.url).as_deref(), Some("p%40ss"));
        assert_eq!(percent_decode("p%40ss"), "p@ss");
        Ok(())
    }

    #[test]
    fn urls_without_password_are_unchanged() {
        for url in [
            "mongodb://127.0.0.1:27017/?directConnection=true",
            "mongodb://user@h/",
            "mongodb+srv://cluster0.example.net/?x=a@b",
        ] {
            assert_eq!(redact_url(url), url);
        }
        assert_eq!(
            redact_url("mongodb+srv://u:pw@cluster0.example.net"),
            "mongodb+srv://u:***@cluster0.example.net"
        );
    }

    #[test]
    fn socket_timeout_becomes_the_operation_timeout() -> Result<()> {
        let c = MongoDbConfig::from_url(
            "mongodb://h/?appName=x&socketTimeoutMS=1500&serverSelectionTimeoutMS=9",
        )?;
        assert_eq!(c.operation_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(c.url, "mongodb://h/?appName=x&serverSelectionTimeoutMS=9");
        let c = MongoDbConfig::from_url("mongodb://h/?sockettimeoutms=0")?;
        assert_eq!(c.operation_timeout, None);
        assert_eq!(c.url, "mongodb://h/");
        let c = MongoDbConfig::from_url("mongodb://h/")?;
        assert_eq!(c.operation_timeout, Some(DEFAULT_OPERATION_TIMEOUT));
        Ok(())
    }

    #[test]
    fn wrong_scheme_and_bad_timeout_are_configuration_errors() {
        for url in [
            "redis://u:secret@h/",
            "mongodb://h/?socketTimeoutMS=soon",
            "",
        ] {
            let err = MongoDbConfig::from_url(url).err();
            assert_eq!(
                err.as_ref().map(Error::kind),
                Some(ErrorKind::Configuration),
                "{url}"
            );
            assert!(
                !err.map(|e| e.to_string())
                    .unwrap_or_default()
                    .contains("secret")
            );
        }
    }

    #[test]
    fn from_str_and_setters() -> Result<()> {
        let c: MongoDbConfig = "mongodb+srv://c.example.net/".parse()?;
        let c = c
            .server_selection_timeout(Duration::from_secs(1))
            .connect_timeout(Duration::from_secs(2))
            .operation_timeout(None)
            .date_writes(DateWrites::Reinsert);
        assert_eq!(c.server_selection_timeout, Some(Duration::from_secs(1)));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(2)));
        assert_eq!(c.operation_timeout, None);
        assert_eq!(c.date_writes, DateWrites::Reinsert);
        Ok(())
    }
}
