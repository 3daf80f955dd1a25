//! URLs parsed on this thread, by their text.
//!
//! Every request parses its URL (the `url` crate's WHATWG parser: IDNA for
//! the host, percent-encoding, IPv4 forms) — about a quarter of the
//! instructions of a hit on the memory backend. A request the cache
//! answers asks for a URL that was asked for before, so its text is looked
//! up in a [`TextMemo`] first and the parsed URL cloned (one allocation):
//! 512 KiB a thread, about 1,900 URLs of 100 bytes; URLs longer than
//! [`MAX_LEN`] are not kept.

use std::cell::RefCell;

use url::Url;

use crate::text_memo::{TextMemo, memoized};

/// The most memory one thread's memo takes, counted as [`cost`].
const MAX_BYTES: usize = 512 * 1024;

/// The longest URL text kept (longer ones are parsed each time).
const MAX_LEN: usize = 2048;

/// What one kept URL takes: its text twice (the key and the parsed URL's
/// serialization) and the map's and `Url`'s own fields.
fn cost(text: &str) -> usize {
    2 * text.len() + 160
}

thread_local! {
    static PARSED: RefCell<TextMemo<Url>> = RefCell::new(TextMemo::new(MAX_BYTES, MAX_LEN));
}

/// `Url::parse(text)`, from this thread's memo when `text` was parsed here
/// before.
pub(crate) fn parse(text: &str) -> Result<Url, url::ParseError> {
    memoized(&PARSED, text, || Url::parse(text), |_| cost(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> usize {
        PARSED.with_borrow(TextMemo::len)
    }

    #[test]
    fn a_url_from_the_memo_is_the_parsers_url() {
        for text in [
            "http://127.0.0.1:8080/a?b=1#f",
            "HTTPS://Bücher.example/%7Efoo/./bar/../baz?q=a b",
            "http://0x7f.1/",
            "http://example.com",
        ] {
            let first = parse(text).unwrap();
            let again = parse(text).unwrap();
            assert_eq!(first, Url::parse(text).unwrap(), "{text}");
            assert_eq!(again, first, "{text}");
        }
        assert!(parse("not a url").is_err());
        assert!(parse("not a url").is_err());
    }

    #[test]
    fn the_memo_stays_bounded() {
        let most = MAX_BYTES / cost("http://h/00000");
        let mut seen_most = 0;
        for i in 0..most * 3 {
            parse(&format!("http://h/{i:05}")).unwrap();
            seen_most = seen_most.max(kept());
            assert!(PARSED.with_borrow(TextMemo::bytes) <= MAX_BYTES);
        }
        assert_eq!(seen_most, most, "the memo filled to its bound");
        PARSED.with_borrow_mut(|memo| *memo = TextMemo::new(MAX_BYTES, MAX_LEN));
        let long = format!("http://h/{}", "x".repeat(MAX_LEN));
        parse(&long).unwrap();
        assert_eq!(kept(), 0, "a long URL was kept");
        parse("http://h/short").unwrap();
        assert_eq!(kept(), 1);
    }
}
