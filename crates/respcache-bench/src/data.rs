//! The data every benchmark uses: key schema, keys, payloads, entries.

use std::time::Duration;

use bytes::Bytes;
use respcache_core::{Entry, FieldKind, Key, KeyPart, KeySchema, Name, StoreSpec, Timestamp};

use crate::Result;

/// 1 KiB: the small payload.
pub const SMALL: usize = 1024;
/// 100 KiB: the large payload.
pub const LARGE: usize = 100 * 1024;

/// The key schema of every benchmark store: one text field, `id`.
pub fn schema() -> Result<KeySchema> {
    Ok(KeySchema::new([("id", FieldKind::Text)])?)
}

/// The spec of repository `repository` in cache `cache`.
pub fn spec(cache: &Name, repository: &str) -> Result<StoreSpec> {
    Ok(StoreSpec::new(
        cache.clone(),
        Name::new(repository)?,
        schema()?,
    ))
}

/// The key `GET <prefix>-<i>`.
pub fn key(prefix: &str, i: u64) -> Key {
    Key::new("GET", [KeyPart::from(format!("{prefix}-{i}"))])
}

/// `size` bytes that do not compress (a xorshift stream seeded by `seed`),
/// so no store gets an easy ride.
pub fn payload(size: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size);
    Bytes::from(out)
}

/// An entry under `key`, cached now, fresh for a day.
pub fn fresh_entry(key: Key, payload: Bytes) -> Entry {
    let now = Timestamp::now();
    Entry::new(key, now, payload)
        .with_expires_at(Some(now.saturating_add(Duration::from_secs(86_400))))
}

/// An entry under `key`, cached two hours ago, stale for an hour.
pub fn stale_entry(key: Key, payload: Bytes) -> Entry {
    let now = Timestamp::now();
    Entry::new(key, now.saturating_sub(Duration::from_secs(7_200)), payload)
        .with_expires_at(Some(now.saturating_sub(Duration::from_secs(3_600))))
}

/// A cache name no earlier run used: `bench-<pid>-<ms>` (the services keep
/// data between runs).
pub fn run_cache_name(tag: &str) -> Result<Name> {
    let ms = Timestamp::now().as_millis() % 1_000_000_000;
    Ok(Name::new(format!(
        "bench-{tag}-{}-{ms}",
        std::process::id()
    ))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_size_asked_and_differ_by_seed() {
        assert_eq!(payload(SMALL, 1).len(), SMALL);
        assert_eq!(payload(LARGE + 3, 1).len(), LARGE + 3);
        assert_ne!(payload(64, 1), payload(64, 2));
        assert_eq!(payload(64, 7), payload(64, 7));
    }

    #[test]
    fn fresh_and_stale_entries_are_what_they_say() {
        let now = Timestamp::now();
        assert!(fresh_entry(key("k", 1), payload(8, 1)).is_fresh(now));
        assert!(!stale_entry(key("k", 1), payload(8, 1)).is_fresh(now));
        assert!(schema().unwrap().validate(&key("k", 1)).is_ok());
        assert!(run_cache_name("x").unwrap().as_str().len() <= 64);
    }
}
