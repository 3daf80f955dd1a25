//! Process-wide counters of entries that could not be decoded.
//!
//! An entry that fails to decode (corrupt, torn, or written by an
//! incompatible version) is treated as a miss: it is logged with `tracing`
//! and counted here, and never reaches the caller as an error.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Error;

static UNDECODABLE: AtomicU64 = AtomicU64::new(0);

/// Records that an entry in `repository` of `backend` could not be decoded,
/// so the caller sees a miss instead. Backends and the core call this.
pub fn record_undecodable(backend: &str, repository: &str, error: &Error) {
    UNDECODABLE.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        backend,
        repository,
        error = %error,
        "respcache: undecodable entry treated as a miss"
    );
}

/// How many undecodable entries this process has met so far.
pub fn undecodable_entries() -> u64 {
    UNDECODABLE.load(Ordering::Relaxed)
}
