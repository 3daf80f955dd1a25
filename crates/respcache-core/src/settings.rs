//! [`RepositorySettings`]: how one endpoint family is cached — its name, the
//! key fields, how a request becomes a key, how a payload is named and which
//! codec stores it. [`TemplateSettings`](crate::TemplateSettings)
//! (`template.rs`) is a ready-made implementation from a URL path template.

use crate::codec::Codec;
use crate::key::{Key, KeySchema};
use crate::request::Request;
use crate::time::Expiry;

/// Describes one repository: an endpoint family such as `/v1/tracks/{id}`
/// whose answers are payloads of type `P`.
///
/// Implement it by hand for full control, or use
/// [`TemplateSettings`](crate::TemplateSettings).
pub trait RepositorySettings<P>: Send + Sync + 'static {
    /// The repository's name (validated as a [`Name`](crate::Name) when the cache connects).
    fn name(&self) -> &str;

    /// The key fields after the method.
    fn fields(&self) -> &KeySchema;

    /// The key for `request`, or `None` when the request is not cached
    /// (wrong method, a missing or malformed part).
    fn key(&self, request: &Request) -> Option<Key>;

    /// A human-readable name for a payload (e.g. a track's title).
    fn name_of(&self, _payload: &P) -> Option<String> {
        None
    }

    /// The codec that stores payloads.
    fn codec(&self) -> &dyn Codec<P>;

    /// How long entries stay fresh; `None` uses the cache's default.
    fn expiry(&self) -> Option<Expiry> {
        None
    }
}
