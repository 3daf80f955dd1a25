//! HTTP layer for respcache: CachedSession and CachedResponse on hyper.
