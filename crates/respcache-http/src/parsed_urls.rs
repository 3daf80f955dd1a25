//! URLs parsed on this thread, by their text.
//!
//! Every request parses its URL (the `url` crate's WHATWG parser: IDNA for
//! the host, percent-encoding, IPv4 forms) — about a quarter of the
//! instructions of a hit on the memory backend. A request the cache
//! answers asks for a URL that was asked for before, so its text is looked
//! up here first and the parsed URL cloned (one allocation).
//!
//! Bounded and lock-free: one map per thread, emptied when it holds
//! [`MAX_URLS`] (no order to keep: a working set larger than that parses
//! as before); URLs longer than [`MAX_LEN`] are not kept. Parsing is a
//! pure function of the text, so a URL from the memo is the URL the parser
//! would give.

use std::cell::RefCell;
use std::collections::HashMap;

use url::Url;

/// The most URLs one thread keeps.
const MAX_URLS: usize = 512;

/// The longest URL text kept (longer ones are parsed each time).
const MAX_LEN: usize = 2048;

thread_local! {
    static PARSED: RefCell<HashMap<Box<str>, Url>> = RefCell::new(HashMap::new());
}

/// `Url::parse(text)`, from this thread's memo when `text` was parsed here
/// before.
pub(crate) fn parse(text: &str) -> Result<Url, url::ParseError> {
    if let Some(url) = PARSED.with_borrow(|memo| memo.get(text).cloned()) {
        return Ok(url);
    }
    let url = Url::parse(text)?;
    if text.len() <= MAX_LEN {
        PARSED.with_borrow_mut(|memo| {
            if memo.len() >= MAX_URLS {
                memo.clear();
            }
            memo.insert(text.into(), url.clone());
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> usize {
        PARSED.with_borrow(HashMap::len)
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
        for i in 0..MAX_URLS * 3 {
            parse(&format!("http://h/{i}")).unwrap();
            assert!(kept() <= MAX_URLS);
        }
        PARSED.with_borrow_mut(HashMap::clear);
        let long = format!("http://h/{}", "x".repeat(MAX_LEN));
        parse(&long).unwrap();
        assert_eq!(kept(), 0, "a long URL was kept");
        parse("http://h/short").unwrap();
        assert_eq!(kept(), 1);
    }
}
