//! The conformance suite on an in-memory database (not persistent: every
//! connect is a new database).

use respcache_sqlite::{SqliteBackend, SqliteConfig};

respcache_conformance::main!(
    respcache_conformance::Factory::new("sqlite-memory", || async {
        SqliteBackend::memory().await
    })
    .with_budget(|budget| SqliteConfig::memory().with_budget(budget).connect())
    .with_leases()
    .not_persistent()
);
