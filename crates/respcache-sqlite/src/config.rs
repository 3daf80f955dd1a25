//! [`SqliteConfig`]: where the database lives and how it is opened, from a
//! builder or a `sqlite:` URL.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use respcache_core::budget::Budget;
use respcache_core::redact::redact_url;
use respcache_core::{Error, ErrorKind, Result};

use crate::backend::SqliteBackend;
use crate::{NAME, SCHEME};

/// The default [`busy_timeout`](SqliteConfig::busy_timeout): how long a
/// write waits for another connection's lock before it fails.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The most reader connections [`SqliteConfig::reader_count`] picks on its own.
const MAX_DEFAULT_READERS: usize = 8;

/// The most reader connections a backend opens ([`SqliteConfig::readers`]):
/// each is a file handle and a page cache, and more readers than cores
/// only wait for each other. A `readers=` above it is refused.
pub const MAX_READERS: usize = 64;

/// What opening a database file that turns out to be damaged does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnCorrupt {
    /// Fail with a [`Backend`](ErrorKind::Backend) error naming the file
    /// (URL `on_corrupt=fail`, the default).
    #[default]
    Fail,
    /// Move the file aside — renamed `<file>.corrupt-<ms since the epoch>`,
    /// with its `-wal` and `-shm` files renamed alike — log a warning, and
    /// start with a new, empty database (URL `on_corrupt=reset`). The
    /// cached entries are lost; the damaged file is kept for inspection.
    Reset,
}

/// Where the database lives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// A database file (its parent folders are created).
    File(PathBuf),
    /// A new file in a new temporary folder, deleted when the backend and
    /// its stores are dropped.
    Temp,
    /// A database in process memory, shared by the backend's connections and
    /// lost when the backend and its stores are dropped.
    Memory,
}

/// How to open a [`SqliteBackend`].
///
/// Build one with [`file`](Self::file), [`memory`](Self::memory) or
/// [`temp`](Self::temp) and the `with_*` setters, or parse a URL
/// ([`from_url`](Self::from_url), or `str::parse`):
///
/// | URL | database |
/// |---|---|
/// | `sqlite:///abs/path/cache.sqlite` | the file `/abs/path/cache.sqlite` |
/// | `sqlite://relative.sqlite`, `sqlite:relative.sqlite` | `relative.sqlite`, relative to the working directory |
/// | `sqlite::memory:`, `sqlite://:memory:` | in memory |
///
/// The path is percent-decoded (`%20` is a space); `~/` at its start is
/// the user's home directory (`sqlite://~/cache/app.sqlite`). Query options:
///
/// | option | value | default |
/// |---|---|---|
/// | `busy_timeout` | a duration with its unit: `250ms`, `5s`, `1m` ([`respcache_core::options`]; a bare number is refused) | `5s` |
/// | `readers` | how many read-only connections answer point reads inline; `0` sends every read to the writer thread; at most [`MAX_READERS`] (64) | one per core, at most 8 |
/// | `on_corrupt` | `fail`: a damaged file is an error naming it; `reset`: it is moved aside and a new database started ([`OnCorrupt`]) | `fail` |
/// | `max_bytes` | the file's byte budget, a size: `500MB`, `1GiB` (see [`respcache_core::size`]) | none |
/// | `max_entries` | the file's entry budget | none |
/// | `group_commit` | `true`: puts from concurrent tasks share one transaction on the writer thread ([`SqliteConfig::group_commit`]) | `false` |
///
/// With a budget, a write that takes the file over it removes the least
/// recently used entries (of every cache in the file) down to 90 % of it;
/// see [`SqliteConfig::budget`].
///
/// A `sqlite:` URL has no user or password: `sqlite://user:pw@/x.sqlite`
/// is refused (and the error does not repeat it), rather than read as a
/// relative path.
///
/// ```
/// use std::time::Duration;
/// use respcache_sqlite::{Location, SqliteConfig};
///
/// let config: SqliteConfig = "sqlite:///var/cache/app/cache.sqlite?busy_timeout=2s".parse()?;
/// assert_eq!(config.location, Location::File("/var/cache/app/cache.sqlite".into()));
/// assert_eq!(config.busy_timeout, Duration::from_secs(2));
///
/// let same = SqliteConfig::file("/var/cache/app/cache.sqlite")
///     .with_busy_timeout(Duration::from_secs(2));
/// assert_eq!(config, same);
///
/// assert_eq!(SqliteConfig::from_url("sqlite::memory:")?.location, Location::Memory);
/// # Ok::<(), respcache_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// Where the database lives.
    pub location: Location,
    /// How long a write waits for another connection's lock (SQLite's
    /// `busy_timeout`) before it fails with a
    /// [`Contention`](ErrorKind::Contention) error.
    pub busy_timeout: Duration,
    /// How many read-only connections answer point reads inline; `None`
    /// picks one per core (at most 8). `Some(0)` sends every read through
    /// the writer thread. At most [`MAX_READERS`] are opened.
    pub readers: Option<usize>,
    /// What a damaged database file does at open time.
    pub on_corrupt: OnCorrupt,
    /// The budget of the whole file (every cache in it), enforced least
    /// recently used first. A hit records its row in memory; use times are
    /// written in batches, never one write per hit.
    pub budget: Budget,
    /// Whether puts of up to 64 KiB are written by the writer thread in
    /// batches — the puts of concurrent tasks in one transaction and one
    /// commit — instead of one by one on the calling thread. A put still
    /// returns once its row is committed. It costs a lone put a thread hop
    /// (tens of µs) and saves a busy server most of each commit's page
    /// writes: `respcache serve` turns it on. Default `false`.
    pub group_commit: bool,
}

impl SqliteConfig {
    /// A database in the file at `path`.
    pub fn file(path: impl AsRef<Path>) -> Self {
        SqliteConfig::at(Location::File(path.as_ref().to_owned()))
    }

    /// A database in process memory.
    pub fn memory() -> Self {
        SqliteConfig::at(Location::Memory)
    }

    /// A database in a new temporary file, deleted when the backend drops.
    pub fn temp() -> Self {
        SqliteConfig::at(Location::Temp)
    }

    fn at(location: Location) -> Self {
        SqliteConfig {
            location,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            readers: None,
            on_corrupt: OnCorrupt::Fail,
            budget: Budget::NONE,
            group_commit: false,
        }
    }

    /// Sets the busy timeout.
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets how many read-only connections answer point reads inline
    /// (`0`: none, every read goes through the writer thread).
    pub fn with_readers(mut self, readers: usize) -> Self {
        self.readers = Some(readers);
        self
    }

    /// Sets what a damaged database file does at open time.
    pub fn with_on_corrupt(mut self, on_corrupt: OnCorrupt) -> Self {
        self.on_corrupt = on_corrupt;
        self
    }

    /// Sets the budget.
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// Sets whether concurrent puts share commits
    /// ([`group_commit`](Self::group_commit)).
    pub fn with_group_commit(mut self, group_commit: bool) -> Self {
        self.group_commit = group_commit;
        self
    }

    /// How many reader connections a backend opens with this configuration
    /// (never more than [`MAX_READERS`]).
    pub fn reader_count(&self) -> usize {
        self.readers
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map_or(2, usize::from)
                    .min(MAX_DEFAULT_READERS)
            })
            .min(MAX_READERS)
    }

    /// Parses a `sqlite:` URL (see the table above). A wrong scheme, an
    /// empty path or an unknown or malformed option is a
    /// [`Configuration`](ErrorKind::Configuration) error naming it.
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url
            .get(..SCHEME.len() + 1)
            .filter(|s| s.eq_ignore_ascii_case("sqlite:"))
            .and_then(|_| url.get(SCHEME.len() + 1..))
            .ok_or_else(|| config_error(format!("{:?} is not a sqlite: URL", redact_url(url))))?;
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let path = match path.strip_prefix("//") {
            Some(after) => {
                // `sqlite://user:pw@/x`: the authority, before the first
                // '/', may not carry credentials; never echo them.
                let authority = after.split('/').next().unwrap_or("");
                if authority.contains('@') {
                    return Err(config_error(
                        "a sqlite: URL takes no user or password (found '@' before the path); \
                         write sqlite:///absolute/path.sqlite or sqlite://relative.sqlite"
                            .to_owned(),
                    ));
                }
                after
            }
            None => path,
        };
        let mut config = match path {
            ":memory:" => SqliteConfig::memory(),
            "" => {
                return Err(config_error(format!(
                    "{:?} names no database file",
                    redact_url(url)
                )));
            }
            path => {
                let decoded = percent_decode_str(path).decode_utf8().map_err(|_| {
                    config_error(format!(
                        "the path of {:?} is not UTF-8 once decoded",
                        redact_url(url)
                    ))
                })?;
                let path = respcache_core::options::path(decoded.as_ref())
                    .map_err(|e| config_error(e.message().to_owned()))?;
                SqliteConfig::file(path)
            }
        };
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if config
                .budget
                .apply_option(name, value)
                .map_err(|e| e.with_backend(NAME))?
            {
                continue;
            }
            match name {
                "busy_timeout" => {
                    config.busy_timeout = respcache_core::options::duration(name, value)
                        .map_err(|e| config_error(e.message().to_owned()))?;
                }
                "readers" => {
                    let readers: usize = value.parse().map_err(|_| {
                        config_error(format!("option readers={value:?} is not a count"))
                    })?;
                    if readers > MAX_READERS {
                        return Err(config_error(format!(
                            "option readers={readers} is over the maximum of {MAX_READERS} \
                             reader connections"
                        )));
                    }
                    config.readers = Some(readers);
                }
                "group_commit" => {
                    config.group_commit = respcache_core::options::boolean(name, value)
                        .map_err(|e| config_error(e.message().to_owned()))?;
                }
                "on_corrupt" => {
                    config.on_corrupt = match value {
                        "fail" => OnCorrupt::Fail,
                        "reset" => OnCorrupt::Reset,
                        _ => {
                            return Err(config_error(format!(
                                "option on_corrupt={value:?} is neither fail nor reset"
                            )));
                        }
                    };
                }
                other => {
                    return Err(config_error(format!(
                        "unknown option {other:?} in a sqlite: URL \
                         (known: busy_timeout, readers, on_corrupt, group_commit, max_bytes, max_entries)"
                    )));
                }
            }
        }
        Ok(config)
    }

    /// Opens a backend with this configuration.
    pub async fn connect(self) -> Result<SqliteBackend> {
        SqliteBackend::with_config(self).await
    }
}

impl FromStr for SqliteConfig {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self> {
        SqliteConfig::from_url(url)
    }
}

impl fmt::Debug for SqliteConfig {
    // Written out so no field is added to `Debug` without a thought about
    // secrets (SQLite URLs carry none today).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConfig")
            .field("location", &self.location)
            .field("busy_timeout", &self.busy_timeout)
            .field("readers", &self.readers)
            .field("group_commit", &self.group_commit)
            .field("on_corrupt", &self.on_corrupt)
            .field("budget", &self.budget)
            .finish()
    }
}

fn config_error(message: String) -> Error {
    Error::new(ErrorKind::Configuration, message).with_backend(NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<SqliteConfig> {
        SqliteConfig::from_url(url)
    }

    #[test]
    fn absolute_relative_and_memory_urls() -> Result<()> {
        assert_eq!(
            parse("sqlite:///abs/path/cache.sqlite")?.location,
            Location::File("/abs/path/cache.sqlite".into())
        );
        assert_eq!(
            parse("sqlite://relative.sqlite")?.location,
            Location::File("relative.sqlite".into())
        );
        assert_eq!(
            parse("sqlite:dir/relative.sqlite")?.location,
            Location::File("dir/relative.sqlite".into())
        );
        assert_eq!(parse("sqlite::memory:")?.location, Location::Memory);
        assert_eq!(parse("sqlite://:memory:")?.location, Location::Memory);
        assert_eq!(parse("SQLite::memory:")?.location, Location::Memory);
        assert_eq!(
            parse("sqlite:///tmp/my%20cache.sqlite")?.location,
            Location::File("/tmp/my cache.sqlite".into())
        );
        Ok(())
    }

    #[test]
    fn a_tilde_is_the_home_directory() -> Result<()> {
        // Always with a HOME of its own: without one the test proved nothing.
        let home = std::env::temp_dir().join("respcache-sqlite-home");
        let test = concat!(module_path!(), "::a_tilde_is_the_home_directory");
        if !respcache_conformance::processes::in_child_with_env(test, &[("HOME", &home)]).unwrap() {
            return Ok(()); // the child with that HOME passed
        }
        assert_eq!(
            std::env::var_os("HOME"),
            Some(home.clone().into_os_string())
        );
        assert_eq!(
            parse("sqlite://~/cache/a.sqlite")?.location,
            Location::File(home.join("cache/a.sqlite"))
        );
        Ok(())
    }

    #[test]
    fn query_options() -> Result<()> {
        let c = parse("sqlite::memory:?busy_timeout=5s&readers=3")?;
        assert_eq!(c.busy_timeout, Duration::from_secs(5));
        assert_eq!(c.readers, Some(3));
        assert_eq!(c.reader_count(), 3);
        assert_eq!(
            parse("sqlite://a.db?busy_timeout=250ms")?.busy_timeout,
            Duration::from_millis(250)
        );
        // A bare number was milliseconds here and seconds in DynamoDB's
        // URL: now every backend asks for the unit.
        let e = parse("sqlite://a.db?busy_timeout=1500").unwrap_err();
        assert!(e.to_string().contains("1500ms"), "{e}");
        assert_eq!(
            parse("sqlite://a.db?busy_timeout=1m")?.busy_timeout,
            Duration::from_secs(60)
        );
        assert_eq!(parse("sqlite://a.db")?.busy_timeout, DEFAULT_BUSY_TIMEOUT);
        assert_eq!(parse("sqlite://a.db?readers=0")?.reader_count(), 0);
        Ok(())
    }

    #[test]
    fn bad_urls_are_configuration_errors_naming_the_problem() {
        for (url, needle) in [
            ("redis://localhost", "not a sqlite: URL"),
            ("sqlite", "not a sqlite: URL"),
            ("sqlite://", "names no database file"),
            ("sqlite:", "names no database file"),
            ("sqlite://a.db?busy_timeout=soon", "busy_timeout"),
            ("sqlite://a.db?readers=-1", "readers"),
            ("sqlite://a.db?cache=shared", "\"cache\""),
            ("sqlite://a.db?readers=100000", "maximum of 64"),
            ("sqlite://a.db?readers=65", "maximum of 64"),
            ("sqlite://a.db?on_corrupt=maybe", "on_corrupt"),
            ("sqlite://:pw@/x.sqlite", "no user or password"),
            ("sqlite://user:pw@/x.sqlite", "no user or password"),
            ("sqlite://user:pw@host/x.sqlite", "no user or password"),
        ] {
            let e = parse(url).err().unwrap_or_else(|| panic!("{url} parsed"));
            assert_eq!(e.kind(), ErrorKind::Configuration, "{url}");
            assert!(e.to_string().contains(needle), "{url}: {e}");
            assert_eq!(e.backend(), Some("sqlite"));
            assert!(!format!("{e} {e:?}").contains("pw"), "{url}: {e:?}");
        }
    }

    #[test]
    fn readers_are_capped_and_on_corrupt_parses() -> Result<()> {
        assert_eq!(parse("sqlite://a.db?readers=64")?.reader_count(), 64);
        assert_eq!(
            SqliteConfig::memory().with_readers(100_000).reader_count(),
            MAX_READERS
        );
        assert_eq!(parse("sqlite://a.db")?.on_corrupt, OnCorrupt::Fail);
        assert_eq!(
            parse("sqlite://a.db?on_corrupt=reset")?.on_corrupt,
            OnCorrupt::Reset
        );
        // An '@' in the path itself is a file name, not credentials.
        assert_eq!(
            parse("sqlite:///tmp/a@b.sqlite")?.location,
            Location::File("/tmp/a@b.sqlite".into())
        );
        let e = parse("redis://u:hunter2@h/0").err().map(|e| e.to_string());
        assert!(!e.unwrap_or_default().contains("hunter2"));
        Ok(())
    }

    #[test]
    fn builder_and_from_str_agree() -> Result<()> {
        let built = SqliteConfig::file("/x/c.sqlite").with_readers(2);
        let parsed: SqliteConfig = "sqlite:///x/c.sqlite?readers=2".parse()?;
        assert_eq!(built, parsed);
        assert!(format!("{built:?}").contains("/x/c.sqlite"));
        Ok(())
    }
}
