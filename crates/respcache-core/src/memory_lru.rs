//! The memory backend's size accounting and exact least-recently-used
//! order, shared by all its stores.
//!
//! Lock order: the accountant's mutex first, then a table's lock. A read
//! takes its table's lock, lets it go, and only then marks its use, so
//! nothing ever waits for the accountant while holding a table.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};

use crate::budget::{Budget, TrimProgress, Usage};
use crate::memory_table::{Entries, SharedKey};

/// One store's entries by encoded key, with their tag index.
pub(crate) type Table = RwLock<Entries>;

/// The accountant: a budget and the state it guards.
#[derive(Debug, Default)]
pub(crate) struct Lru {
    pub(crate) budget: Budget,
    state: Mutex<State>,
}

/// Every stored entry's last use and size, in use order.
///
/// A hit only sets its entry's `used` tick; the order catches up when an
/// eviction reaches the entry (a hit is frequent, an eviction rare). Each
/// entry sits in `order` once, under a tick no later than its `used`: the
/// first of `order` whose tick is still its `used` is the least recently
/// used entry, exactly; one whose tick is older was used since and moves
/// to its place then.
#[derive(Debug, Default)]
pub(crate) struct State {
    next_tick: u64,
    /// tick → (table id, key), in tick order.
    order: BTreeMap<u64, (u64, SharedKey)>,
    /// table id → key → its use; keys hashed with foldhash (seeded per
    /// process), not SipHash: a key is ~100 bytes and every hit hashes one.
    live: foldhash::HashMap<u64, foldhash::HashMap<SharedKey, Use>>,
    usage: Usage,
    tables: HashMap<u64, Weak<Table>>,
}

impl Lru {
    /// An accountant enforcing `budget`.
    pub(crate) fn new(budget: Budget) -> Self {
        Lru {
            budget,
            state: Mutex::default(),
        }
    }

    /// The state, locked (take it before any table lock).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks `key` of table `id` as just used, if it is stored. Call it
    /// with no table lock held.
    pub(crate) fn touch(&self, id: u64, key: &str) {
        let mut state = self.lock();
        state.touch(id, key);
    }
}

/// One entry's accounting.
#[derive(Debug, Clone, Copy)]
struct Use {
    /// Its last use.
    used: u64,
    /// Where it sits in `order` (at most `used`).
    placed: u64,
    size: u64,
}

impl State {
    /// Makes table `id` known, so eviction can reach it.
    pub(crate) fn register(&mut self, id: u64, table: Weak<Table>) {
        self.tables.insert(id, table);
    }

    fn tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    fn touch(&mut self, id: u64, key: &str) {
        let tick = self.next_tick + 1;
        let Some(slot) = self.live.get_mut(&id).and_then(|t| t.get_mut(key)) else {
            return;
        };
        slot.used = tick;
        self.next_tick = tick;
    }

    /// Records a write of `size` bytes under `key` (new or replaced).
    pub(crate) fn record(&mut self, id: u64, key: SharedKey, size: u64) {
        let tick = self.tick();
        let table = self.live.entry(id).or_default();
        let placed = Use {
            used: tick,
            placed: tick,
            size,
        };
        match table.get_mut(&key) {
            Some(slot) => {
                self.usage.bytes = self.usage.bytes.saturating_sub(slot.size) + size;
                let old = std::mem::replace(slot, placed);
                self.order.remove(&old.placed);
            }
            None => {
                table.insert(Arc::clone(&key), placed);
                self.usage.bytes += size;
                self.usage.entries += 1;
            }
        }
        self.order.insert(tick, (id, key));
    }

    /// Changes the size of a stored entry without making it recent.
    pub(crate) fn resize(&mut self, id: u64, key: &str, size: u64) {
        if let Some(slot) = self.live.get_mut(&id).and_then(|t| t.get_mut(key)) {
            self.usage.bytes = self.usage.bytes.saturating_sub(slot.size) + size;
            slot.size = size;
        }
    }

    /// Forgets a removed entry.
    pub(crate) fn forget(&mut self, id: u64, key: &str) {
        if let Some(slot) = self.live.get_mut(&id).and_then(|t| t.remove(key)) {
            self.order.remove(&slot.placed);
            self.usage.bytes = self.usage.bytes.saturating_sub(slot.size);
            self.usage.entries = self.usage.entries.saturating_sub(1);
        }
    }

    /// Forgets every entry of table `id` (it was emptied).
    pub(crate) fn forget_table(&mut self, id: u64) {
        if let Some(table) = self.live.remove(&id) {
            for slot in table.into_values() {
                self.order.remove(&slot.placed);
                self.usage.bytes = self.usage.bytes.saturating_sub(slot.size);
                self.usage.entries = self.usage.entries.saturating_sub(1);
            }
        }
    }

    /// What is stored.
    pub(crate) fn usage(&self) -> Usage {
        self.usage
    }

    /// Removes least recently used entries until `target` holds. Takes each
    /// victim's table lock (the accountant's is held, as the order says).
    pub(crate) fn evict(&mut self, target: Budget) -> TrimProgress {
        let mut done = TrimProgress::default();
        while target.is_exceeded_by(self.usage) {
            let Some((_, (id, key))) = self.order.pop_first() else {
                break;
            };
            let Some(table) = self.live.get_mut(&id) else {
                continue;
            };
            // Used since it was placed: to its place in the order, and on.
            if let Some(slot) = table.get_mut(&key)
                && slot.used != slot.placed
            {
                slot.placed = slot.used;
                self.order.insert(slot.used, (id, key));
                continue;
            }
            let size = table.remove(&key).map_or(0, |slot| slot.size);
            self.usage.bytes = self.usage.bytes.saturating_sub(size);
            self.usage.entries = self.usage.entries.saturating_sub(1);
            if let Some(table) = self.tables.get(&id).and_then(Weak::upgrade) {
                table
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&key);
            }
            done.removed += 1;
            done.freed += size;
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left(state: &State) -> Vec<String> {
        let mut keys: Vec<String> = state.live[&1].keys().map(|k| k.to_string()).collect();
        keys.sort();
        keys
    }

    /// Hits only mark their entry; evictions still go in exact
    /// least-recently-used order, one entry at a time.
    #[test]
    fn evictions_follow_the_last_use_exactly() {
        let mut state = State::default();
        for k in ["a", "b", "c", "d", "e"] {
            state.record(1, k.into(), 10);
        }
        // Use order now: a b c d e, then c a e (twice: a repeated hit).
        for k in ["c", "a", "e", "a"] {
            state.touch(1, k);
        }
        // Least recently used first: b, d, c, e, a.
        let expected_left = [
            vec!["a", "c", "d", "e"],
            vec!["a", "c", "e"],
            vec!["a", "e"],
            vec!["a"],
        ];
        for (n, want) in (1..=4u64).rev().zip(expected_left) {
            let done = state.evict(Budget::entries(n));
            assert_eq!(done.removed, 1);
            assert_eq!(left(&state), want);
            assert_eq!(state.usage().entries, n);
            assert_eq!(state.usage().bytes, n * 10);
        }
        // What was moved while evicting keeps its place: a write makes the
        // other entry the older one.
        state.record(1, "f".into(), 10);
        state.touch(1, "a");
        state.evict(Budget::entries(1));
        assert_eq!(left(&state), ["a"]);
        assert_eq!(state.order.len(), 1, "one place per entry");
    }
}
