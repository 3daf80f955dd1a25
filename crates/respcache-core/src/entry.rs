//! [`Entry`]: what every backend stores for one key.

use bytes::Bytes;

use crate::key::Key;
use crate::tags::Tags;
use crate::time::Timestamp;

/// One stored answer: its key, an optional human-readable name, when it was
/// cached, when it goes stale (`None`: never), the encoded payload, and
/// optional metadata bytes owned by the HTTP layer (status, headers, cache
/// policy), and the [`Tags`] that [`Store::purge_tag`](crate::Store::purge_tag)
/// finds it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key it is stored under.
    pub key: Key,
    /// A name taken from the payload (for people browsing the cache).
    pub name: Option<String>,
    /// When it was stored.
    pub cached_at: Timestamp,
    /// When it goes stale; `None` means never.
    pub expires_at: Option<Timestamp>,
    /// The payload, as the repository's codec encoded it.
    pub payload: Bytes,
    /// Response metadata written by the HTTP layer.
    pub meta: Option<Bytes>,
    /// The tags it can be purged by (none by default). Every backend stores
    /// them with the entry and returns them from `get` and `scan`; `put`
    /// replaces them with the entry's, `set_meta` and `set_expiry` keep them.
    pub tags: Tags,
}

impl Entry {
    /// An entry with no name, no metadata and no expiry, cached at `cached_at`.
    pub fn new(key: Key, cached_at: Timestamp, payload: impl Into<Bytes>) -> Self {
        Entry {
            key,
            name: None,
            cached_at,
            expires_at: None,
            payload: payload.into(),
            meta: None,
            tags: Tags::none(),
        }
    }

    /// Sets the name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the expiry time.
    pub fn with_expires_at(mut self, expires_at: Option<Timestamp>) -> Self {
        self.expires_at = expires_at;
        self
    }

    /// Sets the metadata.
    pub fn with_meta(mut self, meta: impl Into<Bytes>) -> Self {
        self.meta = Some(meta.into());
        self
    }

    /// Sets the tags (see [`Tags::new`] for the rules they follow).
    pub fn with_tags(mut self, tags: Tags) -> Self {
        self.tags = tags;
        self
    }

    /// Whether the entry is still fresh at `now`.
    pub fn is_fresh(&self, now: Timestamp) -> bool {
        is_fresh(self.expires_at, now)
    }
}

/// The one freshness rule every backend applies: an entry is fresh when it
/// never expires or when `expires_at` is strictly after `now`.
pub fn is_fresh(expires_at: Option<Timestamp>, now: Timestamp) -> bool {
    expires_at.is_none_or(|e| e > now)
}

/// Which entries a `count`, `clear` or `scan` applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Select {
    /// Every stored entry, fresh or stale.
    All,
    /// Entries still fresh at `now`.
    Fresh,
    /// Entries stale at `now` (`expires_at <= now`).
    Expired,
}

impl Select {
    /// Whether an entry expiring at `expires_at` is selected at `now`.
    pub fn matches(self, expires_at: Option<Timestamp>, now: Timestamp) -> bool {
        match self {
            Select::All => true,
            Select::Fresh => is_fresh(expires_at, now),
            Select::Expired => !is_fresh(expires_at, now),
        }
    }
}
