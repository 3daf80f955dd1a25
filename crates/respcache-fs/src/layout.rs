//! Where things live on disk: `<root>/<cache>/<repository>/<aa>/<bb>/<digest-hex>`.
//!
//! Every path component below the root is either a validated [`Name`] or
//! lowercase hexadecimal derived from a key's digest, so no path is ever
//! built from user text.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use respcache_core::{Key, Name};

/// Temporary files start with this prefix; it can never be mistaken for an
/// entry (entry names are 64 hex digits).
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// Length of an entry's file name: the hex of a 32-byte digest.
const ENTRY_NAME_LEN: usize = 64;

/// Length of a fan-out folder's name.
const FANOUT_NAME_LEN: usize = 2;

/// The folder of `cache`.
pub(crate) fn cache_dir(root: &Path, cache: &Name) -> PathBuf {
    root.join(cache.as_str())
}

/// The folder of one repository's store.
pub(crate) fn store_dir(root: &Path, cache: &Name, repository: &Name) -> PathBuf {
    cache_dir(root, cache).join(repository.as_str())
}

/// The file that holds `key`'s entry in the store at `store_dir`:
/// `<store_dir>/<aa>/<bb>/<digest-hex>`.
pub(crate) fn entry_path(store_dir: &Path, key: &Key) -> PathBuf {
    let hex = key.digest().to_hex();
    let mut path = store_dir.to_path_buf();
    path.push(&hex[..FANOUT_NAME_LEN]);
    path.push(&hex[FANOUT_NAME_LEN..2 * FANOUT_NAME_LEN]);
    path.push(hex);
    path
}

/// The entry file named `name` (a digest's hex) in the store at
/// `store_dir`: the inverse of [`entry_path`]'s last step.
pub(crate) fn entry_path_of_name(store_dir: &Path, name: &OsStr) -> PathBuf {
    let text = name.to_string_lossy();
    let mut path = store_dir.to_path_buf();
    path.push(text.get(..FANOUT_NAME_LEN).unwrap_or_default());
    path.push(
        text.get(FANOUT_NAME_LEN..2 * FANOUT_NAME_LEN)
            .unwrap_or_default(),
    );
    path.push(name);
    path
}

/// Whether `name` is a fan-out folder's name (two lowercase hex digits).
pub(crate) fn is_fanout_name(name: &OsStr) -> bool {
    is_lower_hex(name, FANOUT_NAME_LEN)
}

/// Whether `name` is an entry's file name (64 lowercase hex digits).
pub(crate) fn is_entry_name(name: &OsStr) -> bool {
    is_lower_hex(name, ENTRY_NAME_LEN)
}

/// Whether `name` is a temporary file's name.
pub(crate) fn is_temp_name(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(TEMP_PREFIX.as_bytes())
}

fn is_lower_hex(name: &OsStr, len: usize) -> bool {
    let bytes = name.as_encoded_bytes();
    bytes.len() == len && bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use respcache_core::KeyPart;

    #[test]
    fn entry_path_fans_out_by_digest() {
        let key = Key::new("GET", [KeyPart::from("../../etc/passwd")]);
        let hex = key.digest().to_hex();
        let path = entry_path(Path::new("/r/c/s"), &key);
        assert_eq!(
            path,
            PathBuf::from(format!("/r/c/s/{}/{}/{hex}", &hex[..2], &hex[2..4]))
        );
        assert!(!path.to_string_lossy().contains("passwd"));
    }

    #[test]
    fn names_are_recognised() {
        assert!(is_fanout_name(OsStr::new("0f")));
        assert!(!is_fanout_name(OsStr::new("0F")));
        assert!(!is_fanout_name(OsStr::new("0fa")));
        assert!(is_entry_name(OsStr::new(&"ab".repeat(32))));
        assert!(!is_entry_name(OsStr::new(&format!(
            ".tmp-{}",
            "a".repeat(59)
        ))));
        assert!(is_temp_name(OsStr::new(".tmp-x1y2")));
        assert!(!is_temp_name(OsStr::new(&"a".repeat(64))));
    }
}
