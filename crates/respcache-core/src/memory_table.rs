//! One memory store's entries and their tag index, kept together under the
//! table's one lock so the index can never disagree with the entries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use crate::entry::Entry;

/// An encoded key, held once: the table, its tag index and the recency
/// order share it (three copies of a ~100-byte key were most of an entry's
/// own cost).
pub(crate) type SharedKey = Arc<str>;

/// Entries by encoded key, and for each tag the encoded keys carrying it.
#[derive(Debug, Default)]
pub(crate) struct Entries {
    by_key: BTreeMap<SharedKey, Entry>,
    by_tag: HashMap<String, BTreeSet<SharedKey>>,
}

impl Entries {
    /// The entry under `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&Entry> {
        self.by_key.get(key)
    }

    /// The entry under `key`, to change its expiry or metadata (never its
    /// tags, which the index mirrors).
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        self.by_key.get_mut(key)
    }

    /// Inserts or replaces the entry under `key` (encoded), moving its
    /// index marks from the old entry's tags to the new one's; the key it
    /// is held under, for the recency order to share. A replace keeps the
    /// key already held (a new one would be a second copy).
    pub(crate) fn insert(&mut self, key: String, entry: Entry) -> SharedKey {
        let key = match self.by_key.get_key_value(key.as_str()) {
            Some((held, old)) => {
                let (held, old_tags) = (Arc::clone(held), old.tags.clone());
                self.unindex(&held, &old_tags);
                held
            }
            None => SharedKey::from(key),
        };
        for tag in &entry.tags {
            self.by_tag
                .entry(tag.clone())
                .or_default()
                .insert(Arc::clone(&key));
        }
        self.by_key.insert(Arc::clone(&key), entry);
        key
    }

    /// Removes the entry under `key` and its index marks.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.by_key.remove(key)?;
        self.unindex(key, &entry.tags);
        Some(entry)
    }

    /// Keeps only the entries `keep` accepts (given each key and entry).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str, &Entry) -> bool) {
        let gone: Vec<SharedKey> = self
            .by_key
            .iter()
            .filter(|(k, e)| !keep(k, e))
            .map(|(k, _)| Arc::clone(k))
            .collect();
        for key in gone {
            self.remove(&key);
        }
    }

    /// The encoded keys of the entries carrying `tag`.
    pub(crate) fn keys_tagged(&self, tag: &str) -> Vec<SharedKey> {
        self.by_tag
            .get(tag)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Removes everything.
    pub(crate) fn clear(&mut self) {
        self.by_key.clear();
        self.by_tag.clear();
    }

    /// How many entries there are.
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Every entry.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Entry> {
        self.by_key.values()
    }

    /// Entries by key order from `from` on.
    pub(crate) fn range_from(
        &self,
        from: Bound<&str>,
    ) -> impl Iterator<Item = (&SharedKey, &Entry)> {
        self.by_key.range::<str, _>((from, Bound::Unbounded))
    }

    fn unindex(&mut self, key: &str, tags: &crate::tags::Tags) {
        for tag in tags {
            if let Some(keys) = self.by_tag.get_mut(tag.as_str()) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_tag.remove(tag.as_str());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{Key, KeyPart};
    use crate::tags::Tags;
    use crate::time::Timestamp;

    fn entry(k: &str, tags: &[&str]) -> (SharedKey, Entry) {
        let key = Key::new("GET", [KeyPart::Text(k.into())]);
        let e = Entry::new(key.clone(), Timestamp::from_millis(1), "p")
            .with_tags(Tags::new(tags.iter().copied()).unwrap());
        (key.encode().into(), e)
    }

    #[test]
    fn the_index_follows_replacements_and_removals() {
        let mut t = Entries::default();
        let (a, ea) = entry("a", &["x", "y"]);
        let (b, eb) = entry("b", &["x"]);
        let held_a = t.insert(a.to_string(), ea);
        t.insert(b.to_string(), eb);
        assert_eq!(t.keys_tagged("x").len(), 2);
        let (_, ea2) = entry("a", &["z"]);
        // A replace keeps the key already held.
        assert!(Arc::ptr_eq(&t.insert(a.to_string(), ea2), &held_a));
        assert_eq!(t.keys_tagged("x"), vec![b.clone()]);
        assert!(t.keys_tagged("y").is_empty());
        assert_eq!(t.keys_tagged("z"), vec![a.clone()]);
        t.remove(&b);
        t.retain(|_, _| false);
        assert!(t.by_tag.is_empty(), "no empty sets are left behind");
    }
}
