//! SQL identifiers: which table holds a repository, which column a key
//! field, and how both are quoted.
//!
//! A table is named `<cache>:<repository>`; `:` never occurs in a
//! [`Name`], so two (cache, repository) pairs never share a table. SQLite
//! compares identifiers without regard to ASCII case while names are
//! case-sensitive, so an upper-case letter is written `^` + the lower-case
//! letter (`Tracks` → `^tracks`), which is injective because `^` never
//! occurs in a name either.

use respcache_core::{Field, Name};

/// `ident` as a quoted SQL identifier (`"` doubled inside).
pub(crate) fn quote(ident: &str) -> String {
    let mut out = String::with_capacity(ident.len() + 2);
    out.push('"');
    for c in ident.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A name in a form SQLite's case-insensitive identifiers keep apart.
fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('^');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The inverse of [`encode`]; `None` for text `encode` never makes.
fn decode(text: &str) -> Option<Name> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '^' => match chars.next() {
                Some(l) if l.is_ascii_lowercase() => out.push(l.to_ascii_uppercase()),
                _ => return None,
            },
            c if c.is_ascii_uppercase() => return None,
            c => out.push(c),
        }
    }
    Name::new(out).ok()
}

/// The unquoted name of the table that holds `repository` of `cache`.
pub(crate) fn table_name(cache: &Name, repository: &Name) -> String {
    format!("{}{}", table_prefix(cache), encode(repository.as_str()))
}

/// What every table name of `cache` starts with.
pub(crate) fn table_prefix(cache: &Name) -> String {
    format!("{}:", encode(cache.as_str()))
}

/// The repository a table name of `cache` (starting with `prefix`) holds;
/// `None` for a table respcache did not name.
pub(crate) fn repository_of(prefix: &str, table: &str) -> Option<Name> {
    table.strip_prefix(prefix).and_then(decode)
}

/// The unquoted name of the column that holds key `field`.
pub(crate) fn column_name(field: &Field) -> String {
    format!("f_{}", encode(field.name()))
}

/// The key field a column made by [`column_name`] holds; `None` for any
/// other column name.
pub(crate) fn field_of(column: &str) -> Option<Name> {
    column.strip_prefix("f_").and_then(decode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use respcache_core::FieldKind;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote("a:b"), "\"a:b\"");
        assert_eq!(
            quote("x\"; DROP TABLE y; --"),
            "\"x\"\"; DROP TABLE y; --\""
        );
    }

    #[test]
    fn names_differing_in_case_get_distinct_tables() {
        let cache = name("c");
        let lower = table_name(&cache, &name("tracks"));
        let upper = table_name(&cache, &name("Tracks"));
        assert_eq!(lower, "c:tracks");
        assert_eq!(upper, "c:^tracks");
        assert!(!lower.eq_ignore_ascii_case(&upper));
        assert_eq!(
            table_name(&name("My-Cache"), &name("a_B")),
            "^my-^cache:a_^b"
        );
    }

    #[test]
    fn table_names_decode_back_to_repositories() {
        let cache = name("Weather");
        let prefix = table_prefix(&cache);
        for repo in ["tracks", "Tracks", "artists-v2", "A_B-9"] {
            let table = table_name(&cache, &name(repo));
            assert_eq!(repository_of(&prefix, &table), Some(name(repo)));
        }
        assert_eq!(repository_of(&prefix, "other:tracks"), None);
        assert_eq!(repository_of(&prefix, "^weather:Tracks"), None);
        assert_eq!(repository_of(&prefix, "^weather:a:b"), None);
        assert_eq!(repository_of(&prefix, "^weather:"), None);
    }

    #[test]
    fn columns_are_prefixed_and_case_safe() {
        let id = Field::new("id", FieldKind::Text).unwrap();
        let upper = Field::new("ID", FieldKind::Text).unwrap();
        assert_eq!(column_name(&id), "f_id");
        assert_eq!(column_name(&upper), "f_^i^d");
        assert_eq!(field_of("f_^i^d"), Some(name("ID")));
        assert_eq!(field_of("f_id"), Some(name("id")));
        assert_eq!(field_of("method"), None);
        assert_eq!(field_of("f_ID"), None);
    }
}
