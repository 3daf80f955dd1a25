//! [`StreamingResponse`]: an answer whose body may still be arriving.

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, StatusCode, Version};
use respcache_core::Timestamp;
use url::Url;

use crate::body::ResponseBody;
use crate::error::Result;
use crate::response::{CachedResponse, Tail};
use crate::status::{CacheOutcome, CacheStatus};

/// What [`RequestBuilder::send_streaming`](crate::RequestBuilder::send_streaming)
/// returns: the head of the answer (as a [`CachedResponse`] shows it) and a
/// [`ResponseBody`] that is whole or still streaming from the origin.
///
/// ```no_run
/// # async fn demo(client: respcache_http::CachedClient) -> respcache_http::Result<()> {
/// let response = client.get("https://api.example.com/v1/export").send_streaming().await?;
/// println!("{} {}", response.status(), response.cache_status());
/// let all = response.into_cached().await?; // or stream `into_body()`
/// # Ok(()) }
/// ```
pub struct StreamingResponse {
    /// The head; its body is empty (the body is `body`).
    head: CachedResponse,
    body: ResponseBody,
}

impl StreamingResponse {
    pub(crate) fn new(head: CachedResponse, body: ResponseBody) -> Self {
        StreamingResponse { head, body }
    }

    /// The answer to a streaming request: what was read of its body, then
    /// the unread rest (with `idle` as the time limit for each chunk).
    pub(crate) fn of(mut head: CachedResponse, idle: Option<Duration>) -> Self {
        let body = body_of(&mut head, idle);
        StreamingResponse::new(head, body)
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.head.status()
    }

    /// The HTTP version the origin answered with (as stored, for a hit).
    pub fn version(&self) -> Version {
        self.head.version()
    }

    /// The headers (with an updated `Age` when served from the cache).
    pub fn headers(&self) -> &HeaderMap {
        self.head.headers()
    }

    /// The URL that gave this answer (after redirects).
    pub fn url(&self) -> Option<&Url> {
        self.head.url()
    }

    /// Whether the answer came from the cache.
    pub fn from_cache(&self) -> bool {
        self.head.from_cache()
    }

    /// When the answer was stored, if it was.
    pub fn created_at(&self) -> Option<Timestamp> {
        self.head.created_at()
    }

    /// When the stored answer expires, if it was stored with an expiry.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.head.expires_at()
    }

    /// Whether a stored answer was revalidated with the origin (a `304`).
    pub fn revalidated(&self) -> bool {
        self.head.revalidated()
    }

    /// The encoded key the answer is (or would be) stored under.
    pub fn cache_key(&self) -> Option<&str> {
        self.head.cache_key()
    }

    /// What the cache did, as an RFC 9211 `Cache-Status` member.
    pub fn cache_status(&self) -> &CacheStatus {
        self.head.cache_status()
    }

    /// What the cache did.
    pub fn outcome(&self) -> CacheOutcome {
        self.head.outcome()
    }

    /// The body.
    pub fn body(&self) -> &ResponseBody {
        &self.body
    }

    /// The body, to read from.
    pub fn body_mut(&mut self) -> &mut ResponseBody {
        &mut self.body
    }

    /// The body alone.
    pub fn into_body(self) -> ResponseBody {
        self.body
    }

    /// The head (its body empty) and the body, apart: for the proxy, which
    /// moves the head's fields into its own answer.
    pub(crate) fn into_parts(self) -> (CachedResponse, ResponseBody) {
        (self.head, self.body)
    }

    /// Reads the rest of the body: the same answer as a [`CachedResponse`].
    ///
    /// # Errors
    ///
    /// When reading the body fails ([`Connection`](crate::ErrorKind::Connection),
    /// [`Timeout`](crate::ErrorKind::Timeout)).
    pub async fn into_cached(self) -> Result<CachedResponse> {
        let mut head = self.head;
        head.body = self.body.bytes().await?;
        Ok(head)
    }

    /// Converts into an `http::Response` with the streaming body; the final
    /// URL and the cache status go into its extensions
    /// ([`FinalUrl`](crate::FinalUrl), [`CacheStatus`]).
    pub fn into_http(self) -> http::Response<ResponseBody> {
        self.head.into_http_with(self.body)
    }
}

/// The body of the answer to a streaming request, taken out of its head:
/// what was read, then the unread rest (with `idle` as the time limit for
/// each chunk).
pub(crate) fn body_of(head: &mut CachedResponse, idle: Option<Duration>) -> ResponseBody {
    let prefix = std::mem::take(&mut head.body);
    let rest = head.tail.take();
    head.tail = Tail::default();
    match rest {
        Some(rest) => ResponseBody::streaming(prefix, rest, idle),
        None => ResponseBody::full(prefix),
    }
}

impl fmt::Debug for StreamingResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamingResponse")
            .field("head", &self.head)
            .field("body", &self.body)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::FinalUrl;
    use bytes::Bytes;

    #[test]
    fn into_http_keeps_head_extensions_and_body() {
        let head = CachedResponse::from(
            http::Response::builder()
                .status(201)
                .header("x-a", "1")
                .body(Bytes::new())
                .unwrap(),
        );
        let r = StreamingResponse::new(head, ResponseBody::full("abc"));
        assert_eq!(r.status(), 201);
        assert!(r.body().is_whole());
        let http = r.into_http();
        assert_eq!(http.headers()["x-a"], "1");
        assert!(http.extensions().get::<CacheStatus>().is_some());
        assert!(http.extensions().get::<FinalUrl>().is_none());
    }
}
