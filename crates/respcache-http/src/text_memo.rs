//! A per-thread memo of what a pure function made of a text: the parsed
//! form of a URL, of a `Cache-Control` value, of a stored response's meta.
//! A request the cache answers carries texts it carried before; looking one
//! up (a hash of its bytes) costs a fraction of parsing it again.
//!
//! Bounded by memory and lock-free: each memo lives in a `thread_local!`,
//! is emptied when what it holds would pass its byte bound (no order to
//! keep: a working set larger than that parses as before), keeps no text
//! longer than its length bound, and is freed with its thread. Dropping one
//! arbitrary text per text kept instead (`extract_if(..).next()`) was tried
//! and measured worse: once the memos had filled, hits through the layer,
//! reqwest and SQLite took ~1.3 µs more in the bench. Only pure functions
//! of the text go in one, so a value from a memo is the value the function
//! gives.

use std::cell::RefCell;
use std::hash::Hash;
use std::thread::LocalKey;

/// Texts (`str` or bytes) and the values made of them, with what they take.
pub(crate) struct TextMemo<V, K: ?Sized = str> {
    /// Hashed with foldhash (seeded per process), not SipHash: every
    /// request hashes its texts here. Each value with its counted cost.
    values: foldhash::HashMap<Box<K>, (V, usize)>,
    bytes: usize,
    max_bytes: usize,
    max_len: usize,
}

impl<V: Clone, K> TextMemo<V, K>
where
    K: ?Sized + Eq + Hash + AsRef<[u8]>,
    for<'a> Box<K>: From<&'a K>,
{
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
    pub(crate) fn get(&self, text: &K) -> Option<V> {
        self.values.get(text).map(|(v, _)| v.clone())
    }

    /// Keeps `value` for `text`, counted as `cost` bytes (the text and what
    /// the value holds); empties the memo first when it would pass its
    /// bound. A text over the length bound, or costing more than the whole
    /// bound, is not kept.
    pub(crate) fn keep(&mut self, text: &K, value: &V, cost: usize) {
        if text.as_ref().len() > self.max_len || cost > self.max_bytes {
            return;
        }
        if self.bytes + cost > self.max_bytes {
            self.values.clear();
            self.values.shrink_to_fit();
            self.bytes = 0;
        }
        if let Some((_, replaced)) = self.values.insert(text.into(), (value.clone(), cost)) {
            self.bytes -= replaced;
        }
        self.bytes += cost;
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

/// `make()`'s value for `text`: from `memo` (a thread's) when it was made
/// on this thread before, else made and kept there, counted as `cost` says.
/// The one way the memos are read and filled.
pub(crate) fn memoized<V, K, E>(
    memo: &'static LocalKey<RefCell<TextMemo<V, K>>>,
    text: &K,
    make: impl FnOnce() -> Result<V, E>,
    cost: impl FnOnce(&V) -> usize,
) -> Result<V, E>
where
    V: Clone,
    K: ?Sized + Eq + Hash + AsRef<[u8]>,
    for<'a> Box<K>: From<&'a K>,
{
    if let Some(value) = memo.with_borrow(|m| m.get(text)) {
        return Ok(value);
    }
    let value = make()?;
    memo.with_borrow_mut(|m| m.keep(text, &value, cost(&value)));
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeping_a_text_again_counts_it_once() {
        let mut memo: TextMemo<u8, [u8]> = TextMemo::new(100, 64);
        memo.keep(b"a".as_slice(), &1, 30);
        memo.keep(b"a".as_slice(), &2, 40);
        assert_eq!((memo.len(), memo.bytes()), (1, 40));
        assert_eq!(memo.get(b"a".as_slice()), Some(2));
        memo.keep(
            b"too long for the memo, by far: over sixty-four bytes long, so never kept".as_slice(),
            &3,
            1,
        );
        memo.keep(b"b".as_slice(), &4, 101);
        assert_eq!(memo.len(), 1);
    }
}
