//! Redis backend for respcache.
