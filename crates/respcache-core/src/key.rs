//! Cache keys: an ordered tuple of typed parts (the HTTP method first), the
//! [`KeySchema`] that declares the fields, a canonical injective encoding and
//! a fixed-size digest.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::error::{Error, ErrorKind, Result};
use crate::name::Name;

/// The type of one key field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// UTF-8 text.
    Text,
    /// A signed 64-bit integer.
    Integer,
}

/// One named, typed key field.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Field {
    name: Name,
    kind: FieldKind,
}

impl Field {
    /// A field named `name` (validated like every [`Name`]) of type `kind`.
    pub fn new(name: &str, kind: FieldKind) -> Result<Self> {
        Ok(Field {
            name: Name::new(name)?,
            kind,
        })
    }

    /// The field's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The field's type.
    pub fn kind(&self) -> FieldKind {
        self.kind
    }
}

/// The fields that form a repository's key, in order, after the method.
///
/// Backends with typed storage (SQLite) make one typed column per field.
///
/// ```
/// use respcache_core::{FieldKind, KeySchema};
/// let schema = KeySchema::new([("id", FieldKind::Text), ("version", FieldKind::Integer)])?;
/// assert_eq!(schema.fields().len(), 2);
/// # Ok::<(), respcache_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct KeySchema {
    fields: Vec<Field>,
}

impl KeySchema {
    /// A schema of the given `(name, kind)` fields. Names must be valid and
    /// distinct.
    pub fn new<'a>(fields: impl IntoIterator<Item = (&'a str, FieldKind)>) -> Result<Self> {
        let mut out: Vec<Field> = Vec::new();
        for (name, kind) in fields {
            if out.iter().any(|f| f.name() == name) {
                return Err(Error::new(
                    ErrorKind::InvalidName,
                    format!("key field {name:?} is declared twice"),
                ));
            }
            out.push(Field::new(name, kind)?);
        }
        Ok(KeySchema { fields: out })
    }

    /// The fields, in key order (the method is not one of them).
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Checks that `key` has a method and one part of the right type per field.
    pub fn validate(&self, key: &Key) -> Result<()> {
        let parts = key.fields();
        if parts.len() != self.fields.len() {
            return Err(Error::new(
                ErrorKind::InvalidKey,
                format!(
                    "key {key} has {} field(s), the schema declares {}",
                    parts.len(),
                    self.fields.len()
                ),
            ));
        }
        for (part, field) in parts.iter().zip(&self.fields) {
            if part.kind() != field.kind {
                return Err(Error::new(
                    ErrorKind::InvalidKey,
                    format!(
                        "key {key}: field {:?} must be {:?}, got {:?}",
                        field.name(),
                        field.kind,
                        part.kind()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// One typed part of a key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyPart {
    /// A text part.
    Text(String),
    /// An integer part.
    Int(i64),
}

impl KeyPart {
    /// The part's type.
    pub fn kind(&self) -> FieldKind {
        match self {
            KeyPart::Text(_) => FieldKind::Text,
            KeyPart::Int(_) => FieldKind::Integer,
        }
    }

    /// The text, if this is a text part.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            KeyPart::Text(s) => Some(s),
            KeyPart::Int(_) => None,
        }
    }

    /// The integer, if this is an integer part.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            KeyPart::Int(i) => Some(*i),
            KeyPart::Text(_) => None,
        }
    }
}

impl From<&str> for KeyPart {
    fn from(s: &str) -> Self {
        KeyPart::Text(s.to_owned())
    }
}

impl From<String> for KeyPart {
    fn from(s: String) -> Self {
        KeyPart::Text(s)
    }
}

impl From<i64> for KeyPart {
    fn from(i: i64) -> Self {
        KeyPart::Int(i)
    }
}

/// A cache key: the HTTP method, then one typed part per schema field.
///
/// Its [`encode`](Key::encode)d form is canonical and injective: two
/// different keys never share an encoding. Text parts are length-prefixed
/// (`<byte length>:<text>`), integers are `#<decimal>`, parts are joined by
/// `|`. The encoding is valid UTF-8, so every backend can store it as text.
///
/// ```
/// use respcache_core::Key;
/// let key = Key::new("GET", ["abc".into(), 2i64.into()]);
/// assert_eq!(key.encode(), "3:GET|3:abc|#2");
/// assert_eq!(Key::decode(&key.encode())?, key);
/// # Ok::<(), respcache_core::Error>(())
/// ```
///
/// Cloning a key is cheap (its parts are shared, not copied): entries, the
/// memory backend's index and a request's lookup all hold the same key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(Arc<KeyParts>);

/// What a [`Key`] holds: one allocation for the common key (a standard
/// method, at most two parts) besides its text parts.
#[derive(PartialEq, Eq, Hash, PartialOrd, Ord)]
struct KeyParts {
    method: Cow<'static, str>,
    fields: SmallVec<[KeyPart; 2]>,
}

/// The methods a key names without a copy of their own.
const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "QUERY", "TRACE",
];

impl Key {
    /// A key for `method` (e.g. `"GET"`) and the field parts in schema order.
    pub fn new(method: impl AsRef<str>, fields: impl IntoIterator<Item = KeyPart>) -> Self {
        let method = method.as_ref();
        let method = match STANDARD_METHODS.iter().find(|m| **m == method) {
            Some(standard) => Cow::Borrowed(*standard),
            None => Cow::Owned(method.to_owned()),
        };
        Key(Arc::new(KeyParts {
            method,
            fields: fields.into_iter().collect(),
        }))
    }

    /// The HTTP method part.
    pub fn method(&self) -> &str {
        &self.0.method
    }

    /// The parts after the method, in schema order.
    pub fn fields(&self) -> &[KeyPart] {
        &self.0.fields
    }

    /// The canonical, injective text encoding.
    pub fn encode(&self) -> String {
        let fields = self.fields();
        // Sized once: each text with its length prefix (`NN:`) and `|`; an
        // integer takes at most 21 characters and its `#`.
        let text = |t: &str| t.len() + 2 + (t.len().checked_ilog10().unwrap_or(0) as usize + 1);
        let size = text(self.method())
            + fields
                .iter()
                .map(|part| match part {
                    KeyPart::Text(s) => 1 + text(s),
                    KeyPart::Int(_) => 23,
                })
                .sum::<usize>();
        let mut out = String::with_capacity(size);
        encode_text(&mut out, self.method());
        for part in fields {
            out.push('|');
            match part {
                KeyPart::Text(s) => encode_text(&mut out, s),
                KeyPart::Int(i) => {
                    out.push('#');
                    out.push_str(itoa::Buffer::new().format(*i));
                }
            }
        }
        out
    }

    /// Parses an encoding made by [`encode`](Key::encode). Never panics:
    /// anything else is an [`ErrorKind::InvalidKey`] error.
    pub fn decode(encoded: &str) -> Result<Key> {
        let bad = |why: &str| {
            Error::new(
                ErrorKind::InvalidKey,
                format!("cannot decode key {:?}: {why}", truncate(encoded)),
            )
        };
        let mut parts = Vec::new();
        let mut rest = encoded;
        loop {
            let (part, after) = if let Some(digits_and_more) = rest.strip_prefix('#') {
                let end = digits_and_more.find('|').unwrap_or(digits_and_more.len());
                let digits = &digits_and_more[..end];
                if digits.is_empty()
                    || digits.starts_with('+')
                    || (digits.len() > 1 && (digits.starts_with('0') || digits.starts_with("-0")))
                {
                    return Err(bad("integer part is not canonical"));
                }
                let value: i64 = digits.parse().map_err(|_| bad("integer part"))?;
                (KeyPart::Int(value), &digits_and_more[end..])
            } else {
                let colon = rest.find(':').ok_or_else(|| bad("missing ':'"))?;
                let len_text = &rest[..colon];
                if len_text.is_empty()
                    || !len_text.bytes().all(|b| b.is_ascii_digit())
                    || (len_text.len() > 1 && len_text.starts_with('0'))
                {
                    return Err(bad("length prefix"));
                }
                let len: usize = len_text.parse().map_err(|_| bad("length prefix"))?;
                let body_start = colon + 1;
                let body_end = body_start
                    .checked_add(len)
                    .ok_or_else(|| bad("length overflows"))?;
                let text = rest
                    .get(body_start..body_end)
                    .ok_or_else(|| bad("text part is shorter than its length"))?;
                (KeyPart::Text(text.to_owned()), &rest[body_end..])
            };
            parts.push(part);
            if after.is_empty() {
                break;
            }
            rest = after
                .strip_prefix('|')
                .ok_or_else(|| bad("missing '|' between parts"))?;
        }
        let mut parts = parts.into_iter();
        let method = match parts.next() {
            Some(KeyPart::Text(m)) => m,
            _ => return Err(bad("the first part must be the method, as text")),
        };
        Ok(Key::new(method, parts))
    }

    /// A 32-byte BLAKE3 digest of the encoding, for file names and item keys
    /// that must have a fixed size.
    pub fn digest(&self) -> KeyDigest {
        KeyDigest(*blake3::hash(self.encode().as_bytes()).as_bytes())
    }
}

fn encode_text(out: &mut String, text: &str) {
    out.push_str(itoa::Buffer::new().format(text.len()));
    out.push(':');
    out.push_str(text);
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.encode())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.method())?;
        for p in self.fields() {
            match p {
                KeyPart::Text(s) => write!(f, " {s:?}")?,
                KeyPart::Int(i) => write!(f, " {i}")?,
            }
        }
        Ok(())
    }
}

/// A key's 32-byte digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hexadecimal, 64 characters.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(HEX[usize::from(b >> 4)]);
            s.push(HEX[usize::from(b & 0xf)]);
        }
        s
    }
}

const HEX: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f',
];

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn part() -> impl Strategy<Value = KeyPart> {
        prop_oneof![
            any::<String>().prop_map(KeyPart::Text),
            "[|:#0-9]{0,6}".prop_map(KeyPart::Text),
            any::<i64>().prop_map(KeyPart::Int),
        ]
    }

    fn key() -> impl Strategy<Value = Key> {
        let method = prop_oneof![
            any::<String>(),
            "GET|HEAD|POST|PROPFIND|get".prop_map(String::from)
        ];
        (method, proptest::collection::vec(part(), 0..5)).prop_map(|(m, parts)| Key::new(m, parts))
    }

    /// A standard method is named without a copy; any other is kept as
    /// given; either way the key is the same as built from a `String`.
    #[test]
    fn methods_standard_or_not_make_equal_keys() {
        for m in ["GET", "POST", "PROPFIND", "get", ""] {
            let a = Key::new(m, [KeyPart::Text("x".into())]);
            let owned: String = m.into();
            let b = Key::new(owned, vec![KeyPart::Text("x".into())]);
            assert_eq!(a.method(), m);
            assert_eq!(a, b);
            assert_eq!(Key::decode(&a.encode()).ok(), Some(b));
        }
        assert!(Key::new("GET", []) < Key::new("POST", []));
    }

    proptest! {
        #[test]
        fn encoding_round_trips(k in key()) {
            prop_assert_eq!(Key::decode(&k.encode()).ok(), Some(k));
        }

        #[test]
        fn distinct_keys_never_share_an_encoding(a in key(), b in key()) {
            if a != b {
                prop_assert_ne!(a.encode(), b.encode());
            }
        }

        #[test]
        fn decoding_arbitrary_text_never_panics(s in any::<String>()) {
            let _ = Key::decode(&s);
        }

        #[test]
        fn decoding_mutated_encodings_never_panics(k in key(), at in any::<usize>(), c in any::<char>()) {
            let mut chars: Vec<char> = k.encode().chars().collect();
            if !chars.is_empty() {
                let i = at % chars.len();
                chars[i] = c;
            }
            let mutated: String = chars.into_iter().collect();
            if let Ok(decoded) = Key::decode(&mutated) {
                // whatever decodes must be canonical: it re-encodes to the same text
                prop_assert_eq!(decoded.encode(), mutated);
            }
        }
    }

    #[test]
    fn integers_that_look_like_text_do_not_collide() {
        let a = Key::new("GET", [KeyPart::Int(12)]);
        let b = Key::new("GET", [KeyPart::Text("12".into())]);
        let c = Key::new("GET", [KeyPart::Text("#12".into())]);
        assert_ne!(a.encode(), b.encode());
        assert_ne!(b.encode(), c.encode());
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn separators_do_not_collide() {
        let a = Key::new("GET", ["a|b".into()]);
        let b = Key::new("GET", ["a".into(), "b".into()]);
        assert_ne!(a.encode(), b.encode());
    }

    #[test]
    fn schema_validates_kinds_and_counts() -> Result<()> {
        let s = KeySchema::new([("id", FieldKind::Text), ("v", FieldKind::Integer)])?;
        assert!(
            s.validate(&Key::new("GET", ["x".into(), 1i64.into()]))
                .is_ok()
        );
        let wrong = s.validate(&Key::new("GET", ["x".into(), "1".into()]));
        assert_eq!(wrong.err().map(|e| e.kind()), Some(ErrorKind::InvalidKey));
        let short = s.validate(&Key::new("GET", ["x".into()]));
        assert_eq!(short.err().map(|e| e.kind()), Some(ErrorKind::InvalidKey));
        assert!(KeySchema::new([("id", FieldKind::Text), ("id", FieldKind::Text)]).is_err());
        Ok(())
    }

    #[test]
    fn digest_hex_is_64_chars() {
        let d = Key::new("GET", []).digest().to_hex();
        assert_eq!(d.len(), 64);
        assert!(d.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
