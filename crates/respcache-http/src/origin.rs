//! The seam between the cache and whatever carries requests to the origin:
//! the built-in hyper client, called in place, or a boxed `tower::Service`
//! taking [`RequestBody`] requests (any service a
//! [`CacheLayer`](crate::CacheLayer) wraps); both answer with a boxed body.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Either, Full};
use hyper::body::{Body, Frame, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;

use crate::body::{BoxError, RequestStream};
use crate::error::{Error, ErrorKind};
use crate::sync_body::SyncBody;

/// The built-in client: hyper-util's pooled client, HTTPS through rustls.
pub(crate) type HyperClient = Client<HttpsConnector<HttpConnector>, RequestBody>;

/// A caller's service, boxed.
type BoxedService =
    BoxCloneSyncService<http::Request<RequestBody>, http::Response<OriginStream>, Error>;

/// What requests to the origin go through.
#[derive(Clone, Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per client, held in place; boxing the client adds a pointer to follow per request"
)]
pub(crate) enum Origin {
    /// The built-in client, called in place: a request clones no service
    /// and boxes no future of its own (hyper-util's client boxes one).
    Hyper(HyperClient),
    /// A caller's service (see [`origin_of`]).
    Service(BoxedService),
}

impl Origin {
    /// Sends `request` and waits for the answer's head.
    pub(crate) async fn call(
        &self,
        request: http::Request<RequestBody>,
    ) -> Result<http::Response<OriginStream>, Error> {
        match self {
            Origin::Hyper(client) => match client.request(request).await {
                Ok(response) => Ok(response.map(OriginStream::new)),
                Err(e) => Err(connection_error(Box::new(e))),
            },
            Origin::Service(service) => service.clone().oneshot(request).await,
        }
    }
}

/// Boxes a caller's service as an [`Origin`]; its errors become
/// [`ErrorKind::Connection`] errors that name each cause. Its bodies need
/// not be `Sync` (axum's are not).
pub(crate) fn origin_of<S, B>(service: S) -> Origin
where
    S: tower::Service<http::Request<RequestBody>, Response = http::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Origin::Service(BoxedService::new(
        service
            .map_response(|r: http::Response<B>| r.map(OriginStream::send_only))
            .map_err(|e| connection_error(e.into())),
    ))
}

/// A service failure as an error whose text names every cause.
pub(crate) fn connection_error(e: BoxError) -> Error {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    Error::new(ErrorKind::Connection, text).with_source(e)
}

/// The body of a request the cache sends on to the origin: the caller's
/// bytes, or a body that streams.
///
/// This is the request body type a service under a
/// [`CacheLayer`](crate::CacheLayer) receives (hyper-util's legacy
/// `Client<_, RequestBody>` is such a service).
pub struct RequestBody(pub(crate) Either<Full<Bytes>, RequestStream>);

impl RequestBody {
    /// A body held whole.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        RequestBody(Either::Left(Full::new(bytes.into())))
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBody")
            .field("streaming", &matches!(self.0, Either::Right(_)))
            .finish()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// The body of an origin answer, whatever service gave it.
pub(crate) struct OriginStream(BoxBody<Bytes, BoxError>);

impl OriginStream {
    pub(crate) fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        OriginStream(body.map_err(Into::into).boxed())
    }

    /// The body of a service whose bodies may not be `Sync`.
    pub(crate) fn send_only<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        OriginStream::new(SyncBody::new(body.map_err(Into::into).boxed_unsync()))
    }
}

impl Body for OriginStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}
