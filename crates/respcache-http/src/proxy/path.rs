//! The upstream base URL and the request path appended to it: dot segments
//! removed, and never able to leave the base path.
//!
//! The check runs on the raw request target, before any URL parser sees it
//! (a URL join resolves dot segments on its own, which is how `/../admin`
//! used to reach `/admin` above the base). The rules:
//!
//! - Only an origin-form target (`/path?query`) or an absolute-form one
//!   (`http://host/path?query`, whose scheme and host are ignored) carries a
//!   path; anything else is refused.
//! - A segment that is `.` or `..` once its percent-encoded octets are
//!   decoded (`%2e`, `%2E`, `.%2e`, `%2E%2E`, …) is a dot segment and is
//!   removed as RFC 3986 §5.2.4 says; other segments are kept byte for byte.
//! - A path whose `..` segments would climb above the base is refused
//!   (`400`), whether read as it is or read the way a lenient upstream
//!   might: with `%2f`/`%2F`, `\` and `%5c`/`%5C` as separators and empty
//!   segments collapsed. An encoded slash is otherwise forwarded unchanged
//!   (some APIs put one inside a segment).
//! - Double encoding (`%252e`) is not decoded: it is a literal `%2e` to
//!   every conforming upstream.

use std::fmt;

use http::Uri;
use url::Url;

use crate::error::{Error, ErrorKind, Result};

/// Why a request path is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PathError {
    /// Not an origin-form or absolute-form target (`*`, `host:port`).
    NotAPath,
    /// `..` segments climb above the upstream base path.
    Escapes,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAPath => "the request target is not a path",
            PathError::Escapes => "the request path leaves the upstream base path",
        })
    }
}

/// The upstream base URL; request paths and queries are appended to it.
pub(crate) struct Upstream {
    /// The base, without its trailing `/`.
    base: String,
    /// The base's path, without its trailing `/` (empty for the root).
    base_path: String,
}

impl Upstream {
    /// Reads the upstream base URL: `http` or `https`, with a host, without
    /// credentials, query or fragment. A refusal is an
    /// [`InvalidUrl`](ErrorKind::InvalidUrl) error naming the URL with any
    /// password or secret-looking option redacted.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let shown = respcache_core::redact::redact_url(text);
        let bad =
            |why: &str| Error::new(ErrorKind::InvalidUrl, format!("upstream {shown:?}: {why}"));
        let url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad("not an http:// or https:// URL with a host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad(
                "a query or fragment cannot be combined with request paths",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials in the URL are not supported"));
        }
        Ok(Upstream {
            base: url.as_str().trim_end_matches('/').to_owned(),
            base_path: url.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The upstream URL for a request target: its path normalised and kept
    /// under the base path, its query unchanged.
    pub(crate) fn target(&self, uri: &Uri) -> Result<String, PathError> {
        // Absolute-form and origin-form both carry the path here;
        // asterisk-form and authority-form do not start with '/'.
        let Some(pq) = uri.path_and_query() else {
            return Err(PathError::NotAPath);
        };
        let path = pq.path();
        if !path.starts_with('/') {
            return Err(PathError::NotAPath);
        }
        if !path.bytes().any(|b| matches!(b, b'.' | b'%' | b'\\')) {
            // No dot segment, read strictly or leniently: the path is its
            // own normal form, and appended to the base it stays under it.
            return Ok(self.join(path, pq.query()));
        }
        self.checked_target(path, pq.query())
    }

    /// [`target`](Self::target) for any path: dot segments removed, then
    /// the URL parser's reading checked.
    fn checked_target(&self, path: &str, query: Option<&str>) -> Result<String, PathError> {
        let path = normalise(path)?;
        let url = self.join(&path, query);
        // Belt and braces: what the URL parser makes of it stays under the
        // base (it would resolve any dot segment left).
        let parsed = Url::parse(&url).map_err(|_| PathError::NotAPath)?;
        let under = parsed.path() == self.base_path
            || parsed
                .path()
                .strip_prefix(self.base_path.as_str())
                .is_some_and(|rest| rest.starts_with('/'));
        if !under {
            return Err(PathError::Escapes);
        }
        Ok(url)
    }

    /// The base, `path` and the query, if any.
    fn join(&self, path: &str, query: Option<&str>) -> String {
        let query_len = query.map_or(0, |q| q.len() + 1);
        let mut url = String::with_capacity(self.base.len() + path.len() + query_len);
        url.push_str(&self.base);
        url.push_str(path);
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        url
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

/// `path` (starting with `/`) with its dot segments removed; refused when
/// they climb above its root, read strictly or leniently.
pub(crate) fn normalise(path: &str) -> Result<String, PathError> {
    if escapes_leniently(path) {
        return Err(PathError::Escapes);
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.into_iter().enumerate() {
        match dot_kind(segment) {
            Dot::Parent => {
                if out.pop().is_none() {
                    return Err(PathError::Escapes);
                }
                // `/a/..` is `/`: the folder stays a folder.
                if i == last {
                    out.push("");
                }
            }
            Dot::Current => {
                if i == last {
                    out.push("");
                }
            }
            Dot::None => out.push(segment),
        }
    }
    Ok(format!("/{}", out.join("/")))
}

/// Whether `..` segments climb above the root when `path` is read as a
/// lenient upstream might: encoded slashes and backslashes split, empty
/// segments dropped.
fn escapes_leniently(path: &str) -> bool {
    if !path.bytes().any(|b| matches!(b, b'%' | b'\\')) {
        return escapes(path.split('/'));
    }
    let mut text = path.replace('\\', "/");
    for encoded in ["%2f", "%2F", "%5c", "%5C"] {
        text = text.replace(encoded, "/");
    }
    escapes(text.split('/'))
}

/// Whether the `..` among `segments` climb above the root (empty segments
/// are skipped).
fn escapes<'a>(segments: impl Iterator<Item = &'a str>) -> bool {
    let mut depth = 0usize;
    for segment in segments.filter(|s| !s.is_empty()) {
        match dot_kind(segment) {
            Dot::Parent => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return true,
            },
            Dot::Current => {}
            Dot::None => depth += 1,
        }
    }
    false
}

/// What a segment is once `%2e`/`%2E` is read as `.`.
enum Dot {
    None,
    Current,
    Parent,
}

fn dot_kind(segment: &str) -> Dot {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        rest = match rest {
            [b'.', after @ ..] => after,
            [b'%', b'2', b'e' | b'E', after @ ..] => after,
            _ => return Dot::None,
        };
        dots += 1;
    }
    match dots {
        1 => Dot::Current,
        2 => Dot::Parent,
        _ => Dot::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(text: &str) -> Upstream {
        Upstream::parse(text).unwrap()
    }

    fn target(u: &Upstream, raw: &str) -> Result<String, PathError> {
        u.target(&raw.parse::<Uri>().unwrap())
    }

    #[test]
    fn request_paths_join_the_upstream_base() {
        let u = upstream("http://127.0.0.1:9000/api/");
        assert_eq!(
            target(&u, "/v1/x?b=2&a=1"),
            Ok("http://127.0.0.1:9000/api/v1/x?b=2&a=1".to_owned())
        );
        let root = upstream("http://origin.test");
        assert_eq!(target(&root, "/"), Ok("http://origin.test/".to_owned()));
        assert_eq!(
            target(&root, "http://elsewhere.test/p?q"),
            Ok("http://origin.test/p?q".to_owned())
        );
        for bad in ["ftp://x/", "http://h/?q=1", "not a url", "http://u:p@h/"] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dot_segments_are_removed_within_the_base() {
        let u = upstream("http://u/api/v1");
        for (raw, want) in [
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/a/%2e%2E/b", "/b"),
            ("/a/.%2e/b/.", "/b/"),
            ("/a/b/..", "/a/"),
            ("/a//b", "/a//b"),
            ("/%2e", "/"),
            ("/a%2Fb", "/a%2Fb"),
            ("/a%2F..%2Fb", "/a%2F..%2Fb"),
            ("/%252e%252e/x", "/%252e%252e/x"),
            ("/...", "/..."),
        ] {
            assert_eq!(
                target(&u, raw),
                Ok(format!("http://u/api/v1{want}")),
                "{raw}"
            );
        }
    }

    #[test]
    fn paths_that_climb_above_the_base_are_refused() {
        let u = upstream("http://u/api/v1");
        for raw in [
            "/..",
            "/../../admin",
            "/%2e%2e/%2e%2e/admin",
            "/%2E%2E/admin",
            "/.%2e/admin",
            "/a/../../admin",
            "/a/..%2f..%2fadmin",
            "/a%2f..%2f..%2fadmin",
            "/a/..%5C..%5Cadmin",
            "/a//../../admin",
            "http://u/../admin",
        ] {
            assert_eq!(target(&u, raw), Err(PathError::Escapes), "{raw}");
        }
        assert_eq!(target(&u, "*"), Err(PathError::NotAPath));
        assert_eq!(target(&u, "u:80"), Err(PathError::NotAPath));
    }

    proptest::proptest! {
        /// The shortcut for plain paths answers as the full check does.
        #[test]
        fn every_path_is_read_as_the_full_check_reads_it(
            path in "(/[a-zA-Z0-9._~!$&'()*+,;=:@%/\\\\-]{0,7}){1,6}",
            query in proptest::option::of("[a-z0-9=&%.]{0,8}"),
        ) {
            let u = upstream("http://u/api/v1");
            let raw = match &query {
                Some(q) => format!("{path}?{q}"),
                None => path.clone(),
            };
            // What http's parser refuses never reaches the proxy.
            if let Ok(uri) = raw.parse::<Uri>() {
                let pq = uri.path_and_query().unwrap();
                proptest::prop_assert_eq!(
                    u.target(&uri),
                    u.checked_target(pq.path(), pq.query())
                );
            }
        }
    }
}
