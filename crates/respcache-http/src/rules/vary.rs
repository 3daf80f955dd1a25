//! Matching a request's selecting header fields against those a stored
//! response was selected with (RFC 9111 §4.1). A cache may normalise the
//! values first: field lines are combined into one list, whitespace around
//! members is dropped, and the content-negotiation fields whose members are
//! case-insensitive and unordered (`Accept*`) are lowercased and sorted.

use http::HeaderMap;

use crate::directives::list_members;

/// Fields whose list members are case-insensitive and whose order carries
/// no meaning (the preference is in each member's q-value).
const NEGOTIATION: [&str; 4] = [
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
];

/// The request's normalised value of the selecting field `name`
/// (lowercase); `None` when the request does not carry the field — which
/// matches only a stored request that did not carry it either.
pub(crate) fn selecting_value(name: &str, headers: &HeaderMap) -> Option<String> {
    let mut lines = headers.get_all(name).iter().peekable();
    lines.peek()?;
    let mut members: Vec<String> = Vec::new();
    for line in lines {
        // A value that is not text is kept as is (lossy, but only equal
        // bytes give equal text).
        let text = String::from_utf8_lossy(line.as_bytes());
        members.extend(list_members(&text).map(str::to_owned));
    }
    if NEGOTIATION.contains(&name) {
        for m in &mut members {
            m.retain(|c| c != ' ' && c != '\t');
            m.make_ascii_lowercase();
        }
        members.sort_unstable();
    }
    Some(members.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn value(name: &str, lines: &[&'static str]) -> Option<String> {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static(l),
            );
        }
        selecting_value(name, &h)
    }

    #[test]
    fn field_lines_combine_and_whitespace_goes() {
        assert_eq!(value("foo", &["a, b"]), value("foo", &["a", "b"]));
        assert_eq!(value("foo", &["a,   b"]), value("foo", &["a,b"]));
        assert_ne!(value("foo", &["A"]), value("foo", &["a"]));
        assert_eq!(value("foo", &[]), None);
        assert_eq!(value("foo", &[""]), Some(String::new()));
    }

    #[test]
    fn accept_language_ignores_case_order_and_spaces() {
        let a = value("accept-language", &["en-US, fr;q=0.5"]);
        assert_eq!(a, value("accept-language", &["fr; q=0.5,EN-us"]));
        assert_ne!(a, value("accept-language", &["en-US, de;q=0.5"]));
    }
}
