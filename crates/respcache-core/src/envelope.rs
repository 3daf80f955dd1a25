//! The versioned binary envelope that byte-oriented backends (filesystem,
//! Redis, a user's key/value store) keep an [`Entry`] in.
//!
//! Layout (all integers big-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `RCE` + format version (`1`, or `2` for an entry with tags) |
//! | 4 | flags: bit 0 expires, bit 1 has name, bit 2 has meta |
//! | 5..8 | reserved, zero |
//! | 8..16 | `cached_at`, ms since epoch (i64) |
//! | 16..24 | `expires_at`, ms since epoch (i64; 0 when bit 0 is clear) |
//! | 24.. | key (u32 length + UTF-8), name (u32 + UTF-8), payload (u64 + bytes), meta (u64 + bytes) |
//! | then, format 2 only | tag count (u32), then each tag (u32 length + UTF-8) |
//!
//! An entry without tags is written in format 1, byte for byte as before
//! tags existed, so older readers still read it; an entry with tags is
//! written in format 2, which an older reader rejects by its magic (a
//! counted miss, never a wrong answer). Both formats decode; a format-1
//! entry has no tags.
//!
//! The fixed [`HEADER_LEN`]-byte header lets a backend judge expiry without
//! reading the payload. Decoding never panics: any malformed, truncated or
//! over-long input is a [`ErrorKind::Codec`] error, which backends turn into
//! a miss (see [`crate::stats`]).

use bytes::Bytes;

use crate::entry::Entry;
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::tags::Tags;
use crate::time::Timestamp;

/// Magic bytes and format version of an entry without tags (format 1).
pub const MAGIC: [u8; 4] = *b"RCE\x01";
/// Magic bytes and format version of an entry with tags (format 2).
pub const MAGIC_TAGGED: [u8; 4] = *b"RCE\x02";
/// Length of the fixed header.
pub const HEADER_LEN: usize = 24;

/// Offset of the flags byte in the header.
pub const FLAGS_OFFSET: usize = 4;
/// Offset of the 8-byte big-endian `expires_at` in the header.
pub const EXPIRES_AT_OFFSET: usize = 16;
/// The flag bit that says the entry expires (`expires_at` is meaningful).
pub const EXPIRES_FLAG: u8 = 1;

const EXPIRES: u8 = EXPIRES_FLAG;
const HAS_NAME: u8 = 2;
const HAS_META: u8 = 4;

/// The fixed header of an encoded entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// When the entry was cached.
    pub cached_at: Timestamp,
    /// When it goes stale.
    pub expires_at: Option<Timestamp>,
}

/// Encodes `entry` into a new buffer.
pub fn encode(entry: &Entry) -> Vec<u8> {
    let key = entry.key.encode();
    let name = entry.name.as_deref().unwrap_or("");
    let meta = entry.meta.as_deref().unwrap_or(&[]);
    let mut out = Vec::with_capacity(
        HEADER_LEN + 4 + key.len() + 4 + name.len() + 16 + entry.payload.len() + meta.len(),
    );
    let tagged = !entry.tags.is_empty();
    out.extend_from_slice(if tagged { &MAGIC_TAGGED } else { &MAGIC });
    let mut flags = 0;
    if entry.expires_at.is_some() {
        flags |= EXPIRES;
    }
    if entry.name.is_some() {
        flags |= HAS_NAME;
    }
    if entry.meta.is_some() {
        flags |= HAS_META;
    }
    out.extend_from_slice(&[flags, 0, 0, 0]);
    out.extend_from_slice(&entry.cached_at.as_millis().to_be_bytes());
    out.extend_from_slice(
        &entry
            .expires_at
            .map_or(0, Timestamp::as_millis)
            .to_be_bytes(),
    );
    put_u32_bytes(&mut out, key.as_bytes());
    put_u32_bytes(&mut out, name.as_bytes());
    out.extend_from_slice(&(entry.payload.len() as u64).to_be_bytes());
    out.extend_from_slice(&entry.payload);
    out.extend_from_slice(&(meta.len() as u64).to_be_bytes());
    out.extend_from_slice(meta);
    if tagged {
        let count = u32::try_from(entry.tags.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for tag in &entry.tags {
            put_u32_bytes(&mut out, tag.as_bytes());
        }
    }
    out
}

fn put_u32_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Keys and names are far below 4 GiB; saturate rather than wrap.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Reads the fixed header from the first [`HEADER_LEN`] bytes.
pub fn decode_header(bytes: &[u8]) -> Result<Header> {
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| bad("shorter than the header"))?;
    if header[..4] != MAGIC && header[..4] != MAGIC_TAGGED {
        return Err(bad("unknown magic or format version"));
    }
    let flags = header[FLAGS_OFFSET];
    let cached_at = Timestamp::from_millis(read_i64(&header[8..16])?);
    let expires = Timestamp::from_millis(read_i64(&header[EXPIRES_AT_OFFSET..HEADER_LEN])?);
    Ok(Header {
        cached_at,
        expires_at: (flags & EXPIRES != 0).then_some(expires),
    })
}

/// Decodes a whole entry. Trailing bytes, truncation and invalid UTF-8 are
/// errors, so a torn write never reads as data.
pub fn decode(bytes: &[u8]) -> Result<Entry> {
    let header = decode_header(bytes)?;
    let flags = bytes[FLAGS_OFFSET];
    let mut rest = &bytes[HEADER_LEN..];
    let key_text = take_u32(&mut rest)?;
    let key = Key::decode(std::str::from_utf8(key_text).map_err(|_| bad("key is not UTF-8"))?)?;
    let name_bytes = take_u32(&mut rest)?;
    let name = std::str::from_utf8(name_bytes).map_err(|_| bad("name is not UTF-8"))?;
    let payload = take_u64(&mut rest)?;
    let meta = take_u64(&mut rest)?;
    let tags = if bytes[..4] == MAGIC_TAGGED {
        decode_tags(&mut rest)?
    } else {
        Tags::none()
    };
    if !rest.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(Entry {
        key,
        name: (flags & HAS_NAME != 0).then(|| name.to_owned()),
        cached_at: header.cached_at,
        expires_at: header.expires_at,
        payload: Bytes::copy_from_slice(payload),
        meta: (flags & HAS_META != 0).then(|| Bytes::copy_from_slice(meta)),
        tags,
    })
}

/// Whether an encoded entry (or its header) is in a format this version
/// reads: the magic of format 1 or 2.
pub fn is_known_format(bytes: &[u8]) -> bool {
    bytes
        .get(..4)
        .is_some_and(|m| m == MAGIC || m == MAGIC_TAGGED)
}

fn decode_tags(rest: &mut &[u8]) -> Result<Tags> {
    let mut count = [0u8; 4];
    count.copy_from_slice(take(rest, 4)?);
    let count = u32::from_be_bytes(count) as usize;
    if count == 0 || count > crate::tags::MAX_TAGS {
        return Err(bad("tag count out of range"));
    }
    let mut tags = Vec::with_capacity(count);
    for _ in 0..count {
        let tag = take_u32(rest)?;
        tags.push(
            std::str::from_utf8(tag)
                .map_err(|_| bad("tag is not UTF-8"))?
                .to_owned(),
        );
    }
    Tags::new(tags).map_err(|_| bad("invalid tag"))
}

fn take<'a>(rest: &mut &'a [u8], len: usize) -> Result<&'a [u8]> {
    if rest.len() < len {
        return Err(bad("truncated"));
    }
    let (head, tail) = rest.split_at(len);
    *rest = tail;
    Ok(head)
}

fn take_u32<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8]> {
    let mut len = [0u8; 4];
    len.copy_from_slice(take(rest, 4)?);
    let len = usize::try_from(u32::from_be_bytes(len)).map_err(|_| bad("length"))?;
    take(rest, len)
}

fn take_u64<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8]> {
    let mut len = [0u8; 8];
    len.copy_from_slice(take(rest, 8)?);
    let len = usize::try_from(u64::from_be_bytes(len)).map_err(|_| bad("length"))?;
    take(rest, len)
}

fn read_i64(bytes: &[u8]) -> Result<i64> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| bad("truncated"))?;
    Ok(i64::from_be_bytes(arr))
}

fn bad(why: &str) -> Error {
    Error::new(
        ErrorKind::Codec,
        format!("undecodable entry envelope: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyPart;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = Entry> {
        (
            any::<String>(),
            proptest::collection::vec(any::<i64>(), 0..3),
            proptest::option::of(any::<String>()),
            any::<i64>(),
            proptest::option::of(any::<i64>()),
            proptest::collection::vec(any::<u8>(), 0..200),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..50)),
            proptest::collection::vec("[a-z:0-9]{1,12}", 0..4),
        )
            .prop_map(|(m, ints, name, c, e, p, meta, tags)| Entry {
                key: Key::new(m, ints.into_iter().map(KeyPart::Int)),
                name,
                cached_at: Timestamp::from_millis(c),
                expires_at: e.map(Timestamp::from_millis),
                payload: p.into(),
                meta: meta.map(Into::into),
                tags: Tags::new(tags).unwrap(),
            })
    }

    /// A format-1 envelope, as every version before tags wrote it, reads
    /// as an untagged entry; an untagged entry is still written in format 1.
    #[test]
    fn format_one_reads_as_untagged() {
        let entry = Entry::new(
            Key::new("GET", [KeyPart::Int(7)]),
            Timestamp::from_millis(5),
            "p",
        )
        .with_name("n")
        .with_meta(vec![1u8, 2]);
        // Written by hand in format 1 (24-byte header, key, name, payload, meta).
        let mut old = Vec::new();
        old.extend_from_slice(b"RCE\x01");
        old.extend_from_slice(&[HAS_NAME | HAS_META, 0, 0, 0]);
        old.extend_from_slice(&5i64.to_be_bytes());
        old.extend_from_slice(&0i64.to_be_bytes());
        let key = entry.key.encode();
        old.extend_from_slice(&(key.len() as u32).to_be_bytes());
        old.extend_from_slice(key.as_bytes());
        old.extend_from_slice(&1u32.to_be_bytes());
        old.extend_from_slice(b"n");
        old.extend_from_slice(&1u64.to_be_bytes());
        old.extend_from_slice(b"p");
        old.extend_from_slice(&2u64.to_be_bytes());
        old.extend_from_slice(&[1, 2]);
        let decoded = decode(&old).unwrap();
        assert_eq!(decoded, entry);
        assert!(decoded.tags.is_empty());
        assert_eq!(encode(&entry), old, "untagged entries stay in format 1");
        let tagged = entry.with_tags(Tags::new(["a", "b"]).unwrap());
        let bytes = encode(&tagged);
        assert_eq!(&bytes[..4], b"RCE\x02");
        assert_eq!(decode(&bytes).unwrap(), tagged);
        assert!(is_known_format(&bytes) && is_known_format(&old));
    }

    proptest! {
        #[test]
        fn round_trips(e in entry()) {
            let bytes = encode(&e);
            prop_assert_eq!(decode(&bytes).ok(), Some(e.clone()));
            let h = decode_header(&bytes).ok();
            prop_assert_eq!(h.map(|h| (h.cached_at, h.expires_at)), Some((e.cached_at, e.expires_at)));
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes);
            let _ = decode_header(&bytes);
        }

        #[test]
        fn mutated_envelopes_never_panic(e in entry(), at in any::<usize>(), v in any::<u8>()) {
            let mut bytes = encode(&e);
            let i = at % bytes.len();
            bytes[i] = v;
            let _ = decode(&bytes);
        }

        #[test]
        fn every_truncation_is_an_error(e in entry(), at in any::<usize>()) {
            let bytes = encode(&e);
            let cut = at % bytes.len();
            prop_assert!(decode(&bytes[..cut]).is_err());
        }
    }
}
