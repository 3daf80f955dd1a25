//! [`RequestBuilder`]: builds one request in the style of reqwest and sends
//! it through the cache.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{self, Either, FutureExt as _};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use respcache_core::Expiry;
use serde::Serialize;
use url::Url;

use crate::body::{BoxError, RequestStream, box_request_body};
use crate::builder::CacheMode;
use crate::client::CachedClient;
use crate::error::{Error, ErrorKind, Result};
use crate::response::CachedResponse;
use crate::streaming::StreamingResponse;
use crate::transport::OriginRequest;

/// Per-request cache settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PerRequest {
    pub(crate) expiry: Option<Expiry>,
    pub(crate) refresh: bool,
    pub(crate) force_refresh: bool,
    pub(crate) only_if_cached: bool,
    pub(crate) timeout: Option<Duration>,
    /// This request's cache mode, over the client's.
    pub(crate) mode: Option<CacheMode>,
}

/// A request ready to go.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) per: PerRequest,
    /// The caller takes a streamed body ([`RequestBuilder::send_streaming`]).
    pub(crate) streaming: bool,
    /// The caller's request extensions, passed on to the origin service
    /// (a front-end over a tower service: axum's `ConnectInfo`, ...).
    pub(crate) extensions: http::Extensions,
}

impl Prepared {
    /// The request as it goes to the origin (its body whole).
    pub(crate) fn origin_request(&self) -> OriginRequest {
        OriginRequest {
            method: self.method.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
            timeout: self.per.timeout,
            extensions: self.extensions.clone(),
        }
    }
}

/// One request being built. Errors (a bad URL, header or body) are kept
/// and returned by [`send`](Self::send).
///
/// ```no_run
/// # async fn demo(client: respcache_http::CachedClient) -> respcache_http::Result<()> {
/// use std::time::Duration;
/// let tracks: serde_json::Value = client
///     .get("https://api.example.com/v1/tracks")
///     .header("accept", "application/json")
///     .query(&[("ids", "7ouMYWpwJ422jRcDASZB7P"), ("market", "SE")])
///     .expire_after(Duration::from_secs(600))
///     .send()
///     .await?
///     .json()?;
/// # Ok(()) }
/// ```
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder {
    client: CachedClient,
    /// Boxed: the request moves through several futures (the builder's,
    /// the client's, the engine's, the exchange); one pointer moves
    /// instead of ~300 bytes at each, and the hit future stays small.
    request: Result<Box<Prepared>>,
    /// A body sent as it is produced ([`body_stream`](Self::body_stream)).
    stream: Option<RequestStream>,
}

impl fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.request {
            Ok(r) => f
                .debug_struct("RequestBuilder")
                .field("method", &r.method)
                .field("url", &self.client.redact(&r.url).as_str())
                .finish_non_exhaustive(),
            Err(e) => f.debug_struct("RequestBuilder").field("error", e).finish(),
        }
    }
}

fn parse_url(url: &str) -> Result<Url> {
    let parsed = crate::parsed_urls::parse(url)
        .map_err(|e| Error::new(ErrorKind::InvalidUrl, format!("{url:?}: {e}")).with_source(e))?;
    match parsed.scheme() {
        "http" | "https" if parsed.host_str().is_some() => Ok(parsed),
        other => Err(Error::new(
            ErrorKind::InvalidUrl,
            format!("{url:?}: scheme {other:?} without a host is not HTTP"),
        )),
    }
}

impl RequestBuilder {
    pub(crate) fn new(client: CachedClient, method: Method, url: &str) -> Self {
        let request = parse_url(url).map(|url| {
            Box::new(Prepared {
                method,
                url,
                headers: HeaderMap::new(),
                body: Bytes::new(),
                per: PerRequest::default(),
                streaming: false,
                extensions: http::Extensions::new(),
            })
        });
        RequestBuilder {
            client,
            request,
            stream: None,
        }
    }

    /// Sets the extensions the request carries to the origin service.
    pub(crate) fn extensions(self, extensions: http::Extensions) -> Self {
        self.map(|r| {
            r.extensions = extensions;
            Ok(())
        })
    }

    fn map(mut self, f: impl FnOnce(&mut Prepared) -> Result<()>) -> Self {
        if let Ok(r) = &mut self.request
            && let Err(e) = f(r)
        {
            self.request = Err(e);
        }
        self
    }

    /// Adds a header (appended: a name may repeat).
    pub fn header<K, V>(self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        K::Error: Into<http::Error>,
        V: TryInto<HeaderValue>,
        V::Error: Into<http::Error>,
    {
        self.map(|r| {
            let bad = |e: http::Error| {
                Error::new(ErrorKind::InvalidRequest, e.to_string()).with_source(e)
            };
            let name = name.try_into().map_err(|e| bad(e.into()))?;
            let value = value.try_into().map_err(|e| bad(e.into()))?;
            r.headers.append(name, value);
            Ok(())
        })
    }

    /// Adds every header of `headers`.
    pub fn headers(self, headers: HeaderMap) -> Self {
        self.map(|r| {
            if r.headers.is_empty() {
                // Nothing to append to: the map itself.
                r.headers = headers;
            } else {
                for (name, value) in &headers {
                    r.headers.append(name.clone(), value.clone());
                }
            }
            Ok(())
        })
    }

    /// Sets `Authorization: Bearer <token>` (an ignored header by default:
    /// never in a key, redacted in what is stored).
    pub fn bearer_auth(self, token: impl fmt::Display) -> Self {
        self.map(|r| {
            let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| Error::new(ErrorKind::InvalidRequest, e.to_string()).with_source(e))?;
            v.set_sensitive(true);
            r.headers.insert(AUTHORIZATION, v);
            Ok(())
        })
    }

    /// Appends query parameters: a map, a struct, or a sequence of pairs
    /// (anything serde serialises to one of those).
    pub fn query<T: Serialize + ?Sized>(self, query: &T) -> Self {
        self.map(|r| {
            let pairs = to_pairs(query)?;
            if !pairs.is_empty() {
                r.url.query_pairs_mut().extend_pairs(pairs);
            }
            Ok(())
        })
    }

    /// Sets a JSON body and `Content-Type: application/json`.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.stream = None;
        self.map(|r| {
            let bytes = serde_json::to_vec(body).map_err(|e| {
                Error::new(ErrorKind::InvalidRequest, format!("JSON body: {e}")).with_source(e)
            })?;
            r.body = Bytes::from(bytes);
            r.headers
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(())
        })
    }

    /// Sets a form body (`application/x-www-form-urlencoded`).
    pub fn form<T: Serialize + ?Sized>(mut self, form: &T) -> Self {
        self.stream = None;
        self.map(|r| {
            let pairs = to_pairs(form)?;
            let text = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            r.body = Bytes::from(text);
            r.headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            Ok(())
        })
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.stream = None;
        self.map(|r| {
            r.body = body.into();
            Ok(())
        })
    }

    /// Sets a body sent as it is produced (an upload, a proxied request
    /// body), instead of one held whole in memory.
    ///
    /// It streams to the origin when the request goes past the cache (its
    /// method is not one the cache stores: POST, PUT, PATCH, DELETE… by
    /// default). When the cache may answer the request, the body is part of
    /// its key, so it is read first — up to
    /// [`max_body_size`](crate::CachedClientBuilder::max_body_size) (else
    /// [`STREAMING_BUFFER_LIMIT`](crate::STREAMING_BUFFER_LIMIT)); a larger
    /// body sends the request past the cache, streaming on from what was
    /// read. A streamed body is sent once:
    /// a `307`/`308` redirect that would resend it is returned, not
    /// followed. The time limit ([`timeout`](Self::timeout)) counts from
    /// the body's last chunk: an upload that keeps moving is never cut off.
    pub fn body_stream<B>(mut self, body: B) -> Self
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.stream = Some(box_request_body(body));
        self.map(|r| {
            r.body = Bytes::new();
            Ok(())
        })
    }

    /// A time limit for this request's origin requests.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.map(|r| {
            r.per.timeout = Some(timeout);
            Ok(())
        })
    }

    /// How long this response stays fresh, overriding the response's headers
    /// and the client's settings.
    pub fn expire_after(self, expiry: impl Into<Expiry>) -> Self {
        let expiry = expiry.into();
        self.map(|r| {
            r.per.expiry = Some(expiry);
            Ok(())
        })
    }

    /// Revalidate a stored response with the origin even when it is fresh
    /// (a conditional request when it has validators).
    pub fn refresh(self) -> Self {
        self.map(|r| {
            r.per.refresh = true;
            Ok(())
        })
    }

    /// Ignore any stored response: fetch anew and store the answer.
    pub fn force_refresh(self) -> Self {
        self.map(|r| {
            r.per.force_refresh = true;
            Ok(())
        })
    }

    /// This request's cache mode, over the client's:
    /// [`Disabled`](CacheMode::Disabled) sends it straight to the origin
    /// (nothing read, written or invalidated), [`ReadOnly`](CacheMode::ReadOnly)
    /// reads the cache but writes nothing, [`ReadWrite`](CacheMode::ReadWrite)
    /// reads and writes even on a read-only client.
    pub fn mode(self, mode: CacheMode) -> Self {
        self.map(|r| {
            r.per.mode = Some(mode);
            Ok(())
        })
    }

    /// Answer only from the cache: a usable stored response, or a
    /// `504 Gateway Timeout`; never an origin request.
    pub fn only_if_cached(self) -> Self {
        self.map(|r| {
            r.per.only_if_cached = true;
            Ok(())
        })
    }

    /// Sends the request through the cache.
    ///
    /// # Errors
    ///
    /// [`InvalidUrl`](ErrorKind::InvalidUrl) or
    /// [`InvalidRequest`](ErrorKind::InvalidRequest) for what was built
    /// wrong; [`Connection`](ErrorKind::Connection),
    /// [`Timeout`](ErrorKind::Timeout) or
    /// [`TooManyRedirects`](ErrorKind::TooManyRedirects) when the origin
    /// fails and no stale response may stand in. Cache failures are never
    /// errors here.
    pub fn send(self) -> impl Future<Output = Result<CachedResponse>> + Send + 'static {
        // Not an `async fn` (which keeps its argument twice in the future),
        // nor a block around the engine's future: the engine's future itself
        // (or the request's error), so a hit moves and polls nothing more.
        let RequestBuilder {
            client,
            request,
            stream,
        } = self;
        match request {
            Ok(request) => Either::Left(client.execute(request, stream)),
            Err(e) => Either::Right(future::ready(Err(e))),
        }
    }

    /// Sends the request through the cache and returns as soon as the
    /// answer's head is in, with a body that streams: a
    /// [`StreamingResponse`].
    ///
    /// A stored answer comes whole. So does an origin answer the rules let
    /// the cache keep and that a stored copy could serve again (fresh for a
    /// while, or with a validator, or usable stale): the cache needs all of
    /// it to store it, up to
    /// [`max_body_size`](crate::CachedClientBuilder::max_body_size) (or the
    /// backend's own limit, or [`STREAMING_BUFFER_LIMIT`](crate::STREAMING_BUFFER_LIMIT)
    /// when neither is set). Every other body streams from its first byte —
    /// one too large to keep (by `Content-Length`), one the rules do not
    /// let the cache keep or that could never be served again (`no-cache`
    /// without a validator, no cache headers), an event stream
    /// (`text/event-stream`), an answer to a method the cache does not
    /// store — and so does a storable body that turns out larger than the
    /// limit (then not stored). Memory per request is bounded by that limit.
    ///
    /// The time limit ([`timeout`](Self::timeout)) applies to each chunk of
    /// a streaming body, in both directions: an upload or a download that
    /// keeps moving is never cut off.
    ///
    /// ```no_run
    /// # async fn demo(client: respcache_http::CachedClient) -> respcache_http::Result<()> {
    /// use http_body_util::BodyExt as _;
    ///
    /// let response = client.get("https://downloads.example.com/big.iso").send_streaming().await?;
    /// let mut body = response.into_body();
    /// let mut total = 0;
    /// while let Some(frame) = body.frame().await {
    ///     if let Ok(chunk) = frame?.into_data() {
    ///         total += chunk.len();
    ///     }
    /// }
    /// println!("{total} bytes");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send); errors while the body streams come from the
    /// body itself.
    pub fn send_streaming(
        self,
    ) -> impl Future<Output = Result<StreamingResponse>> + Send + 'static {
        self.send_then(StreamingResponse::of)
    }

    /// Sends as [`send_streaming`](Self::send_streaming) and hands the
    /// answer's head (its body read so far, the rest in its tail) and the
    /// time limit for each chunk to `finish`: one conversion on the way out,
    /// not one per wrapper (a hit's response is moved once less for each).
    pub(crate) fn send_then<T: Send + 'static>(
        self,
        finish: fn(CachedResponse, Option<Duration>) -> T,
    ) -> impl Future<Output = Result<T>> + Send + 'static {
        let RequestBuilder {
            client,
            request,
            stream,
        } = self;
        match request {
            Ok(mut request) => {
                let idle = client.streaming(&mut request);
                let head = client.execute(request, stream);
                Either::Left(head.map(move |head| Ok(finish(head?, idle))))
            }
            Err(e) => Either::Right(future::ready(Err(e))),
        }
    }
}

fn to_pairs<T: Serialize + ?Sized>(value: &T) -> Result<Vec<(String, String)>> {
    let bad = |msg: String| Error::new(ErrorKind::InvalidRequest, msg);
    let v = serde_json::to_value(value).map_err(|e| bad(format!("parameters: {e}")))?;
    let scalar = |v: &serde_json::Value| -> Result<String> {
        match v {
            serde_json::Value::String(s) => Ok(s.clone()),
            serde_json::Value::Number(n) => Ok(n.to_string()),
            serde_json::Value::Bool(b) => Ok(b.to_string()),
            other => Err(bad(format!("parameter value {other} is not a scalar"))),
        }
    };
    match &v {
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| Ok((k.clone(), scalar(v)?)))
            .collect(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| match item.as_array().map(Vec::as_slice) {
                Some([k, v]) => Ok((scalar(k)?, scalar(v)?)),
                _ => Err(bad(format!("parameter {item} is not a (name, value) pair"))),
            })
            .collect(),
        serde_json::Value::Null => Ok(Vec::new()),
        other => Err(bad(format!(
            "parameters must be a map or pairs, not {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_from_maps_structs_and_tuples() {
        #[derive(Serialize)]
        struct Q {
            limit: u32,
            market: &'static str,
            skip: Option<u8>,
        }
        assert_eq!(
            to_pairs(&Q {
                limit: 5,
                market: "SE",
                skip: None
            })
            .unwrap(),
            vec![
                ("limit".to_owned(), "5".to_owned()),
                ("market".to_owned(), "SE".to_owned())
            ]
        );
        assert_eq!(to_pairs(&[("a", 1), ("a", 2)]).unwrap().len(), 2);
        assert!(to_pairs(&3).is_err());
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(parse_url("https://example.com/x").is_ok());
        for bad in [
            "not a url",
            "ftp://example.com/",
            "mailto:a@b.c",
            "/relative",
        ] {
            assert_eq!(
                parse_url(bad).err().map(|e| e.kind()),
                Some(ErrorKind::InvalidUrl),
                "{bad}"
            );
        }
    }
}
