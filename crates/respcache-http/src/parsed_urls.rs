//! URLs parsed on this thread, by their text.
//!
//! Every request parses its URL (the `url` crate's WHATWG parser: IDNA for
//! the host, percent-encoding, IPv4 forms) — about a quarter of the
//! instructions of a hit on the memory backend. A request the cache
//! answers asks for a URL that was asked for before, so its text is looked
//! up in a [`TextMemo`] first and the parsed URL cloned (one allocation):
//! 512 KiB a thread, about 1,900 URLs of 100 bytes; URLs longer than
//! [`MAX_LEN`] are not kept.
//!
//! A URL not asked for before (a miss) is mostly a new path on an origin
//! asked before: its `http(s)://authority` is parsed once per thread into
//! a base, and the path and query are joined to it — the parser's own
//! join, which copies the base's scheme and host instead of parsing them
//! again (the host is the costly half: IDNA, IPv4 forms). Only texts the
//! join reads as parsing the whole would take that way ([`split_origin`]);
//! debug builds check every such URL against `Url::parse`.

use std::cell::RefCell;
use std::rc::Rc;

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

/// The most memory one thread's parsed origins take, counted as [`cost`].
const MAX_BASE_BYTES: usize = 32 * 1024;

thread_local! {
    static PARSED: RefCell<TextMemo<Url>> = RefCell::new(TextMemo::new(MAX_BYTES, MAX_LEN));
    /// `http(s)://authority` texts and their parsed bases (`…/`).
    static BASES: RefCell<TextMemo<Rc<Url>>> =
        RefCell::new(TextMemo::new(MAX_BASE_BYTES, MAX_LEN));
}

/// `Url::parse(text)`, from this thread's memo when `text` was parsed here
/// before.
pub(crate) fn parse(text: &str) -> Result<Url, url::ParseError> {
    memoized(&PARSED, text, || parse_new(text), |_| cost(text))
}

/// `Url::parse(text)` for a text not in the memo: joined to its origin's
/// parsed base when [`split_origin`] allows, else parsed whole (and so
/// whenever the origin itself does not parse: the error is the whole
/// text's).
fn parse_new(text: &str) -> Result<Url, url::ParseError> {
    let Some((origin, rest)) = split_origin(text) else {
        return Url::parse(text);
    };
    let base = memoized(
        &BASES,
        origin,
        || Url::parse(&format!("{origin}/")).map(Rc::new),
        |_| cost(origin),
    );
    let Ok(base) = base else {
        return Url::parse(text);
    };
    let url = base.join(rest);
    debug_assert_eq!(url, Url::parse(text), "{text:?} joined to {base}");
    url
}

/// `text` as its `http://` or `https://` origin (scheme and authority, as
/// written) and the rest, when joining the rest to the origin's base reads
/// it as parsing the whole would (WHATWG URL): the authority ends at the
/// first `/` (not at `?`, `#` or `\`, which the path then starts with);
/// the rest is not scheme-relative (`//…`, or `/\…` in these schemes);
/// and no tab or newline is anywhere (the parser removes them, which could
/// turn `/` + tab + `/` into `//`).
fn split_origin(text: &str) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    let scheme = if bytes.len() > 7 && bytes[..7].eq_ignore_ascii_case(b"http://") {
        7
    } else if bytes.len() > 8 && bytes[..8].eq_ignore_ascii_case(b"https://") {
        8
    } else {
        return None;
    };
    let authority = bytes[scheme..]
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#' | b'\\'))?;
    let end = scheme + authority;
    if authority == 0 || bytes[end] != b'/' {
        return None;
    }
    if matches!(bytes.get(end + 1), Some(b'/' | b'\\')) {
        return None;
    }
    if bytes.iter().any(|&b| matches!(b, b'\t' | b'\n' | b'\r')) {
        return None;
    }
    Some(text.split_at(end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `parse_new(text)` and the parser agree, on the value or the error.
    fn agrees(text: &str) -> Result<(), TestCaseError> {
        prop_assert_eq!(parse_new(text), Url::parse(text), "{:?}", text);
        Ok(())
    }

    #[test]
    fn a_joined_url_is_the_parsers_url() {
        for text in [
            "http://127.0.0.1:8080/miss/1?q=a%20b",
            "HTTP://User:Pw@Bücher.Example:80/a/./b/../c?x#f",
            "https://[::1]:443/p",
            "http://0x7f.1/x",
            "http://h/a@b/c",
            "http://h:99999/x",
            "http:///x",
            "http://h//x",
            "http://h/\\x",
            "http://h/\t/x",
            "http://h\\x/y",
            "http://h?q/x",
            "http://h#f/x",
            "http://h/x ",
        ] {
            agrees(text).unwrap();
        }
        assert_eq!(split_origin("http://h/x?y"), Some(("http://h", "/x?y")));
        assert_eq!(split_origin("https://h:1/"), Some(("https://h:1", "/")));
        for refused in [
            "http://h",
            "http:///x",
            "http://h//x",
            "http://h/\\x",
            "http://h/\t/x",
            "http://h?q/x",
            "ftp://h/x",
        ] {
            assert_eq!(split_origin(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn an_origin_is_parsed_once_per_thread() {
        std::thread::spawn(|| {
            for i in 0..10 {
                parse(&format!("http://once.example:8080/p/{i}")).unwrap();
            }
            assert_eq!(BASES.with_borrow(TextMemo::len), 1);
        })
        .join()
        .unwrap();
    }

    /// Pieces a URL's parser reads specially, for texts that put them
    /// anywhere.
    fn pieces() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "/", "\\", "\t", "\n", "\r", "?", "#", "@", ":", ".", "..", "%2e", "%2F", "a", "B",
            "0", "ü", " ", "[", "]", "8080",
        ]);
        prop::collection::vec(piece, 0..8).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        #[test]
        fn any_text_joins_as_it_parses(
            scheme in "(http|HTTPS|https|hTtp|ftp)",
            authority in pieces(),
            rest in pieces(),
        ) {
            agrees(&format!("{scheme}://{authority}{rest}"))?;
            agrees(&format!("{scheme}://h/{rest}"))?;
        }
    }

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
