//! The tags of a response, from its tag headers (`Cache-Tag`, comma
//! separated, as CDNs take it; `Surrogate-Key`, space separated), for
//! purging by tag ([`CachedClient::purge_tag`](crate::CachedClient::purge_tag)).

use http::{HeaderMap, HeaderName};
use respcache_core::Tags;
use respcache_core::tags::{MAX_TAGS, validate_tag};

/// The tag headers read by default.
pub const DEFAULT_TAG_HEADERS: [&str; 2] = ["cache-tag", "surrogate-key"];

/// The tags the `names` headers carry: split on commas and whitespace,
/// invalid ones (control characters, over 256 bytes) left out, at most
/// [`MAX_TAGS`] (the first ones, after sorting), never an error — a
/// response is stored whatever its tag headers say.
pub(crate) fn of(headers: &HeaderMap, names: &[HeaderName]) -> Tags {
    let mut tags: Vec<String> = Vec::new();
    for name in names {
        for value in headers.get_all(name) {
            let Ok(text) = value.to_str() else {
                continue;
            };
            for tag in text.split(|c: char| c == ',' || c.is_ascii_whitespace()) {
                if !tag.is_empty() && validate_tag(tag).is_ok() {
                    tags.push(tag.to_owned());
                }
            }
        }
    }
    if tags.is_empty() {
        return Tags::none();
    }
    tags.sort_unstable();
    tags.dedup();
    if tags.len() > MAX_TAGS {
        tracing::debug!(
            tags = tags.len(),
            kept = MAX_TAGS,
            "respcache-http: a response carries more tags than an entry keeps"
        );
        tags.truncate(MAX_TAGS);
    }
    Tags::new(tags).unwrap_or_else(|_| Tags::none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<HeaderName> {
        DEFAULT_TAG_HEADERS
            .iter()
            .map(|n| HeaderName::from_static(n))
            .collect()
    }

    #[test]
    fn both_headers_both_separators_sorted_once() {
        let mut h = HeaderMap::new();
        h.append("cache-tag", "product-7, catalog".parse().unwrap());
        h.append("cache-tag", "catalog".parse().unwrap());
        h.append("surrogate-key", "price  product-7 summer".parse().unwrap());
        let tags = of(&h, &names());
        assert_eq!(tags.as_slice(), ["catalog", "price", "product-7", "summer"]);
        assert!(of(&HeaderMap::new(), &names()).is_empty());
        assert!(of(&h, &[]).is_empty(), "no tag headers configured");
    }

    #[test]
    fn bad_tags_are_left_out_and_too_many_are_cut() {
        let mut h = HeaderMap::new();
        let long = "x".repeat(300);
        h.append("cache-tag", format!("ok, {long}").parse().unwrap());
        assert_eq!(of(&h, &names()).as_slice(), ["ok"]);
        let many: Vec<String> = (0..100).map(|i| format!("t{i:03}")).collect();
        let mut h = HeaderMap::new();
        h.append("cache-tag", many.join(",").parse().unwrap());
        assert_eq!(of(&h, &names()).len(), MAX_TAGS);
    }
}
