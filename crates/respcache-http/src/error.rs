//! The error of the HTTP layer: what went wrong talking to the origin or
//! reading an answer. Cache failures never appear here once a client is
//! built: they are logged and counted, and the request goes to the origin.

use std::fmt;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in a form a caller can `match` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The URL could not be parsed, or its scheme is not `http`/`https`.
    InvalidUrl,
    /// A header name or value, or a request body, was malformed.
    InvalidRequest,
    /// The origin could not be reached, or the connection broke (reset,
    /// closed early, TLS failure).
    Connection,
    /// The origin did not answer in time.
    Timeout,
    /// The origin redirected more times than allowed.
    TooManyRedirects,
    /// A body could not be decoded (for example [`json`](crate::CachedResponse::json)
    /// on a body that is not valid JSON).
    Decode,
    /// The client could not be built: a bad option, or the cache could not
    /// be opened.
    Configuration,
    /// A cache call of a maintenance method ([`has_url`](crate::CachedClient::has_url),
    /// [`clear`](crate::CachedClient::clear), ...) failed, or the cache is
    /// not open; requests never fail with it (a failing cache is skipped).
    Cache,
    /// The request's work panicked (a bug in respcache, or in the service a
    /// [`CacheLayer`](crate::CacheLayer) wraps); every request coalesced
    /// with it gets this error.
    Internal,
}

impl ErrorKind {
    /// A short lowercase description, used in `Display`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidUrl => "invalid URL",
            ErrorKind::InvalidRequest => "invalid request",
            ErrorKind::Connection => "connection error",
            ErrorKind::Timeout => "timed out",
            ErrorKind::TooManyRedirects => "too many redirects",
            ErrorKind::Decode => "decode error",
            ErrorKind::Configuration => "configuration error",
            ErrorKind::Cache => "cache error",
            ErrorKind::Internal => "internal error",
        }
    }

    /// Whether trying the same request again later may succeed.
    pub fn is_temporary(self) -> bool {
        matches!(self, ErrorKind::Connection | ErrorKind::Timeout)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The cause, shared: every request coalesced with a failed one gets a
/// clone of its error, cause included.
type SharedSource = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// An error of the HTTP layer: a [`kind`](Error::kind), a message, the URL
/// (with ignored query parameters redacted) and the underlying cause.
///
/// `Display` fits on one line, e.g.
/// `connection error: GET http://127.0.0.1:8080/a: connection reset by peer`.
///
/// Cheap to clone (the cause is shared).
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    url: Option<String>,
    source: Option<SharedSource>,
}

impl Error {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            url: None,
            source: None,
        }
    }

    /// Sets the (redacted) request line the error belongs to.
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Sets the underlying cause.
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(SharedSource::from(source.into()));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The request the error belongs to (method and redacted URL), if known.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// Whether trying again later may succeed.
    pub fn is_temporary(&self) -> bool {
        self.kind.is_temporary()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(url) = &self.url {
            write!(f, ": {url}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(url) = &self.url {
            d.field("url", url);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// One error type for programs that use the cache and the HTTP client
/// together: `?` turns an HTTP error into a `respcache_core::Error` (the
/// facade's `respcache::Error`). An origin that cannot be reached or does
/// not answer in time keeps its kind (`Connection`, `Timeout`); every other
/// kind becomes [`Http`](respcache_core::ErrorKind::Http); the HTTP error
/// is the source.
impl From<Error> for respcache_core::Error {
    fn from(e: Error) -> Self {
        use respcache_core::ErrorKind as Core;
        let kind = match e.kind() {
            ErrorKind::Connection => Core::Connection,
            ErrorKind::Timeout => Core::Timeout,
            _ => Core::Http,
        };
        respcache_core::Error::new(kind, e.to_string()).with_source(e)
    }
}

impl From<respcache_core::Error> for Error {
    fn from(e: respcache_core::Error) -> Self {
        Error::new(ErrorKind::Configuration, e.to_string()).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_the_url() {
        let e = Error::new(ErrorKind::Connection, "connection reset").with_url("GET http://h/a");
        assert_eq!(
            e.to_string(),
            "connection error: GET http://h/a: connection reset"
        );
        assert!(e.is_temporary());
        assert!(!Error::new(ErrorKind::Decode, "x").is_temporary());
    }
}
