//! Stored heads decoded on this thread, by their meta bytes.
//!
//! Every lookup decodes its entry's meta into a [`StoredHead`]: the wire
//! form read, then a header map built with each name parsed and each value
//! checked — about a fifth of the instructions of a hit on the memory
//! backend. A hit reads a meta that was read before, so its bytes are looked
//! up in a [`TextMemo`] first and the head cloned (a header map clone: two
//! allocations, the values shared). The decoded head is a pure function of
//! the bytes, so a head from the memo is the head decoding gives.
//!
//! A kept head is decoded from its own copy of the bytes: a backend may hand
//! out the meta as a slice of a larger buffer (with the body in it), which a
//! kept header value would otherwise hold in memory. 2 MiB a thread, about
//! 1,700 heads of five headers in 300 bytes (the memo is emptied when full:
//! a working set read in turn that is larger decodes every time, at ~1k
//! instructions more than without the memo); metas longer than
//! [`MAX_LEN`] are decoded each time.

use std::cell::RefCell;

use bytes::Bytes;

use crate::meta::{MetaError, StoredHead};
use crate::text_memo::{TextMemo, memoized};

/// The most memory one thread's memo takes, counted as [`cost`].
const MAX_BYTES: usize = 2 * 1024 * 1024;

/// The longest meta kept (longer ones are decoded each time).
const MAX_LEN: usize = 4096;

/// What one kept head takes: its bytes twice (the key and the copy its
/// values share), each header's slot in the map, and the head itself.
fn cost(bytes: &[u8], head: &StoredHead) -> usize {
    let headers = match head {
        StoredHead::Response(h) => h.headers.len(),
        StoredHead::VaryIndex(_) => 0,
    };
    2 * bytes.len() + 96 * headers + 192
}

thread_local! {
    static DECODED: RefCell<TextMemo<StoredHead, [u8]>> =
        RefCell::new(TextMemo::new(MAX_BYTES, MAX_LEN));
}

/// [`StoredHead::decode`], from this thread's memo when the same bytes
/// were decoded here before.
pub(crate) fn decode(bytes: &Bytes) -> Result<StoredHead, MetaError> {
    if bytes.len() > MAX_LEN {
        return StoredHead::decode(bytes);
    }
    memoized(
        &DECODED,
        bytes.as_ref(),
        || StoredHead::decode(&Bytes::copy_from_slice(bytes)),
        |head| cost(bytes, head),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{ResponseMeta, StoredMeta};

    fn meta(cache_control: &str) -> Bytes {
        let meta = ResponseMeta {
            status: 200,
            headers: vec![
                ("cache-control".into(), cache_control.as_bytes().to_vec()),
                ("x-kept".into(), b"one".to_vec()),
                ("x-kept".into(), b"two".to_vec()),
            ],
            url: "http://origin.test/a".into(),
            method: "GET".into(),
            response_time: 1_700_000_000_000,
            initial_age: 3,
            body: None,
            vary: None,
            version: 11,
        };
        StoredMeta::Response(Box::new(meta)).encode().unwrap()
    }

    fn fields(head: &StoredHead) -> (u16, u64, Vec<(String, String)>) {
        let StoredHead::Response(h) = head else {
            panic!("not a response head");
        };
        let headers = h
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        (h.status, h.initial_age, headers)
    }

    #[test]
    fn a_head_from_the_memo_is_the_decoded_head() {
        for cc in ["max-age=60", "no-cache", "max-age=60"] {
            let bytes = meta(cc);
            let fresh = StoredHead::decode(&bytes).unwrap();
            // The first read decodes and keeps, the second comes from the memo.
            for _ in 0..2 {
                assert_eq!(fields(&decode(&bytes).unwrap()), fields(&fresh));
            }
        }
        assert!(decode(&Bytes::from_static(b"\xff\xff not a meta")).is_err());
    }

    #[test]
    fn a_kept_head_does_not_hold_the_buffer_it_was_read_from() {
        let bytes = meta("max-age=7");
        let mut buffer = bytes.to_vec();
        buffer.extend(std::iter::repeat_n(b'x', 100_000));
        let big = Bytes::from(buffer);
        let slice = big.slice(..bytes.len());
        decode(&slice).unwrap();
        drop(slice);
        // Only the test's handle is left on the 100 KB buffer.
        assert!(big.is_unique());
    }
}
