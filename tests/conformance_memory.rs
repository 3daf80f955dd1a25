//! The conformance suite against the reference in-memory backend.

respcache_conformance::main!(
    respcache_conformance::Factory::new("memory", || async {
        Ok(respcache_core::MemoryBackend::new())
    })
    .with_leases()
);
