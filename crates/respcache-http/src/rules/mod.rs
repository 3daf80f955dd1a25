//! The HTTP caching rules of RFC 9111 (with RFC 9110's dates, validators
//! and ranges), one module per concern, each tested with the RFC's own
//! examples. They replace `http-cache-semantics`, which matched directive
//! names case-sensitively (a `Private` answer was stored by a shared
//! cache), stored only a few statuses, parsed `Expires` as RFC 2822 and
//! read `Age: 7200, 0` as 0; ARCHITECTURE.md says why we did not wrap it.
//! `Cache-Control` itself is parsed in [`crate::directives`]; what to do
//! with a stored response for a request is [`crate::freshness`].

pub(crate) mod age;
pub(crate) mod conditional;
pub(crate) mod date;
pub(crate) mod lifetime;
pub(crate) mod range;
pub(crate) mod storable;
pub(crate) mod targeted;
pub(crate) mod vary;
