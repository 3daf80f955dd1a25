//! [`Location`]: a cache named on the command line — the backend URL, the
//! cache name (`?cache=NAME` or `--name`) and the retention
//! (`?retention=7d`).

use std::fmt;
use std::time::Duration;

use respcache::Name;

use crate::failure::{CliResult, Failure};

/// The query parameter that names the cache.
const CACHE_PARAM: &str = "cache";
/// The query parameter that sets the retention of stores the command writes.
const RETENTION_PARAM: &str = "retention";

/// A cache in a backend, as the command line names it.
#[derive(Clone)]
pub(crate) struct Location {
    /// The URL as given, password redacted, for messages.
    shown: String,
    /// The URL `respcache::connect` gets: the given one without the
    /// command's own parameters.
    backend_url: String,
    /// The cache.
    pub(crate) cache: Name,
    /// How long stale entries written by the command are kept by backends
    /// with native expiry.
    pub(crate) retention: Option<Duration>,
}

impl Location {
    /// Reads `url`; `name` (from `--name`) names the cache when the URL has
    /// no `cache` parameter. Both, and different, is an error.
    pub(crate) fn parse(url: &str, name: Option<&str>) -> CliResult<Self> {
        let shown = respcache::redact_url(url);
        let fail = |why: String| Failure::new(format!("{shown}: {why}"));
        let mut cache_param = None;
        let mut retention = None;
        // The command's own options come out; the rest is the backend's.
        let backend_url = respcache::options::take_query_options(url, |key, value| {
            match key {
                CACHE_PARAM => {
                    if cache_param.replace(value.to_owned()).is_some() {
                        return Err(respcache::Error::new(
                            respcache::ErrorKind::Configuration,
                            "the cache parameter is given twice",
                        ));
                    }
                }
                RETENTION_PARAM => {
                    retention = Some(respcache::options::duration(RETENTION_PARAM, value)?);
                }
                _ => return Ok(false),
            }
            Ok(true)
        })
        .map_err(|e| fail(e.message().to_owned()))?;
        let cache = match (cache_param, name) {
            (Some(p), Some(n)) if p != n => {
                return Err(fail(format!(
                    "the URL names cache {p:?} but --name says {n:?}; give one of them"
                )));
            }
            (Some(p), _) => p,
            (None, Some(n)) => n.to_owned(),
            (None, None) => {
                return Err(fail(
                    "no cache name: add ?cache=NAME to the URL or pass --name NAME \
                     (the HTTP client's default cache is \"http_cache\")"
                        .to_owned(),
                ));
            }
        };
        let cache = Name::new(cache).map_err(|e| fail(format!("cache name {e}")))?;
        Ok(Location {
            shown,
            backend_url,
            cache,
            retention,
        })
    }

    /// The URL to connect to.
    pub(crate) fn backend_url(&self) -> &str {
        &self.backend_url
    }

    /// The URL as given, password redacted.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// Whether two locations name the same cache in the same backend.
    pub(crate) fn same_cache(&self, other: &Location) -> bool {
        self.cache == other.cache && self.backend_url == other.backend_url
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cache {:?} at {}", self.cache.as_str(), self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str, name: Option<&str>) -> Result<Location, String> {
        Location::parse(url, name).map_err(|e| match e {
            Failure::Error(m) => m,
            Failure::BrokenPipe => "broken pipe".to_owned(),
        })
    }

    #[test]
    fn cache_and_retention_are_taken_out_of_the_url() -> Result<(), String> {
        let l = parse(
            "sqlite:///tmp/c.sqlite?busy_timeout=1s&cache=spotify&retention=7d",
            None,
        )?;
        assert_eq!(l.cache.as_str(), "spotify");
        assert_eq!(l.retention, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(l.backend_url(), "sqlite:///tmp/c.sqlite?busy_timeout=1s");
        let l = parse("sqlite::memory:?cache=a", None)?;
        assert_eq!(l.backend_url(), "sqlite::memory:");
        assert_eq!(l.retention, None);
        Ok(())
    }

    #[test]
    fn name_flag_is_the_fallback() -> Result<(), String> {
        assert_eq!(parse("redis://h/", Some("x"))?.cache.as_str(), "x");
        assert_eq!(parse("redis://h/?cache=x", Some("x"))?.cache.as_str(), "x");
        let both = parse("redis://h/?cache=x", Some("y"))
            .err()
            .unwrap_or_default();
        assert!(both.contains("--name says \"y\""), "{both}");
        let none = parse("redis://h/", None).err().unwrap_or_default();
        assert!(none.contains("no cache name"), "{none}");
        Ok(())
    }

    #[test]
    fn bad_values_are_named_and_passwords_hidden() {
        let e = parse("redis://u:pw@h/?cache=a.b", None)
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("redis://u:***@h/"), "{e}");
        assert!(!e.contains("pw@"), "{e}");
        assert!(e.contains("\"a.b\""), "{e}");
        let e = parse("redis://h/?cache=a&retention=soon", None)
            .err()
            .unwrap_or_default();
        assert!(e.contains("retention=\"soon\""), "{e}");
    }
}
