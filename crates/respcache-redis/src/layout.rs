//! Where respcache's data lives in the Redis key space.
//!
//! On one server:
//!
//! | Redis key | type | holds |
//! |---|---|---|
//! | `<cache>:<repository>:<Key::encode()>` | string | one entry, as the core's [envelope](respcache_core::envelope) |
//! | `<cache>:_lease:<repository>:<Key::encode()>` | string | a lease: the holder's token, expiring with `PX` |
//! | `<cache>:_tag:<repository>:<tag>` | set | the Redis keys of the entries written with that tag (see `RedisStore::purge_tag`) |
//! | `<cache>:_stores` | set | the names of the cache's repositories (for `list_stores`) |
//!
//! On a Redis Cluster every key of one store carries the hash tag
//! `{<cache>:<repository>}`, so a store lives in one hash slot (on one
//! master) and its multi-key commands, transactions and scripts stay
//! possible:
//!
//! | Redis key | holds |
//! |---|---|
//! | `{<cache>:<repository>}:<Key::encode()>` | one entry |
//! | `{<cache>:<repository>}_lease:<Key::encode()>` | a lease |
//! | `{<cache>:<repository>}_tag:<tag>` | a tag's set of entry keys |
//! | `<cache>:_stores` | the registry (a key of its own slot) |
//!
//! Cache and repository names are 1–64 of `[A-Za-z0-9_-]` starting with a
//! letter or digit, so they never contain `:` and no repository can be named
//! `_stores`: two caches, two repositories of one cache, and the registry
//! never share a key or a key prefix.

use respcache_core::Name;

/// The registry set's suffix; it starts with `_`, which no name can.
const REGISTRY: &str = "_stores";

/// The lease marker; it starts with `_`, which no name can.
const LEASE: &str = "_lease";

/// The tag marker; it starts with `_`, which no name can.
const TAG: &str = "_tag";

/// The prefix of every tag set of one repository: `<cache>:_tag:<repository>:`,
/// or `{<cache>:<repository>}_tag:` on a cluster (the store's slot). Like
/// leases, neither matches the entries' `SCAN` pattern.
pub(crate) fn tag_prefix(cache: &Name, repository: &Name, cluster: bool) -> String {
    if cluster {
        format!("{}{TAG}:", slot_tag(cache, repository))
    } else {
        format!("{cache}:{TAG}:{repository}:")
    }
}

/// The prefix of every entry of one repository: `<cache>:<repository>:`,
/// or `{<cache>:<repository>}:` on a cluster.
pub(crate) fn entry_prefix(cache: &Name, repository: &Name, cluster: bool) -> String {
    if cluster {
        format!("{}:", slot_tag(cache, repository))
    } else {
        format!("{cache}:{repository}:")
    }
}

/// The prefix of every lease of one repository: `<cache>:_lease:<repository>:`,
/// or `{<cache>:<repository>}_lease:` on a cluster. Neither matches the
/// entries' `SCAN` pattern (names never start with `_`; the tag is
/// followed by `_`, not `:`).
pub(crate) fn lease_prefix(cache: &Name, repository: &Name, cluster: bool) -> String {
    if cluster {
        format!("{}{LEASE}:", slot_tag(cache, repository))
    } else {
        format!("{cache}:{LEASE}:{repository}:")
    }
}

/// The hash tag that keeps one repository's keys in one cluster slot:
/// `{<cache>:<repository>}` (names never contain `{` or `}`).
pub(crate) fn slot_tag(cache: &Name, repository: &Name) -> String {
    format!("{{{cache}:{repository}}}")
}

/// The set of a cache's repository names: `<cache>:_stores`.
pub(crate) fn registry_key(cache: &Name) -> String {
    format!("{cache}:{REGISTRY}")
}

/// A `SCAN ... MATCH` pattern for every key that starts with `prefix`.
///
/// Glob patterns give `*`, `?`, `[`, `]` and `\` a meaning; each is escaped
/// with a backslash so the prefix matches only itself. Names cannot contain
/// them today, but the pattern stays right if that rule ever loosens.
pub(crate) fn prefix_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let cache = Name::new("c").unwrap();
        let repo = Name::new("tracks").unwrap();
        assert_eq!(entry_prefix(&cache, &repo, false), "c:tracks:");
        assert_eq!(entry_prefix(&cache, &repo, true), "{c:tracks}:");
        assert_eq!(lease_prefix(&cache, &repo, false), "c:_lease:tracks:");
        assert_eq!(lease_prefix(&cache, &repo, true), "{c:tracks}_lease:");
        assert_eq!(tag_prefix(&cache, &repo, false), "c:_tag:tracks:");
        assert_eq!(tag_prefix(&cache, &repo, true), "{c:tracks}_tag:");
        assert!(Name::new(TAG).is_err(), "no repository can shadow tag sets");
        assert!(Name::new(LEASE).is_err(), "no repository can shadow leases");
        let tag = slot_tag(&cache, &repo);
        assert_eq!(tag, "{c:tracks}");
        use redis::cluster_routing::Slot;
        for key in [
            entry_prefix(&cache, &repo, true),
            lease_prefix(&cache, &repo, true),
            tag_prefix(&cache, &repo, true),
        ] {
            assert_eq!(
                Slot::for_key(format!("{key}x{{y}}")),
                Slot::for_key(&tag),
                "{key}"
            );
        }
        assert_eq!(registry_key(&cache), "c:_stores");
        assert!(
            Name::new(REGISTRY).is_err(),
            "no repository can shadow the registry"
        );
    }

    #[test]
    fn patterns_escape_glob_characters() {
        assert_eq!(prefix_pattern("c:r:"), "c:r:*");
        assert_eq!(prefix_pattern(r"a*b?c[d]e\f:"), r"a\*b\?c\[d\]e\\f:*");
    }

    /// Redis reads the escaped pattern as the literal prefix (needs the
    /// server at `RESPCACHE_REDIS_URL`).
    #[tokio::test]
    async fn redis_matches_the_escaped_prefix_literally() {
        let url = respcache_conformance::services::REDIS.url();
        let mut con = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("Redis is not reachable at {url}: {e}"));
        let base = format!("it-glob-{}", std::process::id());
        let literal = format!(r"{base}:a*b?[1]\:");
        let keys = [
            format!(r"{base}:a*b?[1]\:k"),
            format!(r"{base}:aXXb![1]\:k"),
            format!(r"{base}:a*b?1\:k"),
            format!(r"{base}:a*b?[1]:k"),
        ];
        for k in &keys {
            let _: () = redis::cmd("SET")
                .arg(k)
                .arg("v")
                .query_async(&mut con)
                .await
                .unwrap();
        }
        let mut found = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(prefix_pattern(&literal))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut con)
                .await
                .unwrap();
            found.extend(page);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(found, vec![keys[0].clone()]);
    }
}
