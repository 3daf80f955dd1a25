//! How an [`Entry`] is laid out as a MongoDB document, and back.
//!
//! ```text
//! {
//!   _id:        "3:GET|3:abc|#2",                 // Key::encode(), the identity
//!   method:     "GET",
//!   key:        { id: "abc", version: Long(2) },  // the key parts, typed, by field name
//!   name:       "Abbey Road" | null,
//!   cached_at:  Long(1764000000000),              // ms since the epoch
//!   expires_at: Long(1764000060000) | null,       // null = never stale
//!   purge_at:   ISODate("..."),                   // expires_at + retention; absent = never purged
//!   payload:    BinData(0, "..."),
//!   meta:       BinData(0, "...") | null,
//!   tags:       ["album:7", "artist:3"]           // sorted; [] for none (absent in
//!                                                 // documents written before tags)
//! }
//! ```
//!
//! `_id` is the only field read back to rebuild the key; `method` and `key`
//! are there for people and for ad-hoc queries (`db.tracks.find({"key.id": "abc"})`).
//! Times are Int64 milliseconds so they round-trip exactly (`new Date(doc.expires_at)`
//! shows one in the shell); only `purge_at` is a date, because TTL indexes
//! need dates.

use bytes::Bytes;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, DateTime, Document, doc};
use respcache_core::{
    Entry, Error, ErrorKind, Key, KeyPart, KeySchema, Result, Select, Tags, Timestamp,
};

use crate::NAME;

/// Field names.
pub(crate) mod field {
    pub(crate) const ID: &str = "_id";
    pub(crate) const METHOD: &str = "method";
    pub(crate) const KEY: &str = "key";
    pub(crate) const NAME: &str = "name";
    pub(crate) const CACHED_AT: &str = "cached_at";
    pub(crate) const EXPIRES_AT: &str = "expires_at";
    pub(crate) const PURGE_AT: &str = "purge_at";
    pub(crate) const PAYLOAD: &str = "payload";
    pub(crate) const META: &str = "meta";
    pub(crate) const TAGS: &str = "tags";
}

/// MongoDB's largest document (`maxBsonObjectSize`), in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// The largest payload this backend accepts: the document limit less
/// 256 KiB for the key, name, metadata and field overhead. An entry whose
/// whole document would still exceed [`MAX_DOCUMENT_BYTES`] (very large
/// metadata) is refused as well.
pub const MAX_PAYLOAD_BYTES: usize = MAX_DOCUMENT_BYTES - 256 * 1024;

/// Bytes of a document that are not key, name, payload or metadata: field
/// names, type tags, lengths, the integers and the date (about 150 bytes),
/// generously rounded up.
const FIXED_OVERHEAD: usize = 1024;

/// The latest date a Python-based server (the nx-27017 emulator) can hold:
/// 9999-12-31T23:59:59.999Z. Purge dates are clamped into 1970..=9999.
const MAX_DATE_MILLIS: i64 = 253_402_300_799_999;

/// Refuses an entry whose document would exceed MongoDB's limit, before
/// anything is sent.
pub(crate) fn check_size(entry: &Entry) -> Result<()> {
    let payload = entry.payload.len();
    let key = entry.key.encode().len();
    let size = FIXED_OVERHEAD
        + payload
        + entry.meta.as_ref().map_or(0, Bytes::len)
        + entry.name.as_ref().map_or(0, String::len)
        + entry.tags.iter().map(|t| t.len() + 16).sum::<usize>()
        // _id, the key sub-document (the parts' text) and the update filter
        + 3 * key;
    if payload > MAX_PAYLOAD_BYTES || size > MAX_DOCUMENT_BYTES {
        return Err(Error::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "entry {} would be a document of about {size} bytes (payload {payload} bytes); \
                 MongoDB's document limit is {MAX_DOCUMENT_BYTES} bytes and this backend \
                 accepts payloads up to {MAX_PAYLOAD_BYTES} bytes",
                entry.key
            ),
        )
        .with_backend(NAME));
    }
    Ok(())
}

fn binary(bytes: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

/// The key parts as a sub-document named by the schema's fields; a part
/// beyond the schema is named `_<position>` (names never start with `_`).
fn key_document(key: &Key, schema: &KeySchema) -> Document {
    let mut out = Document::new();
    for (i, part) in key.fields().iter().enumerate() {
        let name = schema
            .fields()
            .get(i)
            .map_or_else(|| format!("_{}", i + 1), |f| f.name().to_owned());
        let value = match part {
            KeyPart::Text(s) => Bson::String(s.clone()),
            KeyPart::Int(n) => Bson::Int64(*n),
        };
        out.insert(name, value);
    }
    out
}

/// A purge time as a BSON date, clamped into the range every server stores.
pub(crate) fn purge_date(purge_at: Timestamp) -> DateTime {
    DateTime::from_millis(purge_at.as_millis().clamp(0, MAX_DATE_MILLIS))
}

fn millis_or_null(t: Option<Timestamp>) -> Bson {
    t.map_or(Bson::Null, |t| Bson::Int64(t.as_millis()))
}

/// Every field but `_id` and `purge_at`.
fn fields(entry: &Entry, schema: &KeySchema) -> Document {
    doc! {
        field::METHOD: entry.key.method(),
        field::KEY: key_document(&entry.key, schema),
        field::NAME: entry.name.as_deref().map_or(Bson::Null, |n| Bson::String(n.to_owned())),
        field::CACHED_AT: Bson::Int64(entry.cached_at.as_millis()),
        field::EXPIRES_AT: millis_or_null(entry.expires_at),
        field::PAYLOAD: binary(&entry.payload),
        field::META: entry.meta.as_deref().map_or(Bson::Null, binary),
        field::TAGS: entry.tags.iter().map(|t| Bson::String(t.clone())).collect::<Vec<Bson>>(),
    }
}

/// The whole document, for an insert.
pub(crate) fn full_document(
    entry: &Entry,
    schema: &KeySchema,
    purge_at: Option<Timestamp>,
) -> Document {
    let mut doc = doc! { field::ID: entry.key.encode() };
    doc.extend(fields(entry, schema));
    if let Some(p) = purge_at {
        doc.insert(field::PURGE_AT, purge_date(p));
    }
    doc
}

/// An update that makes any existing document equal to the entry (and
/// creates it when used with upsert).
pub(crate) fn update_document(
    entry: &Entry,
    schema: &KeySchema,
    purge_at: Option<Timestamp>,
) -> Document {
    let mut set = fields(entry, schema);
    match purge_at {
        Some(p) => {
            set.insert(field::PURGE_AT, purge_date(p));
            doc! { "$set": set }
        }
        None => doc! { "$set": set, "$unset": { field::PURGE_AT: "" } },
    }
}

/// The update `set_expiry` sends.
pub(crate) fn expiry_update(
    expires_at: Option<Timestamp>,
    purge_at: Option<Timestamp>,
) -> Document {
    match purge_at {
        Some(p) => doc! { "$set": {
            field::EXPIRES_AT: millis_or_null(expires_at),
            field::PURGE_AT: purge_date(p),
        } },
        None => doc! {
            "$set": { field::EXPIRES_AT: millis_or_null(expires_at) },
            "$unset": { field::PURGE_AT: "" },
        },
    }
}

/// The filter on one key.
pub(crate) fn id_filter(key: &Key) -> Document {
    doc! { field::ID: key.encode() }
}

/// The filter on several keys.
pub(crate) fn ids_filter(keys: &[Key]) -> Document {
    let ids: Vec<Bson> = keys.iter().map(|k| Bson::String(k.encode())).collect();
    doc! { field::ID: { "$in": ids } }
}

/// The server-side filter for `select` at `now`, on the indexed `expires_at`
/// (`null` = never stale).
///
/// Stale is `expires_at <= now`; fresh is its exact complement, written
/// `$nor: [stale]` — it matches `null` and numbers above `now`. (The more
/// obvious `$or: [{expires_at: null}, {expires_at: {$gt: now}}]` means the
/// same on MongoDB, but the nx-27017 emulator drops stored nulls from it.)
pub(crate) fn select_filter(select: Select, now: Timestamp) -> Document {
    let stale = doc! { field::EXPIRES_AT: { "$lte": now.as_millis() } };
    match select {
        Select::All => Document::new(),
        Select::Fresh => doc! { "$nor": [stale] },
        Select::Expired => stale,
    }
}

fn undecodable(why: impl Into<String>) -> Error {
    Error::new(ErrorKind::Codec, why).with_backend(NAME)
}

/// An integer field, tolerant of the width the server chose (a server may
/// return an Int64 that fits in 32 bits as Int32) and of dates.
fn millis(doc: &Document, name: &str) -> Result<Option<Timestamp>> {
    match doc.get(name) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Int64(n)) => Ok(Some(Timestamp::from_millis(*n))),
        Some(Bson::Int32(n)) => Ok(Some(Timestamp::from_millis(i64::from(*n)))),
        Some(Bson::DateTime(d)) => Ok(Some(Timestamp::from_millis(d.timestamp_millis()))),
        Some(other) => Err(undecodable(format!(
            "field {name} is a {:?}, not an integer",
            other.element_type()
        ))),
    }
}

fn bytes(doc: &mut Document, name: &str) -> Result<Option<Bytes>> {
    match doc.remove(name) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Binary(b)) => Ok(Some(Bytes::from(b.bytes))),
        Some(other) => Err(undecodable(format!(
            "field {name} is a {:?}, not binary data",
            other.element_type()
        ))),
    }
}

/// The `_id` of a document, as text.
pub(crate) fn id_of(doc: &Document) -> Option<&str> {
    doc.get_str(field::ID).ok()
}

/// Rebuilds an entry. Any missing or mistyped field is an
/// [`ErrorKind::Codec`] error (the caller treats the entry as a miss).
pub(crate) fn entry_from_document(mut doc: Document) -> Result<Entry> {
    let id = id_of(&doc).ok_or_else(|| undecodable("_id is not a string"))?;
    let key = Key::decode(id)?;
    let cached_at =
        millis(&doc, field::CACHED_AT)?.ok_or_else(|| undecodable("cached_at is missing"))?;
    let expires_at = millis(&doc, field::EXPIRES_AT)?;
    let name = match doc.get(field::NAME) {
        None | Some(Bson::Null) => None,
        Some(Bson::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(undecodable(format!(
                "field name is a {:?}, not a string",
                other.element_type()
            )));
        }
    };
    let payload =
        bytes(&mut doc, field::PAYLOAD)?.ok_or_else(|| undecodable("payload is missing"))?;
    let meta = bytes(&mut doc, field::META)?;
    let tags = tags(&doc)?;
    Ok(Entry {
        key,
        name,
        cached_at,
        expires_at,
        payload,
        meta,
        tags,
    })
}

/// The filter `purge_tag` deletes by: documents whose `tags` array holds
/// `tag` (answered by the multikey index on `tags`).
pub(crate) fn tag_filter(tag: &str) -> Document {
    doc! { field::TAGS: tag }
}

/// The `tags` array; absent (a document written before tags) or `null` is
/// none.
fn tags(doc: &Document) -> Result<Tags> {
    match doc.get(field::TAGS) {
        None | Some(Bson::Null) => Ok(Tags::none()),
        Some(Bson::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Bson::String(s) => out.push(s.clone()),
                    other => {
                        return Err(undecodable(format!(
                            "a tag is a {:?}, not a string",
                            other.element_type()
                        )));
                    }
                }
            }
            Tags::new(out).map_err(|e| undecodable(format!("invalid tags: {e}")))
        }
        Some(other) => Err(undecodable(format!(
            "field tags is a {:?}, not an array",
            other.element_type()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use respcache_core::FieldKind;

    fn schema() -> KeySchema {
        KeySchema::new([("id", FieldKind::Text), ("version", FieldKind::Integer)])
            .unwrap_or_default()
    }

    fn entry() -> Entry {
        Entry::new(
            Key::new("GET", ["abc".into(), 2i64.into()]),
            Timestamp::from_millis(1_000),
            Bytes::from_static(b"payload"),
        )
        .with_name("n")
        .with_meta(Bytes::from_static(b"meta"))
        .with_expires_at(Some(Timestamp::from_millis(5_000)))
    }

    #[test]
    fn documents_round_trip() -> Result<()> {
        let e = entry();
        let doc = full_document(&e, &schema(), Some(Timestamp::from_millis(9_000)));
        assert_eq!(doc.get_str("_id").ok(), Some("3:GET|3:abc|#2"));
        assert_eq!(doc.get_str("method").ok(), Some("GET"));
        assert_eq!(
            doc.get_document("key").ok(),
            Some(&doc! { "id": "abc", "version": 2i64 })
        );
        assert_eq!(
            doc.get_datetime("purge_at").ok(),
            Some(&DateTime::from_millis(9_000))
        );
        assert_eq!(entry_from_document(doc)?, e);
        let bare = Entry::new(
            Key::new("GET", [1i64.into(), "extra".into()]),
            Timestamp::from_millis(-5),
            Bytes::new(),
        );
        let doc = full_document(&bare, &KeySchema::default(), None);
        assert_eq!(
            doc.get_document("key").ok(),
            Some(&doc! { "_1": 1i64, "_2": "extra" })
        );
        assert!(!doc.contains_key("purge_at"));
        assert_eq!(doc.get("expires_at"), Some(&Bson::Null));
        assert_eq!(entry_from_document(doc)?, bare);
        Ok(())
    }

    #[test]
    fn int32_times_are_read_as_millis() -> Result<()> {
        let mut doc = full_document(&entry(), &schema(), None);
        doc.insert("cached_at", Bson::Int32(1_000));
        doc.insert("expires_at", Bson::Int32(5_000));
        assert_eq!(entry_from_document(doc)?, entry());
        Ok(())
    }

    #[test]
    fn broken_documents_are_codec_errors() {
        let mut doc = full_document(&entry(), &schema(), None);
        doc.insert("payload", "text");
        assert_eq!(
            entry_from_document(doc).err().map(|e| e.kind()),
            Some(ErrorKind::Codec)
        );
        let mut doc = full_document(&entry(), &schema(), None);
        doc.insert("_id", "not a key");
        assert!(entry_from_document(doc).is_err());
        let mut doc = full_document(&entry(), &schema(), None);
        doc.remove("cached_at");
        assert!(entry_from_document(doc).is_err());
    }

    #[test]
    fn size_limit_names_size_and_limit() {
        let ok = entry();
        assert!(check_size(&ok).is_ok());
        let max = Entry::new(
            Key::new("GET", []),
            Timestamp::from_millis(0),
            vec![0u8; MAX_PAYLOAD_BYTES],
        );
        assert!(check_size(&max).is_ok());
        let over = Entry::new(
            Key::new("GET", []),
            Timestamp::from_millis(0),
            vec![0u8; MAX_PAYLOAD_BYTES + 1],
        );
        let err = check_size(&over).err();
        assert_eq!(
            err.as_ref().map(Error::kind),
            Some(ErrorKind::PayloadTooLarge)
        );
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains(&(MAX_PAYLOAD_BYTES + 1).to_string()),
            "{text}"
        );
        assert!(text.contains(&MAX_DOCUMENT_BYTES.to_string()), "{text}");
        let huge_meta = max.with_meta(vec![0u8; 300 * 1024]);
        assert_eq!(
            check_size(&huge_meta).err().map(|e| e.kind()),
            Some(ErrorKind::PayloadTooLarge)
        );
    }

    #[test]
    fn purge_dates_are_clamped() {
        assert_eq!(
            purge_date(Timestamp::from_millis(i64::MAX)).timestamp_millis(),
            MAX_DATE_MILLIS
        );
        assert_eq!(purge_date(Timestamp::from_millis(-7)).timestamp_millis(), 0);
    }
}
