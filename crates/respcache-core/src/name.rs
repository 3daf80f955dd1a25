//! Validated names for caches, repositories and key fields.

use std::fmt;

use crate::error::{Error, ErrorKind, Result};

/// The longest name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// A validated name for a cache, a repository or a key field.
///
/// A name is 1 to 64 ASCII letters, digits, `_` or `-`, and starts with a
/// letter or a digit. Every backend can use it as (part of) a table, folder,
/// key prefix, database or collection name; backends still quote it.
///
/// ```
/// use respcache_core::Name;
/// assert!(Name::new("tracks").is_ok());
/// assert!(Name::new("x\"; DROP TABLE y; --").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    /// Validates `name`; an invalid name is an [`ErrorKind::InvalidName`] error
    /// that says which rule it breaks.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        validate(&name)?;
        Ok(Name(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate(name: &str) -> Result<()> {
    let invalid = |why: &str| {
        Err(Error::new(
            ErrorKind::InvalidName,
            format!("{name:?} {why}"),
        ))
    };
    if name.is_empty() {
        return invalid("is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return invalid("is longer than 64 bytes");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return invalid(&format!(
            "contains {c:?}; use ASCII letters, digits, '_' and '-'"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return invalid("must start with a letter or a digit");
    }
    Ok(())
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Name {
    type Error = Error;
    fn try_from(value: &str) -> Result<Self> {
        Name::new(value)
    }
}

impl TryFrom<String> for Name {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Name::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for ok in [
            "a",
            "tracks",
            "Tracks_v2",
            "0day",
            "my-cache",
            &"x".repeat(64),
        ] {
            assert!(Name::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "_x",
            "-x",
            "a b",
            "a:b",
            "a/b",
            "a.b",
            "x\"; DROP TABLE y; --",
            "é",
            &"x".repeat(65),
        ] {
            let e = Name::new(bad).err().map(|e| e.kind());
            assert_eq!(e, Some(ErrorKind::InvalidName), "{bad:?}");
        }
    }
}
