//! [`RequestLine`]: "METHOD url" (ignored parameters redacted) for logs and
//! error messages, made the first time something needs it — a hit served
//! without logging needs none — and [`RedactedUrl`], a URL that redacts
//! itself only when displayed.

use std::fmt;
use std::sync::OnceLock;

use http::Method;
use url::Url;

use crate::normalize::KeyRules;

/// A request's line, written on first use.
pub(crate) struct RequestLine<'a> {
    rules: &'a KeyRules,
    method: Method,
    url: Url,
    text: OnceLock<String>,
}

impl<'a> RequestLine<'a> {
    pub(crate) fn new(rules: &'a KeyRules, method: &Method, url: &Url) -> Self {
        RequestLine {
            rules,
            method: method.clone(),
            url: url.clone(),
            text: OnceLock::new(),
        }
    }

    /// "METHOD url", the URL redacted.
    pub(crate) fn text(&self) -> &str {
        self.text
            .get_or_init(|| format!("{} {}", self.method, RedactedUrl(self.rules, &self.url)))
    }
}

impl fmt::Display for RequestLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// A URL displayed with the values of ignored parameters redacted.
pub(crate) struct RedactedUrl<'a>(pub(crate) &'a KeyRules, pub(crate) &'a Url);

impl fmt::Display for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.redact_url(self.1), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_redacts_and_is_written_once() {
        let rules = KeyRules::new(&["api_key".to_owned()], &[]);
        let url = Url::parse("http://h/p?api_key=s3cret&q=1#f").unwrap();
        let line = RequestLine::new(&rules, &Method::GET, &url);
        assert_eq!(line.text(), "GET http://h/p?api_key=REDACTED&q=1");
        assert!(std::ptr::eq(line.text(), line.text()));
        assert_eq!(line.to_string(), line.text());
        assert_eq!(
            RedactedUrl(&rules, &url).to_string(),
            "http://h/p?api_key=REDACTED&q=1"
        );
    }
}
