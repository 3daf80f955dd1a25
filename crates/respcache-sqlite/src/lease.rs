//! Leases in SQLite: one row per held lease in the table `_respcache_leases`
//! (created on first use; its name starts with `_`, which no cache name can,
//! so it is never listed as a store).
//!
//! Taking a lease is one statement under `BEGIN IMMEDIATE`: an insert that,
//! on a conflict, takes the row over only when its lease has expired. SQLite
//! lets one writer at a time into the file, so two processes racing for a
//! key see one winner; the loser's statement changes no row.

use respcache_core::{Key, LeaseToken, Timestamp};
use rusqlite::{Connection, TransactionBehavior, params};

use crate::table::Table;

/// The table of leases of every store in the database.
const CREATE: &str = "CREATE TABLE IF NOT EXISTS \"_respcache_leases\" (\
     store TEXT NOT NULL, key TEXT NOT NULL, owner TEXT NOT NULL, expires_ms INTEGER NOT NULL, \
     PRIMARY KEY (store, key)) WITHOUT ROWID";

const ACQUIRE: &str = "INSERT INTO \"_respcache_leases\" (store, key, owner, expires_ms) \
     VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (store, key) DO UPDATE SET owner = excluded.owner, expires_ms = excluded.expires_ms \
     WHERE \"_respcache_leases\".expires_ms <= ?5";

const RELEASE: &str = "DELETE FROM \"_respcache_leases\" \
     WHERE store = ?1 AND key = ?2 AND owner = ?3 AND expires_ms > ?4";

/// What an acquire writes: the key, the new token, the expiry, the time
/// now, and whether the table may be missing.
pub(crate) type AcquireArgs = (Key, LeaseToken, Timestamp, Timestamp, bool);

/// Takes the lease unless an unexpired one is held; `true` when taken.
pub(crate) fn acquire(
    table: &Table,
    conn: &mut Connection,
    (key, token, expires, now, create): &AcquireArgs,
) -> rusqlite::Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if *create {
        tx.execute_batch(CREATE)?;
    }
    let changed = tx.prepare_cached(ACQUIRE)?.execute(params![
        table.name(),
        key.encode(),
        token.as_str(),
        expires.as_millis(),
        now.as_millis()
    ])?;
    tx.commit()?;
    Ok(changed == 1)
}

/// Frees the lease if `token` holds it and it has not expired.
pub(crate) fn release(
    table: &Table,
    conn: &mut Connection,
    (key, token, now): &(Key, LeaseToken, Timestamp),
) -> rusqlite::Result<bool> {
    let deleted = match conn.prepare_cached(RELEASE) {
        Ok(mut stmt) => stmt.execute(params![
            table.name(),
            key.encode(),
            token.as_str(),
            now.as_millis()
        ])?,
        // No lease was ever taken in this database.
        Err(e) if e.to_string().contains("no such table") => 0,
        Err(e) => return Err(e),
    };
    Ok(deleted == 1)
}
