//! Collection names: the repository name itself on MongoDB; an escaped form
//! on the nx-27017 emulator, whose collections are SQLite tables: names
//! must match `[A-Za-z_][A-Za-z0-9_]*` (no `-`, no leading digit) and must
//! not be SQL keywords (a collection named `update` or `order` fails).
//!
//! On the emulator every name becomes `x_` followed by the name with `_`
//! written `_u` and `-` written `_h` (`tracks` → `x_tracks`, `artists-v2` →
//! `x_artists_hv2`, `my_repo` → `x_my_urepo`): injective, reversible, and
//! never a keyword.

use respcache_core::Name;

/// The collection that holds `repository`.
pub(crate) fn collection_name(repository: &Name, emulator: bool) -> String {
    let name = repository.as_str();
    if !emulator {
        return name.to_owned();
    }
    let mut out = String::with_capacity(name.len() + 8);
    out.push_str("x_");
    for c in name.chars() {
        match c {
            '_' => out.push_str("_u"),
            '-' => out.push_str("_h"),
            c => out.push(c),
        }
    }
    out
}

/// The repository a collection holds, or `None` for a collection that is
/// not a respcache store.
pub(crate) fn repository_name(collection: &str, emulator: bool) -> Option<Name> {
    if !emulator {
        return Name::new(collection).ok();
    }
    let escaped = collection.strip_prefix("x_")?;
    let mut out = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        match c {
            '_' => match chars.next() {
                Some('u') => out.push('_'),
                Some('h') => out.push('-'),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    Name::new(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_names_are_escaped_reversibly() -> respcache_core::Result<()> {
        for (repo, coll) in [
            ("tracks", "x_tracks"),
            ("update", "x_update"),
            ("artists-v2", "x_artists_hv2"),
            ("my_repo", "x_my_urepo"),
            ("2024", "x_2024"),
            ("x_u", "x_x_uu"),
            ("a-_b", "x_a_h_ub"),
        ] {
            let name = Name::new(repo)?;
            assert_eq!(collection_name(&name, true), coll);
            assert_eq!(repository_name(coll, true), Some(name.clone()));
            assert_eq!(collection_name(&name, false), repo);
            assert_eq!(repository_name(repo, false), Some(name));
        }
        assert_eq!(repository_name("x_bad_q", true), None);
        assert_eq!(repository_name("other_table", true), None);
        assert_eq!(repository_name("tracks", true), None);
        assert_eq!(repository_name("system.views", false), None);
        Ok(())
    }
}
