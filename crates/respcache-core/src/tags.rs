//! [`Tags`]: the labels an [`Entry`](crate::Entry) carries so a whole group
//! of entries can be purged at once ([`Store::purge_tag`](crate::Store::purge_tag)),
//! as CDNs do with `Cache-Tag` / `Surrogate-Key`.
//!
//! A tag is 1 to [`MAX_TAG_BYTES`] bytes of UTF-8 with no control
//! character; an entry carries at most [`MAX_TAGS`] of them. Tags are kept
//! sorted and without repeats, so an entry reads back equal from every
//! backend whatever order its tags were given in. An invalid tag is an
//! [`ErrorKind::InvalidKey`] error, both when building [`Tags`] and when
//! purging: a tag is part of how entries are addressed, like a key.

use std::fmt;

use crate::error::{Error, ErrorKind, Result};

/// The longest tag, in bytes (Fastly's surrogate keys allow 1,024 bytes
/// per header line; 256 leaves room for a tag inside every backend's key
/// and index limits).
pub const MAX_TAG_BYTES: usize = 256;

/// The most tags one entry carries.
pub const MAX_TAGS: usize = 64;

/// An entry's tags: sorted, without repeats, each valid (see the module
/// docs). The default is no tags.
///
/// ```
/// use respcache_core::Tags;
/// let tags = Tags::new(["album:7", "artist:3", "album:7"])?;
/// assert_eq!(tags.as_slice(), ["album:7", "artist:3"]);
/// assert!(tags.contains("artist:3"));
/// assert!(Tags::new([""]).is_err());
/// # Ok::<(), respcache_core::Error>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Tags(Vec<String>);

impl Tags {
    /// No tags.
    pub const fn none() -> Self {
        Tags(Vec::new())
    }

    /// Validated, sorted and deduplicated tags.
    ///
    /// # Errors
    ///
    /// [`InvalidKey`](ErrorKind::InvalidKey) for an empty tag, one longer
    /// than [`MAX_TAG_BYTES`], one with a control character, or more than
    /// [`MAX_TAGS`] distinct tags.
    pub fn new<I>(tags: I) -> Result<Self>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let mut out: Vec<String> = Vec::new();
        for tag in tags {
            let tag = tag.into();
            validate_tag(&tag)?;
            out.push(tag);
            if out.len() > MAX_TAGS * 4 {
                // Bounded work for a hostile input, before deduplication.
                return Err(too_many(out.len()));
            }
        }
        out.sort_unstable();
        out.dedup();
        if out.len() > MAX_TAGS {
            return Err(too_many(out.len()));
        }
        Ok(Tags(out))
    }

    /// The tags, sorted.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Iterates over the tags, sorted.
    pub fn iter(&self) -> std::slice::Iter<'_, String> {
        self.0.iter()
    }

    /// Whether `tag` is one of them.
    pub fn contains(&self, tag: &str) -> bool {
        self.0.binary_search_by(|t| t.as_str().cmp(tag)).is_ok()
    }

    /// How many tags there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tags as an owned vector, sorted.
    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

impl fmt::Debug for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(&self.0).finish()
    }
}

impl<'a> IntoIterator for &'a Tags {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The BLAKE3 digest of `tag`, in lowercase hex (64 digits): a name for
/// the tag wherever its text cannot go (file names, over-long keys).
pub fn digest_hex(tag: &str) -> String {
    blake3::hash(tag.as_bytes()).to_hex().to_string()
}

/// Checks one tag: 1 to [`MAX_TAG_BYTES`] bytes, no control character.
///
/// # Errors
///
/// [`InvalidKey`](ErrorKind::InvalidKey), saying which rule it breaks
/// (the tag itself is not repeated beyond its first 32 characters).
pub fn validate_tag(tag: &str) -> Result<()> {
    if tag.is_empty() {
        return Err(Error::new(ErrorKind::InvalidKey, "a tag cannot be empty"));
    }
    if tag.len() > MAX_TAG_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidKey,
            format!(
                "a tag of {} bytes is longer than {MAX_TAG_BYTES}: {:?}…",
                tag.len(),
                tag.chars().take(32).collect::<String>()
            ),
        ));
    }
    if tag.chars().any(char::is_control) {
        return Err(Error::new(
            ErrorKind::InvalidKey,
            format!(
                "a tag cannot contain control characters: {:?}",
                tag.chars().take(32).collect::<String>()
            ),
        ));
    }
    Ok(())
}

fn too_many(n: usize) -> Error {
    Error::new(
        ErrorKind::InvalidKey,
        format!("an entry carries at most {MAX_TAGS} tags, not {n}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_deduplicated() {
        let tags = Tags::new(["b", "a", "b"]).unwrap();
        assert_eq!(tags.as_slice(), ["a", "b"]);
        assert!(tags.contains("a") && !tags.contains("c"));
        assert_eq!(Tags::new(Vec::<String>::new()).unwrap(), Tags::none());
    }

    #[test]
    fn invalid_tags_are_invalid_keys() {
        for bad in [
            String::new(),
            "a\nb".to_owned(),
            "\u{7f}".to_owned(),
            "x".repeat(MAX_TAG_BYTES + 1),
        ] {
            let e = Tags::new([bad.clone()]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidKey, "{bad:?}");
        }
        assert!(Tags::new(["x".repeat(MAX_TAG_BYTES)]).is_ok());
        assert!(Tags::new(["with space, and ünïcode"]).is_ok());
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| i.to_string()).collect();
        assert_eq!(Tags::new(many).unwrap_err().kind(), ErrorKind::InvalidKey);
        let repeated: Vec<String> = (0..MAX_TAGS * 2).map(|i| (i % 3).to_string()).collect();
        assert_eq!(Tags::new(repeated).unwrap().len(), 3);
    }
}
