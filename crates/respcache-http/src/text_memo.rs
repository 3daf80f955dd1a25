//! A per-thread memo of what a pure function made of a text: the parsed
//! form of a URL, of a `Cache-Control` value. A request the cache answers
//! carries texts it carried before; looking one up (a hash of its bytes)
//! costs a fraction of parsing it again.
//!
//! Bounded by memory and lock-free: each memo lives in a `thread_local!`,
//! is emptied when what it holds passes its byte bound (no order to keep:
//! a working set larger than that parses as before), keeps no text longer
//! than its length bound, and is freed with its thread. Only pure functions
//! of the text go in one, so a value from a memo is the value the function
//! gives.

/// Texts and the values made of them, with what they take.
pub(crate) struct TextMemo<V> {
    /// Hashed with foldhash (seeded per process), not SipHash: every
    /// request hashes its texts here.
    values: foldhash::HashMap<Box<str>, V>,
    bytes: usize,
    max_bytes: usize,
    max_len: usize,
}

impl<V: Clone> TextMemo<V> {
    /// An empty memo holding at most `max_bytes` (as the callers' `cost`
    /// counts them), of texts up to `max_len` bytes.
    pub(crate) fn new(max_bytes: usize, max_len: usize) -> Self {
        TextMemo {
            values: foldhash::HashMap::default(),
            bytes: 0,
            max_bytes,
            max_len,
        }
    }

    /// The value kept for `text`, if any.
    pub(crate) fn get(&self, text: &str) -> Option<V> {
        self.values.get(text).cloned()
    }

    /// Keeps `value` for `text`, counted as `cost` bytes (the text and what
    /// the value holds); empties the memo first when it would pass its
    /// bound. A text over the length bound is not kept.
    pub(crate) fn keep(&mut self, text: &str, value: &V, cost: usize) {
        if text.len() > self.max_len {
            return;
        }
        if self.bytes + cost > self.max_bytes {
            self.values.clear();
            self.values.shrink_to_fit();
            self.bytes = 0;
        }
        self.bytes += cost;
        self.values.insert(text.into(), value.clone());
    }

    /// How many texts are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// What the kept texts take, as counted.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}
