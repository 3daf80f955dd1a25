//! The origin side: redirects, time limits and whole or unread bodies over
//! an [`Origin`] service — by default a pooled hyper client (HTTP/1.1 and
//! HTTP/2, HTTPS through rustls with the aws-lc-rs provider chosen
//! explicitly), or any `tower::Service` a [`CacheLayer`](crate::CacheLayer)
//! wraps.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, LOCATION, PROXY_AUTHORIZATION,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use url::Url;

use crate::body::{Progress, RequestStream, read_whole, within};
use crate::error::{Error, ErrorKind, Result};
use crate::line::RequestLine;
use crate::origin::{Origin, OriginStream, RequestBody};

/// A request on its way to the origin.
pub(crate) struct OriginRequest {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    /// The body, unless the caller streams one (then this is empty).
    pub(crate) body: Bytes,
    pub(crate) timeout: Option<Duration>,
    /// Passed on to the origin service.
    pub(crate) extensions: http::Extensions,
}

/// How the final answer's body comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyMode {
    /// Read whole, within the request's time limit.
    Whole,
    /// Unread: the caller streams it.
    Unread,
}

/// An origin answer's body.
pub(crate) enum OriginBody {
    Whole(Bytes),
    Unread(OriginStream),
    /// Read in part by the client (to store it), the rest unread.
    Partial(Bytes, OriginStream),
}

/// The origin's final answer, after redirects.
pub(crate) struct OriginResponse {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) body: OriginBody,
    /// The URL that gave this answer.
    pub(crate) url: Url,
    /// The method of the last request (a 303 turns POST into GET).
    pub(crate) method: Method,
    /// How many requests were sent (1 + redirects followed).
    pub(crate) hops: u64,
}

/// How the transport is set up.
#[derive(Clone, Debug)]
pub(crate) struct TransportOptions {
    pub(crate) follow_redirects: bool,
    pub(crate) max_redirects: usize,
    pub(crate) timeout: Option<Duration>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) pool_idle_timeout: Duration,
    pub(crate) pool_max_idle_per_host: usize,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    /// Requests go to the origin service with a path-and-query target and
    /// a `Host` header (as a server receives them), not an absolute URI.
    pub(crate) origin_form: bool,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            follow_redirects: true,
            max_redirects: 10,
            timeout: None,
            connect_timeout: Some(Duration::from_secs(10)),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
            tls: None,
            origin_form: false,
        }
    }
}

/// The origin service with redirects and time limits around it.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    origin: Origin,
    options: TransportOptions,
    /// The origin service may follow redirects itself (a client service,
    /// such as reqwest's, naming the URL that answered); never the
    /// built-in hyper client or a server's service.
    service_redirects: bool,
}

/// rustls settings with the aws-lc-rs provider (chosen explicitly, never by
/// crate features) and the platform's roots; a machine without roots gets
/// an empty store (HTTPS then fails with a certificate error, plain HTTP
/// still works) and a warning.
fn default_tls() -> Result<rustls::ClientConfig> {
    use hyper_rustls::ConfigBuilderExt as _;
    let builder = || {
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            Error::new(
                ErrorKind::Configuration,
                format!("TLS protocol versions: {e}"),
            )
            .with_source(e)
        })
    };
    match builder()?.with_native_roots() {
        Ok(b) => Ok(b.with_no_client_auth()),
        Err(e) => {
            tracing::warn!(error = %e, "respcache-http: no native root certificates; HTTPS origins will fail verification");
            Ok(builder()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth())
        }
    }
}

impl Transport {
    /// Requests go through `origin`; the connection options do not apply.
    pub(crate) fn over(origin: Origin, options: TransportOptions) -> Self {
        Transport {
            origin,
            service_redirects: !options.origin_form,
            options,
        }
    }

    /// Whether an answer may come from another URL than the request's: a
    /// redirect followed here or by the origin service. Only then may a
    /// stored redirect pointer answer a request (a proxy passes redirects
    /// back, whoever else shares its cache).
    pub(crate) fn may_redirect(&self) -> bool {
        self.options.follow_redirects || self.service_redirects
    }

    /// Requests go through the built-in hyper client, which the connection
    /// options configure.
    pub(crate) fn new(options: TransportOptions) -> Result<Self> {
        let tls = match &options.tls {
            Some(c) => (**c).clone(),
            None => default_tls()?,
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(options.connect_timeout);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(options.pool_idle_timeout)
            .pool_max_idle_per_host(options.pool_max_idle_per_host)
            .build(https);
        Ok(Transport {
            origin: Origin::Hyper(client),
            options,
            service_redirects: false,
        })
    }

    /// The time limit of a request: its own, else the client's.
    pub(crate) fn time_limit(&self, own: Option<Duration>) -> Option<Duration> {
        own.or(self.options.timeout)
    }

    /// Sends `request` (with `stream` as its body when given), following
    /// up to `max_redirects` redirects (a streamed body is sent once: a
    /// redirect that would resend it is returned instead of followed).
    pub(crate) async fn send(
        &self,
        request: OriginRequest,
        mut stream: Option<RequestStream>,
        line: &RequestLine<'_>,
        mode: BodyMode,
    ) -> Result<OriginResponse> {
        let mut req = request;
        let mut hops = 0u64;
        let mut redirects = 0usize;
        loop {
            hops += 1;
            let timeout = self.time_limit(req.timeout);
            // A whole body stays for a redirect to resend; a stream goes,
            // and the time limit counts from its last chunk.
            let streamed = stream.is_some();
            let progress = streamed.then(Progress::new);
            let body = match (stream.take(), &progress) {
                (Some(s), Some(p)) => RequestBody(Either::Right(p.watch(s))),
                (Some(s), None) => RequestBody(Either::Right(s)),
                (None, _) => RequestBody(Either::Left(Full::new(req.body.clone()))),
            };
            let one = async {
                let (status, version, headers, incoming, answered_by) =
                    self.send_once(&req, body).await?;
                let body = match mode {
                    BodyMode::Whole => OriginBody::Whole(read_whole(incoming).await?),
                    BodyMode::Unread => OriginBody::Unread(incoming),
                };
                Ok::<_, Error>((status, version, headers, body, answered_by))
            };
            let (status, version, headers, body, answered_by) = match timeout {
                Some(t) => within(t, progress.as_deref(), one).await.map_err(|()| {
                    let what = if streamed {
                        format!("the request body and the answer made no progress for {t:?}")
                    } else {
                        format!("no answer within {t:?}")
                    };
                    Error::new(ErrorKind::Timeout, what).with_url(line.text())
                })?,
                None => one.await,
            }
            .map_err(|e| e.with_url(line.text()))?;
            let to_get = status == StatusCode::SEE_OTHER
                || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                    && req.method == Method::POST);
            let next = if self.options.follow_redirects
                && status.is_redirection()
                && status != StatusCode::NOT_MODIFIED
                && (to_get || !streamed)
            {
                headers
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| req.url.join(l).ok())
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
            } else {
                None
            };
            let Some(next) = next else {
                return Ok(OriginResponse {
                    status,
                    version,
                    headers,
                    body,
                    // A service that follows redirects itself (a reqwest
                    // client) names the URL that answered.
                    url: answered_by.unwrap_or(req.url),
                    method: req.method,
                    hops,
                });
            };
            redirects += 1;
            if redirects > self.options.max_redirects {
                return Err(Error::new(
                    ErrorKind::TooManyRedirects,
                    format!("more than {} redirects", self.options.max_redirects),
                )
                .with_url(line.text()));
            }
            if to_get {
                if req.method != Method::HEAD {
                    req.method = Method::GET;
                }
                req.body = Bytes::new();
                req.headers.remove(CONTENT_TYPE);
                req.headers.remove(CONTENT_LENGTH);
            }
            if next.origin() != req.url.origin() {
                for h in [AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE] {
                    req.headers.remove(h);
                }
            }
            req.url = next;
        }
    }

    async fn send_once(
        &self,
        req: &OriginRequest,
        body: RequestBody,
    ) -> Result<(StatusCode, Version, HeaderMap, OriginStream, Option<Url>)> {
        let mut url = req.url.clone();
        url.set_fragment(None);
        let target = if self.options.origin_form {
            &url[url::Position::BeforePath..url::Position::AfterQuery]
        } else {
            url.as_str()
        };
        let uri: http::Uri = target.parse().map_err(|e: http::uri::InvalidUri| {
            Error::new(ErrorKind::InvalidUrl, e.to_string()).with_source(e)
        })?;
        let mut builder = http::Request::builder().method(req.method.clone()).uri(uri);
        if let Some(h) = builder.headers_mut() {
            *h = req.headers.clone();
            if self.options.origin_form
                && !h.contains_key(HOST)
                && let Ok(host) =
                    HeaderValue::from_str(&url[url::Position::BeforeHost..url::Position::AfterPort])
            {
                h.insert(HOST, host);
            }
        }
        if let Some(x) = builder.extensions_mut() {
            *x = req.extensions.clone();
        }
        let request = builder
            .body(body)
            .map_err(|e| Error::new(ErrorKind::InvalidRequest, e.to_string()).with_source(e))?;
        let response = self.origin.call(request).await?;
        let (mut parts, body) = response.into_parts();
        let answered_by = parts
            .extensions
            .remove::<crate::response::FinalUrl>()
            .map(|u| u.0);
        Ok((
            parts.status,
            parts.version,
            parts.headers,
            body,
            answered_by,
        ))
    }
}
