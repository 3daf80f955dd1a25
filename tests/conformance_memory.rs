//! The conformance suite against the reference in-memory backend, with the
//! budget cases on a bounded one.

respcache_conformance::main!(
    respcache_conformance::Factory::new("memory", || async {
        Ok(respcache_core::MemoryBackend::new())
    })
    .with_budget(|budget| async move { Ok(respcache_core::MemoryBackend::with_budget(budget)) })
    .with_leases()
    // Each handle is a new, empty memory.
    .not_persistent()
);
