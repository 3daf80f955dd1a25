//! Filesystem backend for respcache.
