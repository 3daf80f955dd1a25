//! respcache: cache HTTP API responses in SQLite, the filesystem, Redis, MongoDB or DynamoDB.
