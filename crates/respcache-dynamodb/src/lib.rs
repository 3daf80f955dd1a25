//! DynamoDB backend for respcache.
