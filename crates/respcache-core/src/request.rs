//! [`Request`]: the parts of an HTTP request a cache key is made from.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use url::Url;

use crate::error::{Error, ErrorKind, Result};

/// The method, URL and headers of a request, as repositories see it.
///
/// ```
/// use respcache_core::Request;
/// let r = Request::get("https://api.example.com/v1/tracks/42")?;
/// assert_eq!(r.url().path(), "/v1/tracks/42");
/// # Ok::<(), respcache_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    method: Method,
    url: Url,
    headers: HeaderMap,
}

impl Request {
    /// A request with no headers.
    pub fn new(method: Method, url: Url) -> Self {
        Request {
            method,
            url,
            headers: HeaderMap::new(),
        }
    }

    /// Parses `url` for a request of `method`; a malformed URL is an
    /// [`ErrorKind::InvalidKey`] error that quotes it.
    pub fn parse(method: Method, url: &str) -> Result<Self> {
        let parsed = Url::parse(url)
            .map_err(|e| Error::new(ErrorKind::InvalidKey, format!("invalid URL {url:?}: {e}")))?;
        Ok(Request::new(method, parsed))
    }

    /// A GET request for `url`.
    pub fn get(url: &str) -> Result<Self> {
        Request::parse(Method::GET, url)
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}
