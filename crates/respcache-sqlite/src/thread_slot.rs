//! A number for each thread, given on its first use, so the runtime's
//! worker threads (about one per core) each mostly use a slot of their own
//! in a small array — a reader connection, a shard of the touched rows —
//! and never touch a shared counter on the hot path.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static HOME: Cell<Option<usize>> = const { Cell::new(None) };
}

/// This thread's number (take it modulo the array's length).
pub(crate) fn home() -> usize {
    HOME.with(|home| match home.get() {
        Some(n) => n,
        None => {
            let n = THREADS.fetch_add(1, Ordering::Relaxed);
            home.set(Some(n));
            n
        }
    })
}
