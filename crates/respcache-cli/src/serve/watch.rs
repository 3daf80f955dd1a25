//! The time limits of one client connection, for HTTP/1 and HTTP/2 alike
//! (hyper's own header-read timeout covers HTTP/1 only, and not the first
//! bytes the server reads to tell HTTP/1 from HTTP/2):
//!
//! - `--header-timeout`: once a client sends the first byte of a request,
//!   the whole head must arrive within it;
//! - `--idle-timeout`: a connection with no request in progress and no
//!   byte received is closed after it; so is one whose client leaves an
//!   answer unread (the proxy cannot write) for that long.
//!
//! A request in progress (from its head to the end of its answer's body)
//! is otherwise bounded by `--timeout` (the upstream) and `--body-timeout`
//! (a GET/HEAD body), not here.
//!
//! Nothing wakes the watchdog: every deadline is the time of an event (the
//! first byte, the end of a request, a blocked write) plus a limit, so a
//! watchdog that looks again at least once per shorter limit finds each
//! deadline on time. A request costs its connection a few atomic stores,
//! not a wake-up and a new timer per event.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// "Not set" for the millisecond marks.
const NONE: u64 = u64::MAX;

/// The limits [`Watch`] enforces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub(crate) header: Duration,
    pub(crate) idle: Duration,
}

/// What one connection is doing, shared by its I/O, its requests and its
/// watchdog.
pub(crate) struct Watch {
    timeouts: Timeouts,
    start: Instant,
    /// Requests whose answer is not fully sent.
    in_flight: AtomicUsize,
    /// When the last request finished (or the connection opened), in ms
    /// from `start`.
    quiet_since: AtomicU64,
    /// The first byte received since then, if any.
    first_read: AtomicU64,
    /// Since when a write has been waiting for the client to read, if one is.
    write_blocked: AtomicU64,
}

impl Watch {
    /// A new connection's watch.
    pub(crate) fn new(timeouts: Timeouts) -> Arc<Self> {
        Arc::new(Watch {
            timeouts,
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            quiet_since: AtomicU64::new(0),
            first_read: AtomicU64::new(NONE),
            write_blocked: AtomicU64::new(NONE),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    /// Marks a request as started (its head is in); it ends when the
    /// returned guard is dropped.
    pub(crate) fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    fn on_read(&self) {
        if self.first_read.load(Ordering::Acquire) == NONE {
            // Only the first byte's time counts; a later one loses the race.
            let _ = self.first_read.compare_exchange(
                NONE,
                self.now(),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    fn on_write(&self, blocked: bool) {
        let was = self.write_blocked.load(Ordering::Acquire);
        if blocked && was == NONE {
            self.write_blocked.store(self.now(), Ordering::Release);
        } else if !blocked && was != NONE {
            self.write_blocked.store(NONE, Ordering::Release);
        }
    }

    /// When the connection must be closed, as things stand (ms from
    /// `start`); `None`: not while they stay so.
    fn deadline(&self) -> Option<u64> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(NONE / 2);
        let t = self.timeouts;
        if self.in_flight.load(Ordering::Acquire) > 0 {
            let blocked = self.write_blocked.load(Ordering::Acquire);
            return (blocked != NONE).then(|| blocked.saturating_add(ms(t.idle)));
        }
        let first = self.first_read.load(Ordering::Acquire);
        if first != NONE {
            return Some(first.saturating_add(ms(t.header)));
        }
        Some(
            self.quiet_since
                .load(Ordering::Acquire)
                .saturating_add(ms(t.idle)),
        )
    }

    /// Returns once a time limit of the connection has passed.
    pub(crate) async fn expired(&self) {
        // A deadline set after this look is at least the shorter limit
        // away: looking again within it is on time (module docs).
        let period = u64::try_from(self.timeouts.header.min(self.timeouts.idle).as_millis())
            .unwrap_or(NONE / 2)
            .max(1);
        loop {
            let now = self.now();
            let next = match self.deadline() {
                Some(d) if d <= now => return,
                Some(d) => d.min(now.saturating_add(period)),
                None => now.saturating_add(period),
            };
            tokio::time::sleep(Duration::from_millis(next - now)).await;
        }
    }
}

/// A request in progress on a watched connection.
pub(crate) struct InFlight(Arc<Watch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let w = &self.0;
        if w.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            w.first_read.store(NONE, Ordering::Release);
            w.quiet_since.store(w.now(), Ordering::Release);
        }
    }
}

/// A connection's I/O, reporting to its [`Watch`].
pub(crate) struct Watched<IO> {
    io: IO,
    watch: Arc<Watch>,
}

impl<IO> Watched<IO> {
    /// `io`, watched by `watch`.
    pub(crate) fn new(io: IO, watch: Arc<Watch>) -> Self {
        Watched { io, watch }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.watch.on_read();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.watch.on_write(polled.is_pending());
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.watch.on_write(polled.is_pending());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// An answer's body that keeps its request in flight until it is sent
/// (or dropped).
pub(crate) struct Tracked<B> {
    body: B,
    /// Dropped at the body's end.
    request: Option<InFlight>,
}

impl<B> Tracked<B> {
    /// `body`, ending `request` when done.
    pub(crate) fn new(body: B, request: InFlight) -> Self {
        Tracked {
            body,
            request: Some(request),
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.request = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;

    fn watch() -> Arc<Watch> {
        Watch::new(Timeouts {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        })
    }

    #[test]
    fn the_deadline_follows_what_the_connection_does() {
        let w = watch();
        assert_eq!(w.deadline(), Some(60_000));
        w.first_read.store(5_000, Ordering::Release);
        assert_eq!(w.deadline(), Some(15_000));
        let request = w.request();
        assert_eq!(w.deadline(), None);
        w.write_blocked.store(20_000, Ordering::Release);
        assert_eq!(w.deadline(), Some(80_000));
        w.on_write(false);
        assert_eq!(w.deadline(), None);
        drop(request);
        let quiet = w.quiet_since.load(Ordering::Acquire);
        assert_eq!(w.deadline(), Some(quiet + 60_000));
    }

    /// When `expired` returns for `w`, in ms from its start, once the
    /// events `act` makes on the paused clock have happened.
    async fn expiry(w: &Arc<Watch>, act: impl Future<Output = ()>) -> u64 {
        let watchdog = async {
            w.expired().await;
            w.now()
        };
        let (at, ()) = tokio::join!(watchdog, act);
        at
    }

    #[tokio::test(start_paused = true)]
    async fn each_limit_is_met_on_time_without_waking_the_watchdog() {
        use tokio::time::sleep;
        let s = Duration::from_secs;
        // The first byte 25 s into a quiet connection: the head is due 10 s
        // later, though the watchdog looked last at 20 s.
        let w = watch();
        let at = expiry(&w, async {
            sleep(s(25)).await;
            w.on_read();
        })
        .await;
        assert_eq!(at, 35_000);
        // A request from 5 s to 33 s, then quiet: idle from its end.
        let w = watch();
        let at = expiry(&w, async {
            sleep(s(5)).await;
            w.on_read();
            let request = w.request();
            sleep(s(28)).await;
            drop(request);
        })
        .await;
        assert_eq!(at, 93_000);
        // An answer the client stops reading at 12 s: closed 60 s later.
        let w = watch();
        let at = expiry(&w, async {
            sleep(s(2)).await;
            w.on_read();
            let _request = w.request();
            sleep(s(10)).await;
            w.on_write(true);
            sleep(s(100)).await;
        })
        .await;
        assert_eq!(at, 72_000);
    }
}
