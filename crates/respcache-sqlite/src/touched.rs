//! [`Touched`]: the rowids read since their use times were last written.
//!
//! A hit records its row here instead of writing (see `usage.rs`). Every
//! concurrent hit of a table records into it, so it is sharded by thread
//! ([`thread_slot`](crate::thread_slot)): each worker thread locks a shard
//! of its own, and no cache line goes back and forth between cores on every
//! hit. The count a flush is due at is an atomic, read without a lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::thread_slot;

/// Shards: more than the worker threads of a typical runtime.
const SHARDS: usize = 16;

/// Rowids read since the last flush, sharded by thread.
#[derive(Debug)]
pub(crate) struct Touched {
    shards: Box<[Shard]>,
    /// Rows recorded across the shards (a row read on two threads counts
    /// twice until the flush: a flush comes a little early, never late).
    len: AtomicUsize,
}

/// One shard, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Shard(Mutex<foldhash::HashSet<i64>>);

impl Default for Touched {
    fn default() -> Self {
        Touched {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            len: AtomicUsize::new(0),
        }
    }
}

impl Touched {
    /// Records a read of `rowid`.
    pub(crate) fn insert(&self, rowid: i64) {
        let Some(shard) = self.shards.get(thread_slot::home() % SHARDS) else {
            return;
        };
        let new = shard
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(rowid);
        if new {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many rows were recorded since the last [`take`](Self::take).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Every recorded row, once, leaving none.
    pub(crate) fn take(&self) -> Vec<i64> {
        let mut rows = foldhash::HashSet::<i64>::default();
        for shard in self.shards.iter() {
            let taken =
                std::mem::take(&mut *shard.0.lock().unwrap_or_else(PoisonError::into_inner));
            self.len.fetch_sub(taken.len(), Ordering::Relaxed);
            rows.extend(taken);
        }
        rows.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_from_many_threads_are_taken_once_each() {
        let touched = Touched::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for rowid in 0..100 {
                        touched.insert(rowid);
                        touched.insert(rowid);
                    }
                });
            }
        });
        assert!(touched.len() >= 100, "{}", touched.len());
        let mut rows = touched.take();
        rows.sort_unstable();
        assert_eq!(rows, (0..100).collect::<Vec<_>>());
        assert_eq!(touched.len(), 0);
        assert!(touched.take().is_empty());
    }
}
