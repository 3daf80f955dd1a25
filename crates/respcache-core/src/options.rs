//! One grammar for the options in backend URLs (`?busy_timeout=5s`,
//! `?timeout=250ms`, `?create_dirs=false`...), the same for every backend
//! and for [`connect`](https://docs.rs/respcache/latest/respcache/fn.connect.html):
//!
//! - **durations** are humantime's: a number *with a unit* — `250ms`, `5s`,
//!   `10m`, `2h`, `1h 30m`, `7d`. A bare number is refused (it meant
//!   milliseconds in some URLs and seconds in others); a time limit also
//!   takes `0` for "none";
//! - **booleans** are `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, in
//!   any case;
//! - **paths** may start with `~/`, the user's home directory (`$HOME`).
//!
//! Errors are [`Configuration`](ErrorKind::Configuration) errors that name
//! the option and the value.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

fn bad(option: &str, value: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::Configuration,
        format!("option {option}={value:?} is not {what}"),
    )
}

/// A duration option (`250ms`, `5s`, `10m`, `2h`, `1h 30m`).
///
/// ```
/// use std::time::Duration;
/// use respcache_core::options;
///
/// assert_eq!(options::duration("busy_timeout", "250ms")?, Duration::from_millis(250));
/// assert_eq!(options::duration("retention", "1h 30m")?, Duration::from_secs(5400));
/// assert!(options::duration("busy_timeout", "5000").is_err()); // which unit?
/// # Ok::<(), respcache_core::Error>(())
/// ```
///
/// # Errors
///
/// [`Configuration`](ErrorKind::Configuration) for anything else, a bare
/// number included (the message says to add a unit).
pub fn duration(option: &str, value: &str) -> Result<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            option,
            value,
            &format!("a duration: add a unit ({value}ms, {value}s, {value}m)"),
        ));
    }
    humantime::parse_duration(value)
        .map_err(|_| bad(option, value, "a duration (like 250ms, 5s, 10m, 2h)"))
}

/// A time limit: a [`duration`], or `0` for none.
///
/// # Errors
///
/// As [`duration`].
pub fn limit(option: &str, value: &str) -> Result<Option<Duration>> {
    if value.trim() == "0" {
        return Ok(None);
    }
    let d = duration(option, value)?;
    Ok((!d.is_zero()).then_some(d))
}

/// A boolean option (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`).
///
/// # Errors
///
/// [`Configuration`](ErrorKind::Configuration) for anything else.
pub fn boolean(option: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(bad(option, value, "a boolean (true or false)")),
    }
}

/// A path from a URL: `~` or `~/…` is under the user's home directory
/// (`$HOME`); anything else as written.
///
/// # Errors
///
/// [`Configuration`](ErrorKind::Configuration) when the path starts with
/// `~` and `$HOME` is not set.
pub fn path(value: &str) -> Result<PathBuf> {
    let rest = match value.strip_prefix('~') {
        Some("") => "",
        Some(rest) if rest.starts_with('/') => &rest[1..],
        _ => return Ok(PathBuf::from(value)),
    };
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Configuration,
                format!("path {value:?} starts with ~ but HOME is not set"),
            )
        })?;
    Ok(PathBuf::from(home).join(rest))
}

/// Takes some query options out of a URL: `take(name, value)` says whether
/// it consumed each option (its errors stop the walk); returns the URL with
/// the other options, in their order, and its fragment. Values are passed
/// as written (not percent-decoded).
///
/// ```
/// let mut seen = Vec::new();
/// let rest = respcache_core::options::take_query_options("sqlite:///a.db?cache=x&readers=2#f", |name, value| {
///     if name == "cache" {
///         seen.push(value.to_owned());
///         return Ok(true);
///     }
///     Ok(false)
/// })?;
/// assert_eq!((rest.as_str(), seen), ("sqlite:///a.db?readers=2#f", vec!["x".to_owned()]));
/// # Ok::<(), respcache_core::Error>(())
/// ```
///
/// # Errors
///
/// The first error `take` returns.
pub fn take_query_options(
    url: &str,
    mut take: impl FnMut(&str, &str) -> Result<bool>,
) -> Result<String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok(url.to_owned());
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !take(name, value)? {
            kept.push(pair);
        }
    }
    let mut out = base.to_owned();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit_and_zero_limits_mean_none() {
        assert_eq!(duration("t", "2m").unwrap(), Duration::from_secs(120));
        assert_eq!(
            duration("t", " 7d ").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        let e = duration("busy_timeout", "5000").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.to_string().contains("5000ms"), "{e}");
        assert!(duration("t", "soon").is_err());
        assert!(duration("t", "").is_err());
        assert_eq!(limit("t", "0").unwrap(), None);
        assert_eq!(limit("t", "0s").unwrap(), None);
        assert_eq!(limit("t", "3s").unwrap(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn booleans_in_every_spelling() {
        for yes in ["true", "1", "YES", "On"] {
            assert!(boolean("b", yes).unwrap());
        }
        for no in ["false", "0", "no", "OFF"] {
            assert!(!boolean("b", no).unwrap());
        }
        assert_eq!(
            boolean("b", "maybe").unwrap_err().kind(),
            ErrorKind::Configuration
        );
    }

    #[test]
    fn a_tilde_is_the_home_directory() {
        // Always with a HOME of its own: without one the test proved nothing.
        let home = std::env::temp_dir().join("respcache-core-home");
        let test = concat!(module_path!(), "::a_tilde_is_the_home_directory");
        if !respcache_conformance::processes::in_child_with_env(test, &[("HOME", &home)]).unwrap() {
            return; // the child with that HOME passed
        }
        assert_eq!(
            std::env::var_os("HOME"),
            Some(home.clone().into_os_string())
        );
        assert_eq!(
            path("~/cache/a.sqlite").unwrap(),
            home.join("cache/a.sqlite")
        );
        assert_eq!(path("~").unwrap(), home);
        assert_eq!(path("/abs/~x").unwrap(), PathBuf::from("/abs/~x"));
        assert_eq!(path("~user/x").unwrap(), PathBuf::from("~user/x"));
    }

    #[test]
    fn a_tilde_without_a_home_is_a_configuration_error() {
        let test = concat!(
            module_path!(),
            "::a_tilde_without_a_home_is_a_configuration_error"
        );
        let empty = std::path::Path::new("");
        if !respcache_conformance::processes::in_child_with_env(test, &[("HOME", empty)]).unwrap() {
            return; // the child with an empty HOME passed
        }
        let e = path("~/cache/a.sqlite").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.to_string().contains("HOME is not set"), "{e}");
        assert_eq!(path("/abs/x").unwrap(), PathBuf::from("/abs/x"));
    }
}
