//! MongoDB backend for respcache.
