//! Byte and entry budgets: [`Budget`], what a backend holds ([`Usage`]), and
//! [`Eviction`], the face of a backend that trims itself least recently
//! used first.
//!
//! A budget belongs to a backend handle — everything one `connect(url)`
//! opens: one SQLite file, one folder, one memory backend — so it bounds
//! what the user sees on disk. Backends enforce it approximately: they
//! trim, least recently used first, when a write takes them over the budget,
//! down to [`Budget::LOW_WATER_PERCENT`] of it, so the next trims are a
//! batch of writes away rather than one.

use std::fmt;

use async_trait::async_trait;

use crate::entry::Entry;
use crate::error::{Error, ErrorKind, Result};
use crate::size::{format_size, parse_size};

/// The bytes an entry is charged beyond its payload, metadata, name and
/// key: a stand-in for row, file-system and index overhead, the same for
/// every backend.
pub const ENTRY_OVERHEAD: u64 = 64;

/// The bytes an entry counts for against a budget: payload, metadata, name,
/// encoded key and [`ENTRY_OVERHEAD`].
pub fn entry_size(entry: &Entry) -> u64 {
    let key = entry.key.encode().len();
    sized(
        entry.payload.len(),
        entry.meta.as_ref().map_or(0, |m| m.len()),
        entry.name.as_ref().map_or(0, String::len) + key,
    )
}

/// [`entry_size`] from its parts' lengths (`other`: name and key).
pub fn sized(payload: usize, meta: usize, other: usize) -> u64 {
    (payload as u64)
        .saturating_add(meta as u64)
        .saturating_add(other as u64)
        .saturating_add(ENTRY_OVERHEAD)
}

/// How much a backend may hold. `None` in a field: no limit on it.
///
/// ```
/// use respcache_core::budget::Budget;
///
/// let mut budget = Budget::default();
/// assert!(budget.apply_option("max_bytes", "500MB")?);
/// assert!(budget.apply_option("max_entries", "100000")?);
/// assert!(!budget.apply_option("readers", "2")?); // not a budget option
/// assert_eq!(budget, Budget::bytes(500_000_000).with_max_entries(100_000));
/// # Ok::<(), respcache_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Budget {
    /// The most bytes (as [`entry_size`] counts them).
    pub max_bytes: Option<u64>,
    /// The most entries.
    pub max_entries: Option<u64>,
}

impl Budget {
    /// No limit.
    pub const NONE: Budget = Budget {
        max_bytes: None,
        max_entries: None,
    };

    /// A trim goes down to this percentage of the budget.
    pub const LOW_WATER_PERCENT: u64 = 90;

    /// A budget of `max_bytes` bytes.
    pub fn bytes(max_bytes: u64) -> Self {
        Budget {
            max_bytes: Some(max_bytes),
            max_entries: None,
        }
    }

    /// A budget of `max_entries` entries.
    pub fn entries(max_entries: u64) -> Self {
        Budget {
            max_bytes: None,
            max_entries: Some(max_entries),
        }
    }

    /// Sets the byte limit.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// Sets the entry limit.
    pub fn with_max_entries(mut self, max_entries: u64) -> Self {
        self.max_entries = Some(max_entries);
        self
    }

    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.max_bytes.is_some() || self.max_entries.is_some()
    }

    /// Whether `usage` is over a limit.
    pub fn is_exceeded_by(&self, usage: Usage) -> bool {
        self.max_bytes.is_some_and(|m| usage.bytes > m)
            || self.max_entries.is_some_and(|m| usage.entries > m)
    }

    /// What a trim aims at: [`LOW_WATER_PERCENT`](Self::LOW_WATER_PERCENT)
    /// of each limit.
    pub fn low_water(&self) -> Budget {
        let low = |m: u64| (u128::from(m) * u128::from(Self::LOW_WATER_PERCENT) / 100) as u64;
        Budget {
            max_bytes: self.max_bytes.map(low),
            max_entries: self.max_entries.map(low),
        }
    }

    /// Reads a URL option: `max_bytes` (a size, see [`crate::size`]) or
    /// `max_entries` (a count). Returns `false` for any other option name,
    /// so backends can share their query loop with it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`] for a malformed value.
    pub fn apply_option(&mut self, name: &str, value: &str) -> Result<bool> {
        match name {
            "max_bytes" => {
                self.max_bytes = Some(parse_size(value).map_err(|e| {
                    Error::new(ErrorKind::Configuration, format!("option max_bytes: {e}"))
                })?);
                Ok(true)
            }
            "max_entries" => {
                let n = value.trim().parse().map_err(|_| {
                    Error::new(
                        ErrorKind::Configuration,
                        format!("option max_entries={value:?} is not a count"),
                    )
                })?;
                self.max_entries = Some(n);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.max_bytes, self.max_entries) {
            (None, None) => f.write_str("unlimited"),
            (Some(b), None) => f.write_str(&format_size(b)),
            (None, Some(e)) => write!(f, "{e} entries"),
            (Some(b), Some(e)) => write!(f, "{}, {e} entries", format_size(b)),
        }
    }
}

/// What a backend holds, as a budget counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes, as [`entry_size`] counts them.
    pub bytes: u64,
    /// Entries.
    pub entries: u64,
}

/// Progress of a long trim, for a progress bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrimProgress {
    /// Entries removed so far.
    pub removed: u64,
    /// Bytes freed so far.
    pub freed: u64,
    /// Bytes that must be freed in all (0 when only entries are trimmed).
    pub to_free: u64,
}

/// A callback that hears a trim's progress after each batch.
pub type ProgressFn<'a> = &'a (dyn Fn(TrimProgress) + Send + Sync);

/// A backend that knows its size and trims itself least recently used
/// first. The local backends (memory, SQLite, filesystem) implement it;
/// [`Backend::eviction`](crate::Backend::eviction) hands it out.
///
/// # Contract
///
/// - `usage` counts every entry of every cache the handle reaches.
/// - `trim_to(target)` removes entries, least recently *used* (read or
///   written) first, until `usage` is within `target`; it works in bounded
///   batches, each its own transaction where the backend has them.
/// - With a budget set, a write that takes the backend over it trims to
///   [`Budget::low_water`] before it returns.
#[async_trait]
pub trait Eviction: Send + Sync {
    /// The budget the backend enforces on writes ([`Budget::NONE`]: none).
    fn budget(&self) -> Budget;

    /// What the backend holds now.
    async fn usage(&self) -> Result<Usage>;

    /// Removes least recently used entries until `target` holds; returns
    /// what was removed. `progress` hears about every batch.
    async fn trim_to(&self, target: Budget, progress: ProgressFn<'_>) -> Result<TrimProgress>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceeded_and_low_water() {
        let b = Budget::bytes(1000).with_max_entries(10);
        assert!(!b.is_exceeded_by(Usage {
            bytes: 1000,
            entries: 10
        }));
        assert!(b.is_exceeded_by(Usage {
            bytes: 1001,
            entries: 1
        }));
        assert!(b.is_exceeded_by(Usage {
            bytes: 1,
            entries: 11
        }));
        assert_eq!(b.low_water(), Budget::bytes(900).with_max_entries(9));
        assert!(!Budget::NONE.is_exceeded_by(Usage {
            bytes: u64::MAX,
            entries: u64::MAX
        }));
    }

    #[test]
    fn options_parse_and_errors_name_the_option() {
        let mut b = Budget::default();
        let e = b.apply_option("max_bytes", "huge").err();
        assert!(e.is_some_and(|e| e.to_string().contains("max_bytes")));
        let e = b.apply_option("max_entries", "-3").err();
        assert!(e.is_some_and(|e| e.to_string().contains("max_entries")));
        assert_eq!(b, Budget::NONE);
        assert_eq!(Budget::bytes(50 << 20).to_string(), "50.0 MiB");
    }
}
