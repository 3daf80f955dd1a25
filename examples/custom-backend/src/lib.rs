//! An example of a user-written respcache backend that passes the conformance suite.
