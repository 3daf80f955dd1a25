//! [`stored_schema`]: the key schema of an existing table, read back from
//! its key columns, for tools that open stores they did not define (the
//! `respcache` command).

use respcache_core::{Error, ErrorKind, FieldKind, KeySchema, Result};
use rusqlite::Connection;

use crate::NAME;
use crate::error::map_sqlite_error;
use crate::naming::{field_of, quote};

/// The key schema of `table` (unquoted name): its primary-key columns
/// after `method`, in key order, with their types. `None` if there is no
/// such table; a table respcache-sqlite did not make is a
/// [`Configuration`](ErrorKind::Configuration) error.
pub(crate) fn stored_schema(conn: &Connection, table: &str) -> Result<Option<KeySchema>> {
    let mut stmt = conn
        .prepare_cached("SELECT name, type, pk FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")
        .map_err(map_sqlite_error)?;
    let columns = stmt
        .query_map([table], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<(String, String)>>>())
        .map_err(map_sqlite_error)?;
    let foreign = |why: &str| {
        Error::new(
            ErrorKind::Configuration,
            format!(
                "table {} {why}: it was not made by respcache-sqlite",
                quote(table)
            ),
        )
        .with_backend(NAME)
    };
    let mut columns = columns.into_iter();
    match columns.next() {
        None => return Ok(None),
        Some((name, ty)) if name == "method" && ty.eq_ignore_ascii_case("TEXT") => {}
        Some(_) => return Err(foreign("does not start its key with a method column")),
    }
    let mut fields = Vec::new();
    for (column, ty) in columns {
        let field =
            field_of(&column).ok_or_else(|| foreign(&format!("has the key column {column:?}")))?;
        let kind = if ty.eq_ignore_ascii_case("TEXT") {
            FieldKind::Text
        } else if ty.eq_ignore_ascii_case("INTEGER") {
            FieldKind::Integer
        } else {
            return Err(foreign(&format!(
                "has the key column {column:?} of type {ty}"
            )));
        };
        fields.push((field, kind));
    }
    KeySchema::new(fields.iter().map(|(n, k)| (n.as_str(), *k))).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Table;
    use respcache_core::Name;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    #[test]
    fn reads_back_the_schema_a_table_was_made_with() {
        let mut conn = Connection::open_in_memory().unwrap();
        let schema = KeySchema::new([
            ("version", FieldKind::Text),
            ("Page", FieldKind::Integer),
            ("id", FieldKind::Text),
        ])
        .unwrap();
        let table = Table::new(&name("Shop"), &name("tracks"), &schema);
        table.create(&mut conn).unwrap();
        assert_eq!(stored_schema(&conn, table.name()).unwrap(), Some(schema));

        let empty = Table::new(&name("Shop"), &name("root"), &KeySchema::default());
        empty.create(&mut conn).unwrap();
        assert_eq!(
            stored_schema(&conn, empty.name()).unwrap(),
            Some(KeySchema::default())
        );

        assert_eq!(stored_schema(&conn, "Shop:missing").unwrap(), None);
    }

    #[test]
    fn a_foreign_table_is_a_configuration_error() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE \"c:x\" (id TEXT PRIMARY KEY, v BLOB)")
            .unwrap();
        let e = stored_schema(&conn, "c:x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(
            e.to_string().contains("not made by respcache-sqlite"),
            "{e}"
        );
    }
}
