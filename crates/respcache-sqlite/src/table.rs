//! [`Table`]: one repository's table — its SQL, its DDL, and how its rows
//! become [`Entry`]s.
//!
//! Every method takes a plain `rusqlite::Connection`, so the same code runs
//! inline on a reader connection and on the writer thread.

use bytes::Bytes;
use respcache_core::{
    Entry, Error, ErrorKind, FieldKind, Key, KeyPart, KeySchema, Name, Select, Timestamp, stats,
};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row, Statement, TransactionBehavior};

use crate::NAME;
use crate::error::is_missing_table;
use crate::naming::{column_name, quote, table_name};
use crate::tag_index;
use crate::touched::Touched;
use crate::usage::use_tick;

/// How many rows one page of a scan reads.
pub(crate) const SCAN_PAGE: usize = 256;

/// The fixed columns after the key columns, in `SELECT` order.
const VALUE_COLUMNS: &str = "name, cached_at, expires_at, payload, meta, tags";

/// How many rows read since the last flush of their use times make the
/// next read start a flush (see [`Table::touched`]).
pub(crate) const FLUSH_TOUCHED_AT: usize = 1024;

/// One repository's table and the SQL that reads and writes it.
#[derive(Debug)]
pub(crate) struct Table {
    repository: Name,
    schema: KeySchema,
    name: String,
    sql: Sql,
    /// Rowids read since their `used_at` was last written: a hit costs a
    /// set insert, not a write; [`flush_touched`](Self::flush_touched)
    /// writes them in one transaction before a trim, on close, and once
    /// [`FLUSH_TOUCHED_AT`] have gathered.
    touched: Touched,
}

/// The statements of one table, built once when the store opens; the
/// connections cache them prepared (`prepare_cached`).
#[derive(Debug)]
struct Sql {
    create: String,
    add_used_at: String,
    index_used_at: String,
    add_tags: String,
    tag_index: String,
    drop_tag_index: String,
    purge_tag: String,
    touch: String,
    columns: String,
    get: String,
    contains: String,
    upsert: String,
    delete: String,
    set_expiry: String,
    set_meta: String,
    count: [String; 3],
    clear: [String; 3],
    scan: [String; 3],
}

fn select_index(select: Select) -> usize {
    match select {
        Select::All => 0,
        Select::Fresh => 1,
        Select::Expired => 2,
    }
}

/// The `WHERE` condition of `select`, with `now` bound as `param`, on
/// `column` (`expires_at`, or `+expires_at` to keep SQLite from using the
/// index).
fn filter(select: Select, column: &str, param: &str) -> Option<String> {
    match select {
        Select::All => None,
        Select::Fresh => Some(format!("({column} IS NULL OR {column} > {param})")),
        Select::Expired => Some(format!("({column} IS NOT NULL AND {column} <= {param})")),
    }
}

fn sql_type(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Text => "TEXT",
        FieldKind::Integer => "INTEGER",
    }
}

/// The key columns, method first, as `(unquoted name, type)`.
fn key_columns(schema: &KeySchema) -> Vec<(String, &'static str)> {
    let mut out = vec![("method".to_owned(), "TEXT")];
    out.extend(
        schema
            .fields()
            .iter()
            .map(|f| (column_name(f), sql_type(f.kind()))),
    );
    out
}

fn describe(columns: &[(String, String)]) -> String {
    let parts: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
    format!("({})", parts.join(", "))
}

impl Table {
    /// The table of `repository` in `cache`, keyed by `schema`.
    pub(crate) fn new(cache: &Name, repository: &Name, schema: &KeySchema) -> Self {
        let name = table_name(cache, repository);
        let t = quote(&name);
        let keys = key_columns(schema);
        let key_names: Vec<String> = keys.iter().map(|(n, _)| n.clone()).collect();
        let key_list: Vec<String> = keys.iter().map(|(n, _)| quote(n)).collect();
        let key_list = key_list.join(", ");
        let key_where: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, (n, _))| format!("{} = ?{}", quote(n), i + 1))
            .collect();
        let key_where = key_where.join(" AND ");
        let after_key = keys.len() + 1;
        let key_defs: String = keys
            .iter()
            .map(|(n, ty)| format!("{} {ty} NOT NULL, ", quote(n)))
            .collect();
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {t} ({key_defs}name TEXT, cached_at INTEGER NOT NULL, \
             expires_at INTEGER, payload BLOB NOT NULL, meta BLOB, \
             used_at INTEGER NOT NULL DEFAULT 0, tags TEXT, PRIMARY KEY ({key_list}));\n\
             CREATE INDEX IF NOT EXISTS {} ON {t} (expires_at);",
            quote(&format!("{name}:expires_at"))
        );
        let placeholders: Vec<String> = (1..=keys.len() + 7).map(|i| format!("?{i}")).collect();
        let upsert = format!(
            "INSERT INTO {t} ({key_list}, name, cached_at, expires_at, payload, meta, used_at, tags) \
             VALUES ({}) \
             ON CONFLICT ({key_list}) \
             DO UPDATE SET name = excluded.name, cached_at = excluded.cached_at, \
             expires_at = excluded.expires_at, payload = excluded.payload, meta = excluded.meta, \
             tags = excluded.tags, used_at = excluded.used_at",
            placeholders.join(", ")
        );
        let fresh =
            filter(Select::Fresh, "expires_at", &format!("?{after_key}")).unwrap_or_default();
        let count = [Select::All, Select::Fresh, Select::Expired].map(|s| {
            match filter(s, "expires_at", "?1") {
                None => format!("SELECT count(*) FROM {t}"),
                Some(f) => format!("SELECT count(*) FROM {t} WHERE {f}"),
            }
        });
        let clear = [Select::All, Select::Fresh, Select::Expired].map(|s| {
            match filter(s, "expires_at", "?1") {
                None => format!("DELETE FROM {t}"),
                Some(f) => format!("DELETE FROM {t} WHERE {f}"),
            }
        });
        // A page walks the table in rowid order: were SQLite to pick the
        // expires_at index, every page would sort all remaining matches.
        let scan = [Select::All, Select::Fresh, Select::Expired].map(|s| {
            let f = filter(s, "+expires_at", "?2")
                .map(|f| format!(" AND {f}"))
                .unwrap_or_default();
            format!(
                "SELECT rowid, {key_list}, {VALUE_COLUMNS} FROM {t} WHERE rowid > ?1{f} \
                 ORDER BY rowid LIMIT {SCAN_PAGE}"
            )
        });
        let sql = Sql {
            create,
            add_used_at: format!("ALTER TABLE {t} ADD COLUMN used_at INTEGER NOT NULL DEFAULT 0"),
            index_used_at: format!(
                "CREATE INDEX IF NOT EXISTS {} ON {t} (used_at)",
                quote(&format!("{name}:used_at"))
            ),
            add_tags: tag_index::add_column_sql(&name),
            tag_index: tag_index::create_sql(&name, &key_names),
            drop_tag_index: tag_index::drop_sql(&name),
            purge_tag: tag_index::purge_sql(&name, &key_names),
            touch: format!("UPDATE {t} SET used_at = ?1 WHERE rowid = ?2"),
            columns: "SELECT name, type, pk FROM pragma_table_info(?1) ORDER BY cid".to_owned(),
            get: format!("SELECT {VALUE_COLUMNS}, rowid FROM {t} WHERE {key_where}"),
            contains: format!("SELECT 1 FROM {t} WHERE {key_where} AND {fresh}"),
            upsert,
            delete: format!("DELETE FROM {t} WHERE {key_where}"),
            set_expiry: format!("UPDATE {t} SET expires_at = ?{after_key} WHERE {key_where}"),
            set_meta: format!(
                "UPDATE {t} SET expires_at = ?{after_key}, meta = ?{} WHERE {key_where}",
                after_key + 1
            ),
            count,
            clear,
            scan,
        };
        Table {
            repository: repository.clone(),
            schema: schema.clone(),
            name,
            sql,
            touched: Touched::default(),
        }
    }

    /// The unquoted table name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether `key` fits the table's key columns; a key that does not can
    /// never have been stored.
    pub(crate) fn fits(&self, key: &Key) -> bool {
        self.schema.validate(key).is_ok()
    }

    /// The key-schema check of `put`: an [`ErrorKind::InvalidKey`] error.
    pub(crate) fn check_key(&self, key: &Key) -> respcache_core::Result<()> {
        self.schema.validate(key).map_err(|e| e.with_backend(NAME))
    }

    // ------------------------------------------------------------ DDL

    /// Creates the table and its index if missing (in one write
    /// transaction), then checks that an existing table has this key schema.
    pub(crate) fn create(&self, conn: &mut Connection) -> respcache_core::Result<()> {
        let sqlite = crate::error::map_sqlite_error;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        tx.execute_batch(&self.sql.create).map_err(sqlite)?;
        let found = self.columns(&tx).map_err(sqlite)?;
        // Tables made before budgets get the use-time column (a cheap
        // ALTER: SQLite only rewrites the schema).
        if !found.iter().any(|(n, _, _)| n == "used_at") && !found.is_empty() {
            tx.execute_batch(&self.sql.add_used_at).map_err(sqlite)?;
        }
        tx.execute_batch(&self.sql.index_used_at).map_err(sqlite)?;
        // Tables made before tags get the tags column (their rows read as
        // untagged) and, like new ones, the index and its triggers.
        if !found.iter().any(|(n, _, _)| n == "tags") && !found.is_empty() {
            tx.execute_batch(&self.sql.add_tags).map_err(sqlite)?;
        }
        tx.execute_batch(&self.sql.tag_index).map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
        self.verify(&found)
    }

    /// Creates the table again after it was dropped under a live store.
    fn recreate(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(&self.sql.drop_tag_index)?;
        conn.execute_batch(&self.sql.create)?;
        conn.execute_batch(&self.sql.index_used_at)?;
        conn.execute_batch(&self.sql.tag_index)
    }

    /// How many rows were read since their use times were last written.
    pub(crate) fn touched_len(&self) -> usize {
        self.touched.len()
    }

    /// Writes the use time of every row read since the last flush, in one
    /// transaction. Runs on the writer thread.
    pub(crate) fn flush_touched(&self, conn: &mut Connection) -> rusqlite::Result<usize> {
        let rows = self.touched.take();
        if rows.is_empty() {
            return Ok(0);
        }
        let run = |conn: &mut Connection| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let tick = use_tick();
            {
                let mut stmt = tx.prepare_cached(&self.sql.touch)?;
                for rowid in &rows {
                    stmt.execute(rusqlite::params![tick, rowid])?;
                }
            }
            tx.commit()?;
            Ok(rows.len())
        };
        absent_is(run(conn), 0)
    }

    /// `(name, type, pk)` of every column.
    fn columns(&self, conn: &Connection) -> rusqlite::Result<Vec<(String, String, i64)>> {
        let mut stmt = conn.prepare(&self.sql.columns)?;
        let rows = stmt.query_map([&self.name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect()
    }

    fn verify(&self, found: &[(String, String, i64)]) -> respcache_core::Result<()> {
        let mut found_keys: Vec<(i64, String, String)> = found
            .iter()
            .filter(|(_, _, pk)| *pk > 0)
            .map(|(n, t, pk)| (*pk, n.clone(), t.to_ascii_uppercase()))
            .collect();
        found_keys.sort();
        let found_keys: Vec<(String, String)> =
            found_keys.into_iter().map(|(_, n, t)| (n, t)).collect();
        let wanted: Vec<(String, String)> = key_columns(&self.schema)
            .into_iter()
            .map(|(n, t)| (n, t.to_owned()))
            .collect();
        if found_keys != wanted {
            return Err(Error::new(
                ErrorKind::Configuration,
                format!(
                    "table {} has the key columns {}, but repository {:?} declares {}; \
                     drop the store or use another cache name",
                    quote(&self.name),
                    describe(&found_keys),
                    self.repository.as_str(),
                    describe(&wanted),
                ),
            )
            .with_backend(NAME));
        }
        for column in ["name", "cached_at", "expires_at", "payload", "meta"] {
            if !found.iter().any(|(n, _, _)| n == column) {
                return Err(Error::new(
                    ErrorKind::Configuration,
                    format!(
                        "table {} has no column {column}: it was not made by respcache-sqlite",
                        quote(&self.name)
                    ),
                )
                .with_backend(NAME));
            }
        }
        Ok(())
    }

    /// Runs a write; when the table was dropped under this store (here or
    /// by another process), creates it again and runs the write once more.
    fn write<T>(
        &self,
        conn: &mut Connection,
        op: impl Fn(&mut Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        match op(conn) {
            Err(e) if is_missing_table(&e) => {
                self.recreate(conn)?;
                op(conn)
            }
            other => other,
        }
    }

    // ------------------------------------------------------------ reads

    /// The entry under `key`, fresh or stale.
    pub(crate) fn get(&self, conn: &Connection, key: &Key) -> rusqlite::Result<Option<Entry>> {
        absent_is(self.get_inner(conn, key), None)
    }

    fn get_inner(&self, conn: &Connection, key: &Key) -> rusqlite::Result<Option<Entry>> {
        let mut stmt = conn.prepare_cached(&self.sql.get)?;
        bind_key(&mut stmt, key)?;
        let mut rows = stmt.raw_query();
        match rows.next()? {
            None => Ok(None),
            Some(row) => {
                if let Ok(rowid) = row.get::<_, i64>(6) {
                    self.touched.insert(rowid);
                }
                Ok(self.decode_value(key.clone(), row, 0))
            }
        }
    }

    /// The entries under `keys`, one slot per key.
    pub(crate) fn get_many(
        &self,
        conn: &Connection,
        keys: &[Key],
    ) -> rusqlite::Result<Vec<Option<Entry>>> {
        keys.iter()
            .map(|k| {
                if self.fits(k) {
                    self.get(conn, k)
                } else {
                    Ok(None)
                }
            })
            .collect()
    }

    /// Whether a fresh entry is stored under `key` at `now`.
    pub(crate) fn contains(
        &self,
        conn: &Connection,
        key: &Key,
        now: Timestamp,
    ) -> rusqlite::Result<bool> {
        let run = || {
            let mut stmt = conn.prepare_cached(&self.sql.contains)?;
            bind_key(&mut stmt, key)?;
            stmt.raw_bind_parameter(key.fields().len() + 2, now.as_millis())?;
            let mut rows = stmt.raw_query();
            Ok(rows.next()?.is_some())
        };
        absent_is(run(), false)
    }

    /// How many entries `select` matches at `now`.
    pub(crate) fn count(
        &self,
        conn: &Connection,
        select: Select,
        now: Timestamp,
    ) -> rusqlite::Result<u64> {
        let run = || {
            let mut stmt = conn.prepare_cached(&self.sql.count[select_index(select)])?;
            if select != Select::All {
                stmt.raw_bind_parameter(1, now.as_millis())?;
            }
            let mut rows = stmt.raw_query();
            let n: i64 = match rows.next()? {
                Some(row) => row.get(0)?,
                None => 0,
            };
            Ok(u64::try_from(n).unwrap_or(0))
        };
        absent_is(run(), 0)
    }

    /// One page of a scan: the matching entries with a rowid after `after`,
    /// and the rowid to continue after (`None` at the end).
    pub(crate) fn scan_page(
        &self,
        conn: &Connection,
        select: Select,
        now: Timestamp,
        after: i64,
    ) -> rusqlite::Result<(Vec<Entry>, Option<i64>)> {
        let run = || {
            let mut stmt = conn.prepare_cached(&self.sql.scan[select_index(select)])?;
            stmt.raw_bind_parameter(1, after)?;
            if select != Select::All {
                stmt.raw_bind_parameter(2, now.as_millis())?;
            }
            let mut rows = stmt.raw_query();
            let mut entries = Vec::new();
            let mut seen = 0usize;
            let mut last = after;
            while let Some(row) = rows.next()? {
                seen += 1;
                last = row.get(0)?;
                if let Some(key) = self.decode_key(row, 1) {
                    let offset = 1 + 1 + self.schema.fields().len();
                    if let Some(entry) = self.decode_value(key, row, offset) {
                        entries.push(entry);
                    }
                }
            }
            Ok((entries, (seen == SCAN_PAGE).then_some(last)))
        };
        absent_is(run(), (Vec::new(), None))
    }

    // ------------------------------------------------------------ writes

    /// Inserts or replaces `entry` (one statement, its own transaction).
    pub(crate) fn put(&self, conn: &mut Connection, entry: &Entry) -> rusqlite::Result<()> {
        self.write(conn, |c| upsert(c, &self.sql.upsert, entry))
    }

    /// Inserts or replaces `entry` inside the caller's transaction (the
    /// table must exist).
    pub(crate) fn upsert(&self, conn: &Connection, entry: &Entry) -> rusqlite::Result<()> {
        upsert(conn, &self.sql.upsert, entry)
    }

    /// Inserts or replaces `entries` in one write transaction.
    pub(crate) fn put_many(
        &self,
        conn: &mut Connection,
        entries: &[Entry],
    ) -> rusqlite::Result<()> {
        self.write(conn, |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for entry in entries {
                upsert(&tx, &self.sql.upsert, entry)?;
            }
            tx.commit()
        })
    }

    /// Deletes the entry under `key`; whether it existed.
    pub(crate) fn delete(&self, conn: &Connection, key: &Key) -> rusqlite::Result<bool> {
        absent_is(self.delete_one(conn, key).map(|n| n > 0), false)
    }

    fn delete_one(&self, conn: &Connection, key: &Key) -> rusqlite::Result<usize> {
        let mut stmt = conn.prepare_cached(&self.sql.delete)?;
        bind_key(&mut stmt, key)?;
        stmt.raw_execute()
    }

    /// Deletes the entries under `keys` in one write transaction; how many
    /// existed.
    pub(crate) fn delete_many(&self, conn: &mut Connection, keys: &[Key]) -> rusqlite::Result<u64> {
        let mut run = || {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut n = 0u64;
            for key in keys.iter().filter(|k| self.fits(k)) {
                n += self.delete_one(&tx, key)? as u64;
            }
            tx.commit()?;
            Ok(n)
        };
        absent_is(run(), 0)
    }

    /// Removes what `select` matches at `now`; how many rows.
    pub(crate) fn clear(
        &self,
        conn: &Connection,
        select: Select,
        now: Timestamp,
    ) -> rusqlite::Result<u64> {
        let run = || {
            let mut stmt = conn.prepare_cached(&self.sql.clear[select_index(select)])?;
            if select != Select::All {
                stmt.raw_bind_parameter(1, now.as_millis())?;
            }
            Ok(stmt.raw_execute()? as u64)
        };
        absent_is(run(), 0)
    }

    /// Deletes every entry whose tags contain `tag`, found by the tag
    /// index (the delete trigger removes their index rows); how many.
    pub(crate) fn purge_tag(&self, conn: &mut Connection, tag: &str) -> rusqlite::Result<u64> {
        let run = || {
            let mut stmt = conn.prepare_cached(&self.sql.purge_tag)?;
            stmt.raw_bind_parameter(1, tag)?;
            Ok(stmt.raw_execute()? as u64)
        };
        absent_is(run(), 0)
    }

    /// Sets `expires_at` of the entry under `key`; whether it exists.
    pub(crate) fn set_expiry(
        &self,
        conn: &Connection,
        key: &Key,
        expires_at: Option<Timestamp>,
    ) -> rusqlite::Result<bool> {
        let run = || {
            let mut stmt = conn.prepare_cached(&self.sql.set_expiry)?;
            bind_key(&mut stmt, key)?;
            stmt.raw_bind_parameter(key.fields().len() + 2, expires_at.map(Timestamp::as_millis))?;
            Ok(stmt.raw_execute()? > 0)
        };
        absent_is(run(), false)
    }

    /// Sets `meta` and `expires_at` of the entry under `key`, leaving the
    /// payload untouched; whether it exists.
    pub(crate) fn set_meta(
        &self,
        conn: &Connection,
        key: &Key,
        meta: Option<&[u8]>,
        expires_at: Option<Timestamp>,
    ) -> rusqlite::Result<bool> {
        let run = || {
            let mut stmt = conn.prepare_cached(&self.sql.set_meta)?;
            bind_key(&mut stmt, key)?;
            let at = key.fields().len() + 2;
            stmt.raw_bind_parameter(at, expires_at.map(Timestamp::as_millis))?;
            stmt.raw_bind_parameter(at + 1, meta)?;
            Ok(stmt.raw_execute()? > 0)
        };
        absent_is(run(), false)
    }

    // ------------------------------------------------------------ rows

    /// The key from the columns starting at `offset`; `None` (recorded as
    /// undecodable) if a column has the wrong type.
    fn decode_key(&self, row: &Row<'_>, offset: usize) -> Option<Key> {
        let decoded = (|| {
            let method: String = row.get(offset)?;
            let mut parts = Vec::with_capacity(self.schema.fields().len());
            for (i, field) in self.schema.fields().iter().enumerate() {
                let index = offset + 1 + i;
                parts.push(match field.kind() {
                    FieldKind::Text => KeyPart::Text(row.get(index)?),
                    FieldKind::Integer => KeyPart::Int(row.get(index)?),
                });
            }
            Ok::<_, rusqlite::Error>(Key::new(method, parts))
        })();
        decoded.map_err(|e| self.undecodable(&e)).ok()
    }

    /// The entry for `key` from the value columns starting at `offset`;
    /// `None` (recorded as undecodable) if a column has the wrong type.
    fn decode_value(&self, key: Key, row: &Row<'_>, offset: usize) -> Option<Entry> {
        let decoded = (|| {
            Ok::<_, rusqlite::Error>(Entry {
                key,
                name: row.get(offset)?,
                cached_at: Timestamp::from_millis(row.get(offset + 1)?),
                expires_at: row
                    .get::<_, Option<i64>>(offset + 2)?
                    .map(Timestamp::from_millis),
                payload: bytes_of(row, offset + 3)?.ok_or(rusqlite::Error::InvalidColumnType(
                    offset + 3,
                    "payload".to_owned(),
                    rusqlite::types::Type::Null,
                ))?,
                meta: bytes_of(row, offset + 4)?,
                tags: tag_index::decode(row.get::<_, Option<String>>(offset + 5)?.as_deref())
                    .map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            offset + 5,
                            rusqlite::types::Type::Text,
                            Box::new(e),
                        )
                    })?,
            })
        })();
        decoded.map_err(|e| self.undecodable(&e)).ok()
    }

    fn undecodable(&self, error: &rusqlite::Error) {
        let error = Error::new(
            ErrorKind::Codec,
            format!("row of table {}: {error}", self.name),
        )
        .with_backend(NAME);
        stats::record_undecodable(NAME, self.repository.as_str(), &error);
    }
}

/// A missing table reads as an empty one (the store was dropped).
fn absent_is<T>(result: rusqlite::Result<T>, empty: T) -> rusqlite::Result<T> {
    match result {
        Err(e) if is_missing_table(&e) => Ok(empty),
        other => other,
    }
}

/// A BLOB (or TEXT) column as bytes; `None` for NULL.
fn bytes_of(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Bytes>> {
    match row.get_ref(index)? {
        ValueRef::Blob(b) | ValueRef::Text(b) => Ok(Some(Bytes::copy_from_slice(b))),
        ValueRef::Null => Ok(None),
        other => Err(rusqlite::Error::InvalidColumnType(
            index,
            "bytes".to_owned(),
            other.data_type(),
        )),
    }
}

/// Binds the method and key parts to `?1`, `?2`, ...
fn bind_key(stmt: &mut Statement<'_>, key: &Key) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(1, key.method())?;
    for (i, part) in key.fields().iter().enumerate() {
        match part {
            KeyPart::Text(s) => stmt.raw_bind_parameter(i + 2, s.as_str())?,
            KeyPart::Int(n) => stmt.raw_bind_parameter(i + 2, n)?,
        }
    }
    Ok(())
}

fn upsert(conn: &Connection, sql: &str, entry: &Entry) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind_key(&mut stmt, &entry.key)?;
    let at = entry.key.fields().len() + 2;
    stmt.raw_bind_parameter(at, entry.name.as_deref())?;
    stmt.raw_bind_parameter(at + 1, entry.cached_at.as_millis())?;
    stmt.raw_bind_parameter(at + 2, entry.expires_at.map(Timestamp::as_millis))?;
    stmt.raw_bind_parameter(at + 3, entry.payload.as_ref())?;
    stmt.raw_bind_parameter(at + 4, entry.meta.as_deref())?;
    stmt.raw_bind_parameter(at + 5, use_tick())?;
    stmt.raw_bind_parameter(at + 6, tag_index::encode(&entry.tags))?;
    stmt.raw_execute()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_pages_walk_the_rowid_even_when_the_index_looks_better() -> rusqlite::Result<()> {
        let schema = KeySchema::new([("id", FieldKind::Text)]).unwrap_or_default();
        let (cache, repo) = (Name::new("c"), Name::new("r"));
        let (Ok(cache), Ok(repo)) = (cache, repo) else {
            unreachable!()
        };
        let table = Table::new(&cache, &repo, &schema);
        let mut conn = Connection::open_in_memory()?;
        assert!(table.create(&mut conn).is_ok());
        // Mostly stale rows, then statistics: the index now looks selective.
        let entries: Vec<Entry> = (0..2_000)
            .map(|i| {
                let expires = (i % 100 == 0).then_some(Timestamp::from_millis(10_000));
                Entry::new(
                    Key::new("GET", [format!("k{i}").into()]),
                    Timestamp::from_millis(0),
                    "v",
                )
                .with_expires_at(expires.or(Some(Timestamp::from_millis(1))))
            })
            .collect();
        table.put_many(&mut conn, &entries)?;
        conn.execute_batch("ANALYZE")?;
        for sql in &table.sql.scan {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            stmt.raw_bind_parameter(1, 0i64)?;
            if sql.contains("?2") {
                stmt.raw_bind_parameter(2, 5_000i64)?;
            }
            let mut rows = stmt.raw_query();
            let mut plan: Vec<String> = Vec::new();
            while let Some(row) = rows.next()? {
                plan.push(row.get(3)?);
            }
            assert_eq!(
                plan,
                vec!["SEARCH c:r USING INTEGER PRIMARY KEY (rowid>?)"],
                "{sql}"
            );
        }
        // And the scan itself pages through everything it should.
        let mut after = i64::MIN;
        let mut fresh = 0;
        loop {
            let (page, next) =
                table.scan_page(&conn, Select::Fresh, Timestamp::from_millis(5_000), after)?;
            fresh += page.len();
            match next {
                Some(n) => after = n,
                None => break,
            }
        }
        assert_eq!(fresh, 20);
        Ok(())
    }
}
