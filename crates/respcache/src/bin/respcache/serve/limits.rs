//! The connection limits: `--max-connections` and what the accept loop does
//! when accepting fails (out of file descriptors: `EMFILE`, `ENFILE`).
//!
//! At the cap the proxy stops accepting: further connections wait in the
//! listen backlog (the kernel's queue, which costs the proxy no file
//! descriptor) and are taken as others close. A failed accept is retried
//! after a back-off that doubles from 10 ms to 1 s and starts over at the
//! next success; it is reported at most once per 10 s, with a count of the
//! failures in between.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The first wait after a failed accept.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest wait after failed accepts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The least time between two reports of failed accepts.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The open client connections, up to `--max-connections`.
#[derive(Clone)]
pub(crate) struct Slots(Arc<Semaphore>);

impl Slots {
    /// Room for `max` connections.
    pub(crate) fn new(max: u32) -> Self {
        Slots(Arc::new(Semaphore::new(max as usize)))
    }

    /// A slot for one connection, held until dropped; waits while all are
    /// taken. `None` only if the slots were closed.
    pub(crate) async fn take(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.0).acquire_owned().await.ok()
    }
}

/// The back-off and rate-limited report of failed accepts.
pub(crate) struct AcceptBackoff {
    next: Duration,
    /// Failures since the last report.
    unreported: u64,
    last_report: Option<Instant>,
}

impl AcceptBackoff {
    /// No failure yet.
    pub(crate) fn new() -> Self {
        AcceptBackoff {
            next: FIRST_BACKOFF,
            unreported: 0,
            last_report: None,
        }
    }

    /// Records a failure: the message to print now (if one is due) and how
    /// long to wait before accepting again.
    pub(crate) fn failed(&mut self, e: &io::Error) -> (Option<String>, Duration) {
        let now = Instant::now();
        let due = self
            .last_report
            .is_none_or(|t| now.duration_since(t) >= REPORT_EVERY);
        let report = if due {
            let also = match self.unreported {
                0 => String::new(),
                n => format!(" ({n} more failures since the last report)"),
            };
            self.unreported = 0;
            self.last_report = Some(now);
            Some(format!(
                "accepting a connection failed: {e}{also}; retrying with back-off \
                 (up to {MAX_BACKOFF:?}), reported at most every {REPORT_EVERY:?}"
            ))
        } else {
            self.unreported += 1;
            None
        };
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        (report, wait)
    }

    /// Records a success: the next failure waits the shortest again.
    pub(crate) fn succeeded(&mut self) {
        self.next = FIRST_BACKOFF;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_and_are_reported_once_per_period() {
        let mut b = AcceptBackoff::new();
        let e = io::Error::from_raw_os_error(24);
        let mut reports = 0;
        let mut waits = Vec::new();
        for _ in 0..1000 {
            let (report, wait) = b.failed(&e);
            reports += usize::from(report.is_some());
            waits.push(wait);
        }
        // 1,000 failures in far less than 10 s: one line.
        assert_eq!(reports, 1);
        assert_eq!(waits[0], FIRST_BACKOFF);
        assert_eq!(waits[1], FIRST_BACKOFF * 2);
        assert_eq!(waits[999], MAX_BACKOFF);
        b.succeeded();
        assert_eq!(b.failed(&e).1, FIRST_BACKOFF);
    }
}
