//! The tag index of one table: its tags column, an index table and the
//! triggers that keep the two in step.
//!
//! An entry's tags are a column `tags` of its row (a JSON array, `NULL`
//! when it has none). The table `"<table>:tags"` holds one row per (tag,
//! key) with the primary key `(tag, method, f_…)`, so a purge finds its
//! keys by one index range; its name contains a second `:`, which no
//! repository name can, so it is never taken for a store. Three triggers
//! write it in the statement that changes the entry, hence in the same
//! transaction, whatever the path — `put`, `put_many`, `delete`, `clear`,
//! the budget's trim, a user's own SQL:
//!
//! - after an insert, the new row's tags are indexed;
//! - after an update of `tags` (an upsert replacing an entry), the old
//!   row's index rows are removed and the new ones written;
//! - after a delete, the row's index rows are removed.
//!
//! Index rows name keys, not rowids, so a `VACUUM` (which may renumber
//! rowids) cannot point them at the wrong entry; and a purge deletes a row
//! only if its own `tags` still contain the tag.

use respcache_core::{Error, ErrorKind, Tags};

use crate::naming::quote;

/// The DDL that adds the index to table `name` (unquoted), whose key
/// columns are `keys` (unquoted, method first). Idempotent; run it after
/// the `tags` column exists.
pub(crate) fn create_sql(name: &str, keys: &[String]) -> String {
    let t = quote(name);
    let tt = quote(&index_table(name));
    let key_list = quoted_list(keys, "");
    let new_keys = quoted_list(keys, "new.");
    let old_match: Vec<String> = keys
        .iter()
        .map(|k| format!("{} = old.{}", quote(k), quote(k)))
        .collect();
    let old_match = old_match.join(" AND ");
    let key_defs: String = keys
        .iter()
        .map(|k| format!("{} NOT NULL, ", quote(k)))
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {tt} (tag TEXT NOT NULL, {key_defs}\
         PRIMARY KEY (tag, {key_list})) WITHOUT ROWID;\n\
         CREATE INDEX IF NOT EXISTS {by_key} ON {tt} ({key_list});\n\
         CREATE TRIGGER IF NOT EXISTS {ins} AFTER INSERT ON {t} WHEN new.tags IS NOT NULL BEGIN \
           INSERT OR IGNORE INTO {tt} (tag, {key_list}) SELECT value, {new_keys} FROM json_each(new.tags); \
         END;\n\
         CREATE TRIGGER IF NOT EXISTS {upd} AFTER UPDATE OF tags ON {t} \
           WHEN old.tags IS NOT NULL OR new.tags IS NOT NULL BEGIN \
           DELETE FROM {tt} WHERE {old_match}; \
           INSERT OR IGNORE INTO {tt} (tag, {key_list}) SELECT value, {new_keys} FROM json_each(new.tags); \
         END;\n\
         CREATE TRIGGER IF NOT EXISTS {del} AFTER DELETE ON {t} WHEN old.tags IS NOT NULL BEGIN \
           DELETE FROM {tt} WHERE {old_match}; \
         END;",
        by_key = quote(&format!("{name}:tags:key")),
        ins = quote(&format!("{name}:tags:insert")),
        upd = quote(&format!("{name}:tags:update")),
        del = quote(&format!("{name}:tags:delete")),
    )
}

/// `ALTER TABLE` adding the `tags` column to a table made before tags.
pub(crate) fn add_column_sql(name: &str) -> String {
    format!("ALTER TABLE {} ADD COLUMN tags TEXT", quote(name))
}

/// `DROP TABLE` of the index (the triggers go with their table).
pub(crate) fn drop_sql(name: &str) -> String {
    format!("DROP TABLE IF EXISTS {}", quote(&index_table(name)))
}

/// The purge: deletes the rows the index lists under `?1` whose own tags
/// still contain it.
pub(crate) fn purge_sql(name: &str, keys: &[String]) -> String {
    let key_list = quoted_list(keys, "");
    format!(
        "DELETE FROM {t} WHERE ({key_list}) IN (SELECT {key_list} FROM {tt} WHERE tag = ?1) \
         AND EXISTS (SELECT 1 FROM json_each({t}.tags) WHERE value = ?1)",
        t = quote(name),
        tt = quote(&index_table(name)),
    )
}

/// The index table of table `name`: `<name>:tags`.
fn index_table(name: &str) -> String {
    format!("{name}:tags")
}

fn quoted_list(keys: &[String], prefix: &str) -> String {
    let list: Vec<String> = keys
        .iter()
        .map(|k| format!("{prefix}{}", quote(k)))
        .collect();
    list.join(", ")
}

/// The `tags` column's value: `NULL` for none, else a JSON array.
pub(crate) fn encode(tags: &Tags) -> Option<String> {
    if tags.is_empty() {
        return None;
    }
    serde_json::to_string(tags.as_slice()).ok()
}

/// The tags of a `tags` column value.
pub(crate) fn decode(column: Option<&str>) -> respcache_core::Result<Tags> {
    let Some(text) = column else {
        return Ok(Tags::none());
    };
    let list: Vec<String> = serde_json::from_str(text).map_err(|e| {
        Error::new(
            ErrorKind::Codec,
            format!("the tags column is not a JSON array of text: {e}"),
        )
    })?;
    Tags::new(list)
}
