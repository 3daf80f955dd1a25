//! SQLite backend for respcache (rusqlite + tokio-rusqlite).
