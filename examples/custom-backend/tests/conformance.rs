//! The custom backend passes the same suite as the built-in ones.

use std::sync::OnceLock;

use respcache_example_custom_backend::{BlobBackend, BlobService};

/// One service for the whole run, so a reconnected handle sees earlier data.
fn service() -> BlobService {
    static SERVICE: OnceLock<BlobService> = OnceLock::new();
    SERVICE.get_or_init(BlobService::default).clone()
}

respcache_conformance::main!(
    respcache_conformance::Factory::new("custom-blob", || async {
        Ok(BlobBackend::with_service(service()))
    })
    .persistent()
);
