//! How an [`Entry`] is laid out in DynamoDB items.
//!
//! | attribute | type | in | meaning |
//! |---|---|---|---|
//! | `pk` | S | all | partition, shared table: `<cache>#<repository>` (entries), `<cache>#<repository>#parts` (parts), `<cache>` (the store registry); a table per cache: `<repository>`, `<repository>#parts`, `#stores` |
//! | `sk` | S | all | sort key: the encoded key, or `#` + its digest in hex when the encoding is over 1024 bytes |
//! | `key` | S | inline | the full encoded key, only when `sk` is a digest |
//! | `name` | S | inline | the entry's name |
//! | `cached_at` | N | entry | ms since the epoch |
//! | `expires_at` | N | entry | ms since the epoch; absent: never stale |
//! | `payload` | B | inline | the payload |
//! | `meta` | B | inline | the HTTP metadata |
//! | `tags` | SS | entry | the entry's tags; absent when it has none (and in items written before tags) |
//! | `purge_at` | N | entry, part | the TTL attribute: `expires_at + retention`, in epoch **seconds** |
//! | `generation` | S | manifest | the generation whose parts hold the entry |
//! | `parts` | N | manifest | how many parts |
//! | `size` | N | manifest | total bytes of the parts |
//! | `data` | B | part | one chunk of the entry's envelope |
//!
//! An entry whose item would pass the 400 KB item limit is *split*: its
//! [envelope](respcache_core::envelope) is cut into parts of [`PART_BYTES`]
//! stored under the parts partition (never seen by `count` or `scan`), and
//! the entry's own item is a small *manifest* naming the generation.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use respcache_core::{Entry, Error, ErrorKind, Key, Name, Tags, Timestamp};

/// A DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) const PK: &str = "pk";
pub(crate) const SK: &str = "sk";
pub(crate) const KEY: &str = "key";
pub(crate) const NAME: &str = "name";
pub(crate) const CACHED_AT: &str = "cached_at";
pub(crate) const EXPIRES_AT: &str = "expires_at";
pub(crate) const PAYLOAD: &str = "payload";
pub(crate) const META: &str = "meta";
/// The entry's tags, a string set (DynamoDB sets cannot be empty: absent
/// for none). On inline items and manifests, so `purge_tag` filters both.
pub(crate) const TAGS: &str = "tags";
/// The TTL attribute the table's Time to Live is enabled on.
pub(crate) const PURGE_AT: &str = "purge_at";
pub(crate) const GEN: &str = "gen";
pub(crate) const PARTS: &str = "parts";
pub(crate) const SIZE: &str = "size";
pub(crate) const DATA: &str = "data";

/// DynamoDB's largest sort key, in bytes.
const MAX_SORT_KEY: usize = 1024;
/// DynamoDB's item limit (names and values), in bytes.
const ITEM_LIMIT: usize = 400 * 1024;
/// The largest inline item we write; room is left for the size rules'
/// rounding (numbers are counted at their largest).
pub(crate) const INLINE_LIMIT: usize = ITEM_LIMIT - 4 * 1024;
/// Bytes of envelope per part item.
pub(crate) const PART_BYTES: usize = 384 * 1024;
/// The most bytes a number attribute takes (38 digits, sign, exponent).
const NUMBER_BYTES: usize = 21;

/// How caches and repositories map onto partitions. Names never contain
/// `#`, so entries, parts and registry partitions never collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Every cache in one table: partitions are prefixed with the cache.
    Shared,
    /// The table is the cache's own.
    PerCache,
}

impl Layout {
    /// The partition holding a repository's entries.
    pub(crate) fn entries_pk(self, cache: &Name, repository: &Name) -> String {
        match self {
            Layout::Shared => format!("{cache}#{repository}"),
            Layout::PerCache => repository.as_str().to_owned(),
        }
    }

    /// The partition holding a repository's parts of split entries.
    pub(crate) fn parts_pk(self, cache: &Name, repository: &Name) -> String {
        format!("{}#parts", self.entries_pk(cache, repository))
    }

    /// The partition holding a repository's leases.
    pub(crate) fn leases_pk(self, cache: &Name, repository: &Name) -> String {
        format!("{}#leases", self.entries_pk(cache, repository))
    }

    /// The partition listing a cache's stores (one item per repository).
    pub(crate) fn registry_pk(self, cache: &Name) -> String {
        match self {
            Layout::Shared => cache.as_str().to_owned(),
            Layout::PerCache => "#stores".to_owned(),
        }
    }
}

/// A key as it is addressed in the table.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ItemKey {
    /// The sort key.
    pub(crate) sk: String,
    /// The full encoding, when `sk` is its digest.
    pub(crate) long: Option<String>,
}

impl ItemKey {
    pub(crate) fn of(key: &Key) -> Self {
        let encoded = key.encode();
        if encoded.len() <= MAX_SORT_KEY {
            // An encoding starts with a digit (its method's length), so it
            // never collides with a `#` digest.
            ItemKey {
                sk: encoded,
                long: None,
            }
        } else {
            ItemKey {
                sk: format!("#{}", key.digest().to_hex()),
                long: Some(encoded),
            }
        }
    }

    /// The item's primary key in partition `pk`.
    pub(crate) fn primary(&self, pk: &str) -> Item {
        primary(pk, &self.sk)
    }
}

/// A primary key.
pub(crate) fn primary(pk: &str, sk: &str) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk.to_owned())),
        (SK.to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

/// The TTL value for a purge time: epoch seconds, rounded up so DynamoDB
/// never deletes an item before its purge time.
pub(crate) fn purge_seconds(purge_at: Timestamp) -> i64 {
    let ms = purge_at.as_millis();
    let s = ms.div_euclid(1000);
    if ms.rem_euclid(1000) > 0 { s + 1 } else { s }
}

/// The `purge_at` value (epoch seconds) at or below which an item counts as
/// purged at `now`: DynamoDB may delete it any time, so reads skip it.
pub(crate) fn purged_through(now: Timestamp) -> i64 {
    now.as_millis().div_euclid(1000)
}

/// Whether `item` is past its purge time at `now`.
pub(crate) fn is_purged(item: &Item, now: Timestamp) -> bool {
    read_i64(item, PURGE_AT)
        .ok()
        .flatten()
        .is_some_and(|p| p <= purged_through(now))
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The size DynamoDB would count for the inline item of `entry`, at most.
pub(crate) fn inline_size(pk: &str, key: &ItemKey, entry: &Entry) -> usize {
    let mut size = PK.len() + pk.len() + SK.len() + key.sk.len();
    if let Some(long) = &key.long {
        size += KEY.len() + long.len();
    }
    if let Some(name) = &entry.name {
        size += NAME.len() + name.len();
    }
    size += CACHED_AT.len() + NUMBER_BYTES;
    size += EXPIRES_AT.len() + NUMBER_BYTES;
    size += PURGE_AT.len() + NUMBER_BYTES;
    size += PAYLOAD.len() + entry.payload.len();
    if let Some(meta) = &entry.meta {
        size += META.len() + meta.len();
    }
    size += TAGS.len() + entry.tags.iter().map(String::len).sum::<usize>();
    size
}

/// Adds the `tags` set of `entry` to `item`, if it has any.
fn insert_tags(item: &mut Item, entry: &Entry) {
    if !entry.tags.is_empty() {
        item.insert(
            TAGS.to_owned(),
            AttributeValue::Ss(entry.tags.as_slice().to_vec()),
        );
    }
}

/// The inline item of `entry`.
pub(crate) fn inline_item(pk: &str, key: &ItemKey, entry: &Entry, purge: Option<i64>) -> Item {
    let mut item = key.primary(pk);
    if let Some(long) = &key.long {
        item.insert(KEY.to_owned(), s(long.clone()));
    }
    if let Some(name) = &entry.name {
        item.insert(NAME.to_owned(), s(name.clone()));
    }
    item.insert(CACHED_AT.to_owned(), n(entry.cached_at.as_millis()));
    if let Some(e) = entry.expires_at {
        item.insert(EXPIRES_AT.to_owned(), n(e.as_millis()));
    }
    if let Some(p) = purge {
        item.insert(PURGE_AT.to_owned(), n(p));
    }
    item.insert(
        PAYLOAD.to_owned(),
        AttributeValue::B(Blob::new(entry.payload.to_vec())),
    );
    if let Some(meta) = &entry.meta {
        item.insert(META.to_owned(), AttributeValue::B(Blob::new(meta.to_vec())));
    }
    insert_tags(&mut item, entry);
    item
}

/// What a split entry's manifest says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) generation: String,
    pub(crate) parts: u32,
    pub(crate) size: u64,
    pub(crate) expires_at: Option<Timestamp>,
}

/// The manifest item of a split entry.
pub(crate) fn manifest_item(
    pk: &str,
    key: &ItemKey,
    entry: &Entry,
    purge: Option<i64>,
    manifest: &Manifest,
) -> Item {
    let mut item = key.primary(pk);
    item.insert(CACHED_AT.to_owned(), n(entry.cached_at.as_millis()));
    if let Some(e) = entry.expires_at {
        item.insert(EXPIRES_AT.to_owned(), n(e.as_millis()));
    }
    if let Some(p) = purge {
        item.insert(PURGE_AT.to_owned(), n(p));
    }
    insert_tags(&mut item, entry);
    item.insert(GEN.to_owned(), s(manifest.generation.clone()));
    item.insert(PARTS.to_owned(), n(i64::from(manifest.parts)));
    item.insert(
        SIZE.to_owned(),
        n(i64::try_from(manifest.size).unwrap_or(i64::MAX)),
    );
    item
}

/// A stored item, read back.
#[derive(Debug)]
pub(crate) enum Stored {
    /// The whole entry is in the item.
    Inline(Entry),
    /// The entry is split; the parts must be read.
    Split(Manifest),
}

/// Reads an entry item (inline or manifest). A malformed item is a
/// [`ErrorKind::Codec`] error, which callers turn into a miss.
pub(crate) fn decode(item: Item) -> Result<Stored, Error> {
    if item.contains_key(GEN) {
        return manifest_of(&item).map(Stored::Split);
    }
    let mut item = item;
    let key_text = match item.remove(KEY) {
        Some(AttributeValue::S(k)) => k,
        Some(_) => return Err(bad("the key attribute is not a string")),
        None => match item.remove(SK) {
            Some(AttributeValue::S(sk)) => sk,
            _ => return Err(bad("no sort key")),
        },
    };
    let key = Key::decode(&key_text).map_err(|e| bad(&e.to_string()))?;
    let name = match item.remove(NAME) {
        Some(AttributeValue::S(name)) => Some(name),
        Some(_) => return Err(bad("the name attribute is not a string")),
        None => None,
    };
    let cached_at = read_i64(&item, CACHED_AT)?.ok_or_else(|| bad("no cached_at"))?;
    let expires_at = read_i64(&item, EXPIRES_AT)?.map(Timestamp::from_millis);
    let payload = match item.remove(PAYLOAD) {
        Some(AttributeValue::B(b)) => Bytes::from(b.into_inner()),
        _ => return Err(bad("no binary payload")),
    };
    let meta = match item.remove(META) {
        Some(AttributeValue::B(b)) => Some(Bytes::from(b.into_inner())),
        Some(_) => return Err(bad("the meta attribute is not binary")),
        None => None,
    };
    let tags = match item.remove(TAGS) {
        Some(AttributeValue::Ss(tags)) => {
            Tags::new(tags).map_err(|e| bad(&format!("invalid tags: {e}")))?
        }
        Some(_) => return Err(bad("the tags attribute is not a string set")),
        None => Tags::none(),
    };
    Ok(Stored::Inline(Entry {
        key,
        name,
        cached_at: Timestamp::from_millis(cached_at),
        expires_at,
        payload,
        meta,
        tags,
    }))
}

/// The manifest in `item`, if it is one.
pub(crate) fn manifest_of(item: &Item) -> Result<Manifest, Error> {
    let generation = match item.get(GEN) {
        Some(AttributeValue::S(g)) => g.clone(),
        _ => return Err(bad("no generation")),
    };
    let parts = read_i64(item, PARTS)?.ok_or_else(|| bad("no part count"))?;
    let size = read_i64(item, SIZE)?.ok_or_else(|| bad("no size"))?;
    Ok(Manifest {
        generation,
        parts: u32::try_from(parts).map_err(|_| bad("part count out of range"))?,
        size: u64::try_from(size).map_err(|_| bad("size out of range"))?,
        expires_at: read_i64(item, EXPIRES_AT)?.map(Timestamp::from_millis),
    })
}

/// The generation and part count named by `item`, if it is a manifest
/// (only `gen` and `parts` need to have been read).
pub(crate) fn generation_of(item: &Item) -> Option<(String, u32)> {
    let generation = match item.get(GEN) {
        Some(AttributeValue::S(g)) => g.clone(),
        _ => return None,
    };
    let parts = read_i64(item, PARTS).ok().flatten()?;
    Some((generation, u32::try_from(parts).ok()?))
}

/// The sort key of `item`.
pub(crate) fn sort_key_of(item: &Item) -> Option<&str> {
    match item.get(SK) {
        Some(AttributeValue::S(sk)) => Some(sk),
        _ => None,
    }
}

/// A number attribute: `Ok(None)` when absent.
pub(crate) fn read_i64(item: &Item, name: &str) -> Result<Option<i64>, Error> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(text)) => text
            .parse()
            .map(Some)
            .map_err(|_| bad(&format!("{name} is not an integer"))),
        Some(_) => Err(bad(&format!("{name} is not a number"))),
    }
}

fn bad(why: &str) -> Error {
    Error::new(
        ErrorKind::Codec,
        format!("undecodable DynamoDB item: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use respcache_core::KeyPart;

    fn entry(key: Key) -> Entry {
        Entry::new(key, Timestamp::from_millis(1_700_000_000_000), &b"body"[..])
            .with_name("n")
            .with_expires_at(Some(Timestamp::from_millis(1_700_000_060_000)))
            .with_meta(&b"meta"[..])
    }

    #[test]
    fn short_keys_are_their_own_sort_key_and_long_ones_are_digested() {
        let short = Key::new("GET", [KeyPart::from("abc")]);
        assert_eq!(ItemKey::of(&short).sk, short.encode());
        assert_eq!(ItemKey::of(&short).long, None);
        let long = Key::new("GET", [KeyPart::from("x".repeat(2000))]);
        let ik = ItemKey::of(&long);
        assert_eq!(ik.sk.len(), 65);
        assert!(ik.sk.starts_with('#'));
        assert_eq!(ik.long, Some(long.encode()));
    }

    #[test]
    fn inline_items_round_trip() {
        for key in [
            Key::new("GET", [KeyPart::from("abc"), KeyPart::from(7)]),
            Key::new("GET", [KeyPart::from("y".repeat(3000))]),
        ] {
            let e = entry(key.clone());
            let ik = ItemKey::of(&key);
            let item = inline_item("c#r", &ik, &e, Some(5));
            match decode(item).unwrap() {
                Stored::Inline(back) => assert_eq!(back, e),
                Stored::Split(_) => panic!("expected an inline entry"),
            }
        }
    }

    #[test]
    fn manifests_round_trip() {
        let key = Key::new("GET", [KeyPart::from("big")]);
        let e = entry(key.clone());
        let m = Manifest {
            generation: "g1".into(),
            parts: 3,
            size: 1_000_000,
            expires_at: e.expires_at,
        };
        let item = manifest_item("c#r", &ItemKey::of(&key), &e, None, &m);
        let mut projected = primary("c#r", "x");
        projected.insert(GEN.into(), item[GEN].clone());
        projected.insert(PARTS.into(), item[PARTS].clone());
        assert_eq!(generation_of(&projected), Some(("g1".to_owned(), 3)));
        match decode(item).unwrap() {
            Stored::Split(back) => assert_eq!(back, m),
            Stored::Inline(_) => panic!("expected a manifest"),
        }
    }

    #[test]
    fn purge_seconds_round_up() {
        assert_eq!(purge_seconds(Timestamp::from_millis(1_000)), 1);
        assert_eq!(purge_seconds(Timestamp::from_millis(1_001)), 2);
        assert_eq!(purge_seconds(Timestamp::from_millis(-1)), 0);
        let mut item = Item::new();
        item.insert(PURGE_AT.into(), n(2));
        assert!(!is_purged(&item, Timestamp::from_millis(1_999)));
        assert!(is_purged(&item, Timestamp::from_millis(2_000)));
    }

    #[test]
    fn inline_size_is_never_below_what_dynamodb_counts() {
        let key = Key::new("GET", [KeyPart::from("abc")]);
        let e = entry(key.clone());
        let ik = ItemKey::of(&key);
        let item = inline_item("c#r", &ik, &e, Some(1_700_000_000));
        let counted: usize = item
            .iter()
            .map(|(k, v)| {
                k.len()
                    + match v {
                        AttributeValue::S(s) => s.len(),
                        AttributeValue::N(n) => n.len(),
                        AttributeValue::B(b) => b.as_ref().len(),
                        _ => 0,
                    }
            })
            .sum();
        assert!(inline_size("c#r", &ik, &e) >= counted);
    }

    #[test]
    fn malformed_items_are_codec_errors() {
        let mut item = primary("c#r", "3:GET");
        assert_eq!(
            decode(item.clone()).err().map(|e| e.kind()),
            Some(ErrorKind::Codec)
        );
        item.insert(CACHED_AT.into(), s("not a number"));
        item.insert(PAYLOAD.into(), AttributeValue::B(Blob::new(vec![1])));
        assert_eq!(decode(item).err().map(|e| e.kind()), Some(ErrorKind::Codec));
        let mut item = primary("c#r", "not a key");
        item.insert(CACHED_AT.into(), n(1));
        item.insert(PAYLOAD.into(), AttributeValue::B(Blob::new(vec![1])));
        assert_eq!(decode(item).err().map(|e| e.kind()), Some(ErrorKind::Codec));
    }
}
