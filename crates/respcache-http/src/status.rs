//! How each request was answered: [`CacheOutcome`] and an RFC 9211
//! `Cache-Status`-style [`CacheStatus`].

use std::fmt;

use http::HeaderValue;

/// How the cache answered one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheOutcome {
    /// A fresh stored response; no origin request.
    Hit,
    /// A stale stored response the request allowed (`max-stale`); no origin
    /// request.
    StaleHit,
    /// A stale stored response served at once while one background request
    /// refreshes it (`stale-while-revalidate`).
    StaleWhileRevalidate,
    /// A stored response the origin confirmed with `304 Not Modified`; its
    /// headers and expiry were freshened, the body came from the cache.
    Revalidated,
    /// No usable stored response: the origin answered (and the answer was
    /// stored if the rules allow).
    Miss,
    /// Another identical request was already on its way to the origin; this
    /// one waited for it and got the same answer.
    Coalesced,
    /// The origin failed (connection error or 5xx) and a stale stored
    /// response was served instead (`stale-if-error`).
    StaleIfError,
    /// `only-if-cached` found nothing usable: a `504 Gateway Timeout`
    /// without any origin request.
    OnlyIfCachedMiss,
    /// The cache was not consulted: a method that is not cached, a request
    /// no repository takes, or a disabled client.
    Bypass,
}

impl CacheOutcome {
    /// A short lowercase name (`hit`, `stale-hit`, `revalidated`, ...), as
    /// recorded in the request's tracing span.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::StaleHit => "stale-hit",
            CacheOutcome::StaleWhileRevalidate => "stale-while-revalidate",
            CacheOutcome::Revalidated => "revalidated",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Coalesced => "coalesced",
            CacheOutcome::StaleIfError => "stale-if-error",
            CacheOutcome::OnlyIfCachedMiss => "only-if-cached-miss",
            CacheOutcome::Bypass => "bypass",
        }
    }

    /// Whether the body came from the cache.
    pub fn body_from_cache(self) -> bool {
        matches!(
            self,
            CacheOutcome::Hit
                | CacheOutcome::StaleHit
                | CacheOutcome::StaleWhileRevalidate
                | CacheOutcome::Revalidated
                | CacheOutcome::StaleIfError
        )
    }
}

impl fmt::Display for CacheOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request went to the origin, as RFC 9211's `fwd` parameter says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Forward {
    /// Not cached at all.
    Bypass,
    /// Nothing stored for the URL.
    UriMiss,
    /// Something is stored for the URL, but not for this variant (`Vary`).
    VaryMiss,
    /// The stored response was stale.
    Stale,
    /// The request asked for it (`no-cache`, `refresh`, `force_refresh`).
    Request,
}

impl Forward {
    fn as_str(self) -> &'static str {
        match self {
            Forward::Bypass => "bypass",
            Forward::UriMiss => "uri-miss",
            Forward::VaryMiss => "vary-miss",
            Forward::Stale => "stale",
            Forward::Request => "request",
        }
    }
}

/// The cache's account of one response, written like an RFC 9211
/// `Cache-Status` header field value by `Display`:
///
/// ```
/// use respcache_http::{CacheOutcome, CacheStatus, Forward};
/// let s = CacheStatus::new(CacheOutcome::Revalidated)
///     .with_forward(Forward::Stale)
///     .with_forward_status(304)
///     .with_stored(true);
/// assert_eq!(s.to_string(), "respcache; fwd=stale; fwd-status=304; stored; detail=revalidated");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheStatus {
    outcome: CacheOutcome,
    forward: Option<Forward>,
    forward_status: Option<u16>,
    stored: bool,
    ttl: Option<i64>,
}

impl CacheStatus {
    /// A status with only an outcome.
    pub fn new(outcome: CacheOutcome) -> Self {
        CacheStatus {
            outcome,
            forward: None,
            forward_status: None,
            stored: false,
            ttl: None,
        }
    }

    /// Sets why the request was forwarded.
    pub fn with_forward(mut self, forward: Forward) -> Self {
        self.forward = Some(forward);
        self
    }

    /// Sets the status the origin answered with.
    pub fn with_forward_status(mut self, status: u16) -> Self {
        self.forward_status = Some(status);
        self
    }

    /// Sets whether the answer was stored.
    pub fn with_stored(mut self, stored: bool) -> Self {
        self.stored = stored;
        self
    }

    /// Sets the remaining freshness in seconds (negative when stale).
    pub fn with_ttl(mut self, ttl: Option<i64>) -> Self {
        self.ttl = ttl;
        self
    }

    /// How the request was answered.
    pub fn outcome(&self) -> CacheOutcome {
        self.outcome
    }

    /// Why the request went to the origin, if it did.
    pub fn forward(&self) -> Option<Forward> {
        self.forward
    }

    /// The origin's status when the request was forwarded.
    pub fn forward_status(&self) -> Option<u16> {
        self.forward_status
    }

    /// Whether this answer was stored in the cache.
    pub fn stored(&self) -> bool {
        self.stored
    }

    /// Remaining freshness in seconds when served from the cache.
    pub fn ttl(&self) -> Option<i64> {
        self.ttl
    }
}

impl CacheStatus {
    /// The `Cache-Status` header a [`CacheService`](crate::CacheService)
    /// adds on every response, hits included: what `Display` writes, put
    /// together on the stack (one allocation, the value's own).
    pub(crate) fn header_value(&self) -> Option<HeaderValue> {
        let mut out = StackText::default();
        self.render(&mut out).ok()?;
        HeaderValue::from_bytes(out.as_bytes()).ok()
    }

    /// Writes the RFC 9211 form: the one rendering behind `Display` and
    /// [`header_value`](Self::header_value). Integers go through `itoa`,
    /// not the formatting machinery (this runs on every hit).
    fn render(&self, out: &mut impl fmt::Write) -> fmt::Result {
        let mut int = itoa::Buffer::new();
        out.write_str("respcache")?;
        if matches!(
            self.outcome,
            CacheOutcome::Hit | CacheOutcome::StaleHit | CacheOutcome::StaleWhileRevalidate
        ) {
            out.write_str("; hit")?;
        }
        if let Some(fwd) = self.forward {
            out.write_str("; fwd=")?;
            out.write_str(fwd.as_str())?;
        }
        if let Some(s) = self.forward_status {
            out.write_str("; fwd-status=")?;
            out.write_str(int.format(s))?;
        }
        if let Some(ttl) = self.ttl {
            out.write_str("; ttl=")?;
            out.write_str(int.format(ttl))?;
        }
        if self.stored {
            out.write_str("; stored")?;
        }
        if self.outcome == CacheOutcome::Coalesced {
            out.write_str("; collapsed")?;
        }
        match self.outcome {
            CacheOutcome::Hit
            | CacheOutcome::Miss
            | CacheOutcome::Bypass
            | CacheOutcome::Coalesced => Ok(()),
            other => {
                out.write_str("; detail=")?;
                out.write_str(other.as_str())
            }
        }
    }
}

/// Text written into a fixed buffer on the stack, long enough for any
/// [`CacheStatus`] (writing more fails).
struct StackText {
    buf: [u8; 128],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        StackText {
            buf: [0; 128],
            len: 0,
        }
    }
}

impl StackText {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let room = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(f)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_header_value_is_what_display_writes() {
        let outcomes = [
            CacheOutcome::Hit,
            CacheOutcome::StaleHit,
            CacheOutcome::StaleWhileRevalidate,
            CacheOutcome::Revalidated,
            CacheOutcome::Miss,
            CacheOutcome::Coalesced,
            CacheOutcome::StaleIfError,
            CacheOutcome::OnlyIfCachedMiss,
            CacheOutcome::Bypass,
        ];
        for outcome in outcomes {
            for ttl in [
                None,
                Some(0),
                Some(7),
                Some(-42),
                Some(i64::MIN),
                Some(i64::MAX),
            ] {
                for (fwd, status) in [
                    (None, None),
                    (Some(Forward::Stale), Some(304)),
                    (Some(Forward::VaryMiss), Some(65535)),
                ] {
                    let mut s = CacheStatus::new(outcome)
                        .with_ttl(ttl)
                        .with_stored(ttl == Some(7));
                    if let Some(f) = fwd {
                        s = s.with_forward(f);
                    }
                    if let Some(code) = status {
                        s = s.with_forward_status(code);
                    }
                    let value = s.header_value().unwrap();
                    assert_eq!(value.to_str().unwrap(), s.to_string());
                }
            }
        }
    }

    use super::*;

    #[test]
    fn formats_like_rfc9211() {
        assert_eq!(
            CacheStatus::new(CacheOutcome::Hit)
                .with_ttl(Some(42))
                .to_string(),
            "respcache; hit; ttl=42"
        );
        assert_eq!(
            CacheStatus::new(CacheOutcome::Miss)
                .with_forward(Forward::UriMiss)
                .with_forward_status(200)
                .with_stored(true)
                .to_string(),
            "respcache; fwd=uri-miss; fwd-status=200; stored"
        );
        assert_eq!(
            CacheStatus::new(CacheOutcome::StaleIfError)
                .with_forward(Forward::Stale)
                .with_forward_status(503)
                .to_string(),
            "respcache; fwd=stale; fwd-status=503; detail=stale-if-error"
        );
        assert_eq!(
            CacheStatus::new(CacheOutcome::Coalesced)
                .with_forward(Forward::UriMiss)
                .to_string(),
            "respcache; fwd=uri-miss; collapsed"
        );
    }
}
