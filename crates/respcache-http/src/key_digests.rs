//! Request digests computed on this thread, by their normalised URL.
//!
//! Every request is named in the cache by a digest (BLAKE3 over the method,
//! the normalised URL, the body's digest and the matched headers) — about
//! an eighth of the instructions of a hit on the memory backend. Most
//! requests are `GET`s without a body, from a client whose key matches no
//! header: their digest is a function of the normalised URL alone, so it
//! is looked up in a [`TextMemo`] first. 256 KiB a thread, about 1,000 URLs
//! of 100 bytes (emptied when full); URLs longer than [`MAX_LEN`] are
//! hashed each time.

use std::cell::RefCell;
use std::convert::Infallible;

use crate::text_memo::{TextMemo, memoized};

/// The most memory one thread's memo takes, counted as [`cost`].
const MAX_BYTES: usize = 256 * 1024;

/// The longest URL kept (longer ones are hashed each time).
const MAX_LEN: usize = 2048;

/// What one kept digest takes: the URL text, the digest and the map's slot.
fn cost(url: &str, digest: &str) -> usize {
    url.len() + digest.len() + 64
}

thread_local! {
    static GET_DIGESTS: RefCell<TextMemo<String>> = RefCell::new(TextMemo::new(MAX_BYTES, MAX_LEN));
}

/// `digest()`, the digest of a body-less `GET` for the normalised `url`
/// from a client that matches no header, from this thread's memo when it
/// was computed here before.
pub(crate) fn of_get(url: &str, digest: impl FnOnce() -> String) -> String {
    let Ok(kept) = memoized(
        &GET_DIGESTS,
        url,
        || Ok::<_, Infallible>(digest()),
        |d| cost(url, d),
    );
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_computed_once_per_url_and_thread() {
        std::thread::spawn(|| {
            let mut computed = 0;
            for _ in 0..3 {
                for url in ["http://h/a", "http://h/b"] {
                    let d = of_get(url, || {
                        computed += 1;
                        format!("digest of {url}")
                    });
                    assert_eq!(d, format!("digest of {url}"));
                }
            }
            assert_eq!(computed, 2);
        })
        .join()
        .unwrap();
    }
}
