//! A per-thread memo of what a pure function made of a text: the parsed
//! form of a URL, of a `Cache-Control` value, of a stored response's meta.
//! A request the cache answers carries texts it carried before; looking one
//! up (a hash of its bytes) costs a fraction of parsing it again.
//!
//! Bounded by memory and lock-free: each memo lives in a `thread_local!`,
//! drops an arbitrary text (the first its map iterates) for each one kept
//! past its byte bound, keeps no text longer than its length bound, and is
//! freed with its thread. Dropping one at a time, not all: a working set
//! read in turn that is a little larger than the bound still mostly hits
//! (emptying the memo when full made such a set miss every time). Only pure
//! functions of the text go in one, so a value from a memo is the value the
//! function gives.

use std::hash::Hash;

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
    /// the value holds); drops other texts first while it would pass its
    /// bound. A text over the length bound, or costing more than the whole
    /// bound, is not kept.
    pub(crate) fn keep(&mut self, text: &K, value: &V, cost: usize) {
        if text.as_ref().len() > self.max_len || cost > self.max_bytes {
            return;
        }
        while self.bytes + cost > self.max_bytes {
            match self.values.extract_if(|_, _| true).next() {
                Some((_, (_, dropped))) => self.bytes -= dropped,
                None => self.bytes = 0,
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_working_set_read_in_turn_past_the_bound_still_mostly_hits() {
        // Room for 100 texts of cost 10; 120 read in turn, ten rounds.
        let mut memo: TextMemo<u32> = TextMemo::new(1_000, 64);
        let (mut hits, mut reads) = (0, 0);
        for _ in 0..10 {
            for i in 0..120u32 {
                let text = format!("text {i}");
                reads += 1;
                match memo.get(text.as_str()) {
                    Some(v) => {
                        assert_eq!(v, i);
                        hits += 1;
                    }
                    None => memo.keep(text.as_str(), &i, 10),
                }
                assert!(memo.bytes() <= 1_000 && memo.len() <= 100);
            }
        }
        // Emptying the memo when full: no hit at all here.
        assert!(hits * 2 > reads, "{hits} hits of {reads} reads");
    }

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
