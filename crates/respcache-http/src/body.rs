//! Streamed bodies: [`ResponseBody`], the body of a
//! [`StreamingResponse`](crate::StreamingResponse), and the boxed request
//! body [`RequestBuilder::body_stream`](crate::RequestBuilder::body_stream)
//! takes.

use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::{Error, ErrorKind, Result};
use crate::origin::OriginStream;

/// The error type a streamed request body may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body sent as it is produced.
pub(crate) type RequestStream = UnsyncBoxBody<Bytes, BoxError>;

/// The body of a [`StreamingResponse`](crate::StreamingResponse): either
/// whole (a stored answer, or an origin answer read whole to be stored), or
/// the origin's body passed on as it arrives.
///
/// It is an [`http_body::Body`](hyper::body::Body), so it can be handed to
/// a hyper server as it is, or read with
/// [`http_body_util::BodyExt`](https://docs.rs/http-body-util) (`frame()`,
/// `collect()`, `into_data_stream()`).
///
/// While streaming, each chunk must arrive within the request's time limit
/// ([`timeout`](crate::CachedClientBuilder::timeout) or
/// [`RequestBuilder::timeout`](crate::RequestBuilder::timeout)), else the
/// body fails with [`ErrorKind::Timeout`]; a connection that breaks fails
/// it with [`ErrorKind::Connection`].
pub struct ResponseBody {
    /// Bytes already read (the whole body when `rest` is `None`).
    prefix: Option<Bytes>,
    rest: Option<OriginStream>,
    idle: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl ResponseBody {
    /// A body that is whole already.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        ResponseBody {
            prefix: (!bytes.is_empty()).then_some(bytes),
            rest: None,
            idle: None,
            timer: None,
        }
    }

    /// `prefix`, then whatever `rest` still yields.
    pub(crate) fn streaming(prefix: Bytes, rest: OriginStream, idle: Option<Duration>) -> Self {
        ResponseBody {
            prefix: (!prefix.is_empty()).then_some(prefix),
            rest: Some(rest),
            idle,
            timer: None,
        }
    }

    /// Whether the whole body is in memory already (nothing left to read
    /// from the origin).
    pub fn is_whole(&self) -> bool {
        self.rest.is_none()
    }

    /// Reads the rest of the body and returns all of it.
    ///
    /// # Errors
    ///
    /// As reading the body frame by frame: [`ErrorKind::Connection`] or
    /// [`ErrorKind::Timeout`].
    pub async fn bytes(self) -> Result<Bytes> {
        Ok(self.collect().await?.to_bytes())
    }
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> Self {
        ResponseBody::full(bytes)
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("buffered", &self.prefix.as_ref().map_or(0, Bytes::len))
            .field("streaming", &self.rest.is_some())
            .finish()
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        if let Some(prefix) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        let Some(rest) = this.rest.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(rest).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer = None;
                if frame.is_none() {
                    this.rest = None;
                }
                Poll::Ready(frame.map(|f| {
                    f.map_err(|e| {
                        Error::new(
                            ErrorKind::Connection,
                            format!("reading the body failed: {e}"),
                        )
                        .with_source(e)
                    })
                }))
            }
            Poll::Pending => {
                let Some(idle) = this.idle else {
                    return Poll::Pending;
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.rest = None;
                        this.timer = None;
                        Poll::Ready(Some(Err(Error::new(
                            ErrorKind::Timeout,
                            format!("no body data within {idle:?}"),
                        ))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let buffered = self.prefix.as_ref().map_or(0, |b| b.len() as u64);
        let rest = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint);
        // Upper first: `set_lower` refuses a lower bound above the upper.
        let mut hint = SizeHint::new();
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(buffered));
        }
        hint.set_lower(rest.lower().saturating_add(buffered));
        hint
    }
}

/// The bytes of `buf` in an allocation of their size: a grown buffer can
/// hold up to twice what it has, for as long as the body is kept.
fn tight(buf: bytes::BytesMut) -> Bytes {
    if buf.capacity() > buf.len() + buf.len() / 8 {
        Bytes::copy_from_slice(&buf)
    } else {
        buf.freeze()
    }
}

/// How much of a body was read.
pub(crate) enum Read<B> {
    /// All of it.
    Whole(Bytes),
    /// The first `limit` bytes or more, then the rest unread.
    Partial(Bytes, B),
}

/// The most of a declared length (`Content-Length`, the origin's word)
/// reserved before the body arrives; a longer body grows the buffer as it
/// comes, and an origin that declares more than it sends costs no more.
const RESERVE_AT_MOST: usize = 4 << 20;

/// Reads all of `body` into bytes of their own.
///
/// Never a slice of the connection's read buffer, as collecting hyper's
/// frames gives for a body that came in one read: a kept answer would hold
/// the whole buffer (8 KiB or more for a 1 KiB body) for as long as it is
/// stored.
pub(crate) async fn read_whole<B>(body: B) -> Result<Bytes>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    match read_up_to(body, usize::MAX, None).await? {
        Read::Whole(b) => Ok(b),
        // No more than `usize::MAX` bytes fit in memory.
        Read::Partial(..) => Err(Error::new(
            ErrorKind::Internal,
            "a body larger than the address space",
        )),
    }
}

/// Reads `body` until its end or until more than `limit` bytes are in hand,
/// each frame within `idle`. A whole body is in bytes of its own (see
/// [`read_whole`]).
pub(crate) async fn read_up_to<B>(
    mut body: B,
    limit: usize,
    idle: Option<Duration>,
) -> Result<Read<B>>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    // An exact length (checked against the limit already) is reserved at
    // once, up to `RESERVE_AT_MOST`; a chunked body grows the buffer as it
    // comes.
    let reserve = body.size_hint().exact().map_or(0, |n| {
        usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(limit)
            .min(RESERVE_AT_MOST)
    });
    let mut buf = bytes::BytesMut::with_capacity(reserve);
    loop {
        let next = body.frame();
        let frame = match idle {
            Some(t) => tokio::time::timeout(t, next).await.map_err(|_| {
                Error::new(ErrorKind::Timeout, format!("no body data within {t:?}"))
            })?,
            None => next.await,
        };
        match frame {
            None => return Ok(Read::Whole(tight(buf))),
            Some(Err(e)) => {
                let e: BoxError = e.into();
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!("reading the body failed: {e}"),
                )
                .with_source(e));
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    if buf.len() > limit {
                        return Ok(Read::Partial(buf.freeze(), body));
                    }
                }
            }
        }
    }
}

/// When a streamed request body last moved: the time limit of a request
/// whose body streams counts from there, so an upload that keeps going is
/// never cut off, and one that stalls (its producer, or an origin that stops
/// reading) is.
#[derive(Debug)]
pub(crate) struct Progress {
    start: Instant,
    /// Milliseconds from `start` to the last chunk taken.
    last_ms: AtomicU64,
}

impl Progress {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Progress {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// When the body last moved (its start, before the first chunk).
    pub(crate) fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// `body`, recording each chunk (and its end) here.
    pub(crate) fn watch(self: &Arc<Self>, body: RequestStream) -> RequestStream {
        box_request_body(Watched {
            inner: body,
            progress: Arc::clone(self),
        })
    }
}

/// A request body that records its progress.
struct Watched {
    inner: RequestStream,
    progress: Arc<Progress>,
}

impl Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if polled.is_ready() {
            self.progress.touch();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Runs `work` until it ends, or until nothing moved for `limit`: counted
/// from the start, or, with `progress`, from the streamed request body's
/// last chunk. `Err(())` when the limit passed.
pub(crate) async fn within<F: std::future::Future>(
    limit: Duration,
    progress: Option<&Progress>,
    work: F,
) -> std::result::Result<F::Output, ()> {
    tokio::pin!(work);
    let start = Instant::now();
    let moved = || progress.map_or(start, |p| p.last().max(start));
    loop {
        let from = moved();
        tokio::select! {
            out = &mut work => return Ok(out),
            () = tokio::time::sleep_until(from + limit) => {
                if moved() == from {
                    return Err(());
                }
            }
        }
    }
}

/// `prefix`, then the rest of `rest`: a request body read in part.
pub(crate) fn prefixed(prefix: Bytes, rest: RequestStream) -> RequestStream {
    box_request_body(Prefixed {
        prefix: (!prefix.is_empty()).then_some(prefix),
        rest,
    })
}

struct Prefixed {
    prefix: Option<Bytes>,
    rest: RequestStream,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, BoxError>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }
}

/// Boxes a caller's request body.
pub(crate) fn box_request_body<B>(body: B) -> RequestStream
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_whole_body_has_an_exact_size_and_yields_once() {
        let mut body = ResponseBody::full("tracks");
        assert_eq!(body.size_hint().exact(), Some(6));
        assert!(body.is_whole() && !body.is_end_stream());
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "tracks");
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(body.frame().await.is_none());

        let empty = ResponseBody::full(Bytes::new());
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
        assert_eq!(empty.bytes().await.unwrap(), "");
    }
}
