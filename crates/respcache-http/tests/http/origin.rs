//! The local origin on 127.0.0.1 is the test kit's
//! (`respcache_conformance::origin`). These tests start it with
//! `Origin::without_date`: the clients under test run on a manual clock,
//! against which the real time would be a skewed origin clock (RFC 9111
//! §4.2.3 counts it in the age). Tests that need a `Date` set it.

pub(crate) use respcache_conformance::origin::{Origin, Reply, Seen, http_date, resetting_origin};
