//! The conformance suite through the core's compression wrapper: every
//! payload of at least one byte is compressed (zstd) when that saves space,
//! so the whole contract holds with compressed bodies too.

use std::sync::Arc;

use respcache_core::MemoryBackend;
use respcache_core::compress::Algorithm;
use respcache_core::economy::{Compression, EconomyBackend, EconomyOptions};

respcache_conformance::main!(
    respcache_conformance::Factory::new("memory-compressed", || async {
        Ok(EconomyBackend::new(
            Arc::new(MemoryBackend::new()),
            EconomyOptions::default()
                .with_compression(Compression::new(Algorithm::Zstd).with_min_size(1)),
        ))
    })
    // The wrapper passes leases through to the backend it wraps.
    .with_leases()
    // Each handle wraps a new, empty memory.
    .not_persistent()
);
