//! Targeted cache control (RFC 9213): a field such as `CDN-Cache-Control`
//! that a gateway cache obeys instead of `Cache-Control` and `Expires`. Its
//! value is a Structured Field dictionary (RFC 8941 §3.2); a value that is
//! not one — an upper-case key, a stray character, a directive of the wrong
//! type (`max-age="10"`) — is ignored as a whole, and `Cache-Control`
//! applies.

use std::time::Duration;

use http::{HeaderMap, HeaderName};

use super::age::MAX_AGE_SECS;
use crate::directives::Directives;

/// The directives of the first targeted field in `names` that `headers`
/// carry with a valid, non-empty value.
pub(crate) fn directives(headers: &HeaderMap, names: &[HeaderName]) -> Option<Directives> {
    names.iter().find_map(|name| {
        let mut text = String::new();
        for line in headers.get_all(name) {
            if !text.is_empty() {
                text.push(',');
            }
            text.push_str(line.to_str().ok()?);
        }
        parse(&text)
    })
}

/// A bare item's kind, as far as the directives care.
enum Item<'a> {
    True,
    Integer(&'a str),
    Other,
}

fn parse(text: &str) -> Option<Directives> {
    let mut d = Directives {
        targeted: true,
        ..Directives::default()
    };
    let mut any = false;
    for member in text.split(',') {
        let member = member.trim_matches(|c| c == ' ' || c == '\t');
        let (key, item) = member_of(member)?;
        any = true;
        let seconds = |item: &Item<'_>| match item {
            Item::Integer(v) if !v.starts_with('-') => Some(Duration::from_secs(
                v.parse::<u64>()
                    .map_or(MAX_AGE_SECS, |s| s.min(MAX_AGE_SECS)),
            )),
            _ => None,
        };
        let flag = |item: &Item<'_>| matches!(item, Item::True);
        match key {
            "max-age" => d.max_age = Some(seconds(&item)?),
            "s-maxage" => d.s_maxage = Some(seconds(&item)?),
            "stale-while-revalidate" => d.stale_while_revalidate = Some(seconds(&item)?),
            "stale-if-error" => d.stale_if_error = Some(seconds(&item)?),
            "no-store" => d.no_store = flag(&item),
            "no-cache" => d.no_cache = flag(&item) || d.no_cache,
            "private" => d.private = flag(&item) || d.private,
            "public" => d.public = flag(&item),
            "must-revalidate" => d.must_revalidate = flag(&item),
            "proxy-revalidate" => d.proxy_revalidate = flag(&item),
            "immutable" => d.immutable = flag(&item),
            _ => {}
        }
    }
    any.then_some(d)
}

/// One dictionary member: its key and bare item (parameters are checked
/// and dropped); `None` when it is not valid RFC 8941 syntax.
fn member_of(member: &str) -> Option<(&str, Item<'_>)> {
    let (head, _params) = match member.split_once(';') {
        Some((h, p)) => (h, Some(p)),
        None => (member, None),
    };
    let (key, value) = match head.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (head, None),
    };
    let mut chars = key.chars();
    let first = chars.next()?;
    if !(first.is_ascii_lowercase() || first == '*')
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.*".contains(c))
    {
        return None;
    }
    let item = match value {
        None => Item::True,
        Some(v) => bare_item(v)?,
    };
    Some((key, item))
}

fn bare_item(v: &str) -> Option<Item<'_>> {
    let digits = v.strip_prefix('-').unwrap_or(v);
    if !digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Item::Integer(v));
    }
    match v {
        "?1" => return Some(Item::True),
        "?0" => return Some(Item::Other),
        _ => {}
    }
    let valid = if let Some(s) = v.strip_prefix('"') {
        s.ends_with('"')
    } else if let Some((int, frac)) = digits.split_once('.') {
        !int.is_empty()
            && int.len() <= 12
            && (1..=3).contains(&frac.len())
            && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    } else if v.starts_with(':') {
        v.len() >= 2 && v.ends_with(':')
    } else {
        let mut cs = v.chars();
        cs.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '*')
            && cs.all(|c| c.is_ascii_graphic() && !"\"(),;<=>?@[\\]{}".contains(c))
    };
    valid.then_some(Item::Other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cdn(v: &'static str) -> Option<Directives> {
        let mut h = HeaderMap::new();
        h.insert("cdn-cache-control", HeaderValue::from_static(v));
        directives(&h, &[HeaderName::from_static("cdn-cache-control")])
    }

    #[test]
    fn valid_dictionaries_give_directives() {
        let d = cdn("max-age=3600").unwrap();
        assert_eq!(d.max_age, Some(Duration::from_secs(3600)));
        assert!(d.targeted);
        assert!(cdn("no-store").unwrap().no_store);
        assert!(cdn("private").unwrap().private);
        assert!(cdn("foobar, max-age=3600").unwrap().max_age.is_some());
        assert_eq!(
            cdn("max-age=99999999999").unwrap().max_age,
            Some(Duration::from_secs(99_999_999_999.min(MAX_AGE_SECS)))
        );
    }

    /// RFC 8941: not a dictionary, or a directive of the wrong type: the
    /// whole field is ignored.
    #[test]
    fn invalid_fields_are_ignored() {
        for bad in [
            "max-age=10000, &&&&&",
            "max-age=\"10000\"",
            "MaX-aGe=3600",
            "max-age =100",
            "max-age= 100",
            "max-age=-1",
        ] {
            assert!(cdn(bad).is_none(), "{bad}");
        }
    }
}
