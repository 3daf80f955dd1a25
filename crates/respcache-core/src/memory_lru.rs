//! The memory backend's size accounting and exact least-recently-used
//! order, shared by all its stores.
//!
//! Lock order: the accountant's mutex first, then a table's lock. A read
//! takes its table's lock, lets it go, and only then touches the order, so
//! nothing ever waits for the accountant while holding a table.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, Weak};

use crate::budget::{Budget, TrimProgress, Usage};
use crate::memory_table::Entries;

/// One store's entries by encoded key, with their tag index.
pub(crate) type Table = RwLock<Entries>;

/// The accountant: a budget and the state it guards.
#[derive(Debug, Default)]
pub(crate) struct Lru {
    pub(crate) budget: Budget,
    state: Mutex<State>,
}

/// Every stored entry's last use and size, in use order.
#[derive(Debug, Default)]
pub(crate) struct State {
    next_tick: u64,
    /// tick → (table id, key): the least recently used first.
    order: BTreeMap<u64, (u64, String)>,
    /// table id → key → (tick, size); keys hashed with foldhash (seeded per
    /// process), not SipHash: a key is ~100 bytes and every hit hashes one.
    live: HashMap<u64, foldhash::HashMap<String, (u64, u64)>>,
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
        let old = std::mem::replace(&mut slot.0, tick);
        self.next_tick = tick;
        if let Some(v) = self.order.remove(&old) {
            self.order.insert(tick, v);
        }
    }

    /// Records a write of `size` bytes under `key` (new or replaced).
    pub(crate) fn record(&mut self, id: u64, key: String, size: u64) {
        let tick = self.tick();
        let table = self.live.entry(id).or_default();
        match table.get_mut(&key) {
            Some(slot) => {
                self.usage.bytes = self.usage.bytes.saturating_sub(slot.1) + size;
                let old = std::mem::replace(slot, (tick, size));
                self.order.remove(&old.0);
            }
            None => {
                table.insert(key.clone(), (tick, size));
                self.usage.bytes += size;
                self.usage.entries += 1;
            }
        }
        self.order.insert(tick, (id, key));
    }

    /// Changes the size of a stored entry without making it recent.
    pub(crate) fn resize(&mut self, id: u64, key: &str, size: u64) {
        if let Some(slot) = self.live.get_mut(&id).and_then(|t| t.get_mut(key)) {
            self.usage.bytes = self.usage.bytes.saturating_sub(slot.1) + size;
            slot.1 = size;
        }
    }

    /// Forgets a removed entry.
    pub(crate) fn forget(&mut self, id: u64, key: &str) {
        if let Some((tick, size)) = self.live.get_mut(&id).and_then(|t| t.remove(key)) {
            self.order.remove(&tick);
            self.usage.bytes = self.usage.bytes.saturating_sub(size);
            self.usage.entries = self.usage.entries.saturating_sub(1);
        }
    }

    /// Forgets every entry of table `id` (it was emptied).
    pub(crate) fn forget_table(&mut self, id: u64) {
        if let Some(table) = self.live.remove(&id) {
            for (tick, size) in table.into_values() {
                self.order.remove(&tick);
                self.usage.bytes = self.usage.bytes.saturating_sub(size);
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
            let size = self
                .live
                .get_mut(&id)
                .and_then(|t| t.remove(&key))
                .map_or(0, |(_, size)| size);
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
