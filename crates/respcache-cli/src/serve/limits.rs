//! The connection limits: `--max-connections` and what the accept loop does
//! when accepting fails (out of file descriptors: `EMFILE`, `ENFILE`).
//!
//! At the cap the proxy stops accepting: further connections wait in the
//! listen backlog (the kernel's queue, which costs the proxy no file
//! descriptor) and are taken as others close. On start (Unix), the soft
//! open-file limit is raised to the hard one, and the default cap (1024)
//! lowered, with a note, when it would not leave 64 descriptors for
//! upstream connections and the cache; a cap given explicitly is kept, with
//! a warning. A failed accept is still possible (other processes, the
//! system-wide limit): it is retried after a back-off that doubles from
//! 10 ms to 1 s and starts over at the next success, and reported at most
//! once per 10 s, with a count of the failures in between.

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

/// File descriptors kept for everything but client connections: the
/// listener, upstream connections, the cache, standard streams.
const RESERVED_FDS: u64 = 64;

/// The default connection cap.
const DEFAULT_MAX_CONNECTIONS: u32 = 1024;

/// The connection cap: `requested` (`--max-connections`), else the default
/// lowered to what the open-file limit, raised first as far as allowed,
/// holds besides [`RESERVED_FDS`]; with a note to print when the two
/// disagree.
pub(crate) fn connection_cap(requested: Option<u32>) -> (u32, Option<String>) {
    let wanted = requested.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    let Some(files) = open_file_limit() else {
        return (wanted, None);
    };
    let room = files.saturating_sub(RESERVED_FDS).max(1);
    if u64::from(wanted) <= room {
        return (wanted, None);
    }
    let room = u32::try_from(room).unwrap_or(u32::MAX);
    match requested {
        None => (
            room,
            Some(format!(
                "at most {room} connections at once (not {wanted}): the open-file limit \
                 is {files} (ulimit -n) and {RESERVED_FDS} are kept for upstream \
                 connections and the cache"
            )),
        ),
        Some(n) => (
            n,
            Some(format!(
                "--max-connections {n} is more than the open-file limit {files} \
                 (ulimit -n) has room for ({room}): accepting will fail for lack of \
                 file descriptors before the cap is reached"
            )),
        ),
    }
}

/// The soft open-file limit, first raised to the hard one; `None` when
/// unlimited or unknown.
#[cfg(unix)]
fn open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        // Refused (e.g. macOS with an unlimited hard limit): keep the soft one.
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        );
    }
    getrlimit(Resource::Nofile).current
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
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
