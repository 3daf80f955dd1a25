//! [`FsConfig`]: where the cache lives on disk and how hard writes try to
//! be durable, from code or from an `fs:` URL.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use percent_encoding::percent_decode_str;
use respcache_core::budget::Budget;
use respcache_core::redact::redact_url;
use respcache_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::SCHEME;

/// How to open a filesystem backend.
///
/// Build one in code with [`FsConfig::new`], or parse an `fs:` URL with
/// [`FsConfig::from_url`] (also [`FromStr`]):
///
/// | URL | root folder |
/// |---|---|
/// | `fs:///var/cache/app` | `/var/cache/app` (absolute) |
/// | `fs://localhost/var/cache/app` | `/var/cache/app` (the `file:` URL form) |
/// | `fs:/var/cache/app` | `/var/cache/app` |
/// | `fs://./cache`, `fs:./cache`, `fs:cache` | `./cache`, relative to the working directory when the backend connects |
/// | `fs://../cache`, `fs:../cache` | `../cache` |
///
/// The path is percent-decoded (`fs:///srv/my%20cache` is `/srv/my cache`);
/// `fs:~/cache` is under the user's home directory.
/// Options are query parameters:
///
/// | option | values | default | meaning |
/// |---|---|---|---|
/// | `fsync` | `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`) | `false` | see [`FsConfig::fsync`] |
/// | `max_bytes` | a size: `500MB`, `1GiB` | none | see [`FsConfig::budget`] |
/// | `max_entries` | a count | none | see [`FsConfig::budget`] |
///
/// An unknown option, a host other than `localhost`, `.` or `..`, a
/// fragment or an empty path is a [`Configuration`](ErrorKind::Configuration)
/// error that says which part is wrong.
///
/// ```
/// use respcache_fs::FsConfig;
///
/// let config: FsConfig = "fs:///var/cache/app?fsync=true".parse()?;
/// assert_eq!(config, FsConfig::new("/var/cache/app").with_fsync(true));
/// assert_eq!(FsConfig::from_url("fs://./cache")?.root, std::path::Path::new("./cache"));
/// # Ok::<(), respcache_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FsConfig {
    /// The root folder; created when missing. A relative path is resolved
    /// against the working directory when the backend connects.
    pub root: PathBuf,
    /// Flush every write to disk before it returns: the entry file before
    /// its rename, and its folder after it (and `set_expiry`'s header
    /// write). Without it (the default) a write is still atomic and
    /// survives the process being killed, but the last writes before a
    /// power loss or kernel crash may be lost (never torn).
    #[serde(default)]
    pub fsync: bool,
    /// The budget of the whole root folder (every cache under it): a write
    /// that takes it over removes the least recently used entries down to
    /// 90 % of it. Sizes are file lengths (plus 16 bytes each); on disk
    /// each file also rounds up to a block.
    #[serde(skip)]
    pub budget: Budget,
}

impl FsConfig {
    /// A configuration for the folder `root`, without `fsync`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsConfig {
            root: root.into(),
            fsync: false,
            budget: Budget::NONE,
        }
    }

    /// Sets the [`budget`](FsConfig::budget).
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// Sets [`fsync`](FsConfig::fsync).
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    /// Parses an `fs:` URL (see the table above).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`], naming the part that is wrong.
    pub fn from_url(url: &str) -> Result<Self> {
        // Errors show the URL without a password or secret-looking option.
        let shown = redact_url(url);
        let rest = url
            .strip_prefix(SCHEME)
            .and_then(|r| r.strip_prefix(':'))
            .ok_or_else(|| config_error(format!("{shown:?} is not an `fs:` URL")))?;
        if rest.contains('#') {
            return Err(config_error(format!("{shown:?}: fs URLs have no fragment")));
        }
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let root = root_of(&shown, location)?;
        let mut config = FsConfig::new(root);
        for (option, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if config.budget.apply_option(&option, &value)? {
                continue;
            }
            match &*option {
                "fsync" => {
                    config.fsync = respcache_core::options::boolean(&option, &value)
                        .map_err(|e| config_error(format!("{shown:?}: {}", e.message())))?;
                }
                other => {
                    return Err(config_error(format!(
                        "{shown:?}: unknown option {other:?} (known: fsync, max_bytes, max_entries)"
                    )));
                }
            }
        }
        Ok(config)
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl FromStr for FsConfig {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self> {
        FsConfig::from_url(url)
    }
}

/// The root folder named by the part of the URL after `fs:` and before `?`
/// (`url`, already redacted, is for errors).
fn root_of(url: &str, location: &str) -> Result<PathBuf> {
    let (prefix, path) = match location.strip_prefix("//") {
        Some(authority_and_path) => {
            let (authority, path) = authority_and_path
                .find('/')
                .map_or((authority_and_path, ""), |i| authority_and_path.split_at(i));
            match authority {
                "" | "localhost" => ("", path),
                "." | ".." => (authority, path),
                other if other.contains('@') => {
                    return Err(config_error(format!(
                        "{url:?}: fs URLs take no user or password; they name a local \
                         folder: fs:///absolute/path or fs://./relative/path"
                    )));
                }
                other => {
                    return Err(config_error(format!(
                        "{url:?}: the host {other:?} is not supported; fs URLs name a local \
                         folder: fs:///absolute/path or fs://./relative/path"
                    )));
                }
            }
        }
        None => ("", location),
    };
    let path = percent_decode_str(path)
        .decode_utf8()
        .map_err(|e| config_error(format!("{url:?}: the path is not UTF-8 once decoded: {e}")))?;
    let root = format!("{prefix}{path}");
    if root.is_empty() {
        return Err(config_error(format!("{url:?}: the URL names no folder")));
    }
    respcache_core::options::path(&root)
        .map_err(|e| config_error(format!("{url:?}: {}", e.message())))
}

fn config_error(message: String) -> Error {
    Error::new(ErrorKind::Configuration, message).with_backend(SCHEME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(url: &str) -> PathBuf {
        FsConfig::from_url(url).unwrap().root
    }

    #[test]
    fn absolute_forms() {
        for url in [
            "fs:///var/cache/app",
            "fs://localhost/var/cache/app",
            "fs:/var/cache/app",
        ] {
            assert_eq!(root(url), Path::new("/var/cache/app"), "{url}");
        }
        assert_eq!(root("fs:///srv/my%20cache"), Path::new("/srv/my cache"));
        assert_eq!(root("fs:///"), Path::new("/"));
    }

    #[test]
    fn relative_forms_keep_dot_segments() {
        assert_eq!(root("fs://./cache"), Path::new("./cache"));
        assert_eq!(root("fs://."), Path::new("."));
        assert_eq!(root("fs:./cache/x"), Path::new("./cache/x"));
        assert_eq!(root("fs:cache"), Path::new("cache"));
        assert_eq!(root("fs://../up/there"), Path::new("../up/there"));
        assert_eq!(root("fs:../up"), Path::new("../up"));
    }

    #[test]
    fn a_tilde_is_the_home_directory() {
        // Always with a HOME of its own: without one the test proved nothing.
        let home = std::env::temp_dir().join("respcache-fs-home");
        let test = concat!(module_path!(), "::a_tilde_is_the_home_directory");
        if !respcache_conformance::processes::in_child_with_env(test, &[("HOME", &home)]).unwrap() {
            return; // the child with that HOME passed
        }
        assert_eq!(
            std::env::var_os("HOME"),
            Some(home.clone().into_os_string())
        );
        assert_eq!(
            FsConfig::from_url("fs:~/cache/app").unwrap().root,
            home.join("cache/app")
        );
    }

    #[test]
    fn options() {
        assert!(!FsConfig::from_url("fs:///x").unwrap().fsync);
        assert!(FsConfig::from_url("fs:///x?fsync=true").unwrap().fsync);
        assert!(FsConfig::from_url("fs:///x?fsync=1").unwrap().fsync);
        assert!(!FsConfig::from_url("fs:///x?fsync=false").unwrap().fsync);
    }

    #[test]
    fn mistakes_are_configuration_errors_naming_the_part() {
        for (url, says) in [
            ("redis://x", "not an `fs:` URL"),
            ("fs", "not an `fs:` URL"),
            ("fs://example.com/x", "host \"example.com\""),
            ("fs:", "names no folder"),
            ("fs://", "names no folder"),
            ("fs:///x?fsync=maybe", "not a boolean"),
            ("fs:///x?sync=true", "unknown option \"sync\""),
            ("fs:///x#frag", "no fragment"),
            ("fs:///%FF", "not UTF-8"),
            ("fs://u:hunter2@/x", "no user or password"),
            ("fs:///x?token=hunter2&sync=1", "unknown option \"token\""),
        ] {
            let e = FsConfig::from_url(url).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Configuration, "{url}");
            assert!(e.to_string().contains(says), "{url}: {e}");
            assert!(!format!("{e} {e:?}").contains("hunter2"), "{url}: {e:?}");
        }
    }
}
