//! The one error type of respcache: a matchable [`ErrorKind`] plus the
//! backend, repository and operation it happened in.

use std::fmt;
use std::sync::Arc;

/// A `Result` whose error is respcache's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in a form a caller can `match` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The backend could not be reached, or the connection broke.
    Connection,
    /// The backend did not answer in time.
    Timeout,
    /// The store is busy with someone else's work: a lock another
    /// connection holds (SQLite `SQLITE_BUSY`/`SQLITE_LOCKED` after the
    /// busy timeout), a conflicting transaction. Temporary.
    Contention,
    /// The backend refused the call because of its request rate or
    /// provisioned capacity (DynamoDB throttling). Temporary: slow down
    /// and try again.
    Throttled,
    /// The backend refused the call for lack of rights: file or database
    /// permissions, a read-only file, a rejected password or user, a
    /// missing grant.
    Permission,
    /// A cache, repository or field name is not valid.
    InvalidName,
    /// A key does not fit its repository's key schema, or could not be decoded.
    InvalidKey,
    /// A payload or an entry could not be encoded or decoded.
    Codec,
    /// A payload is larger than the backend can store.
    PayloadTooLarge,
    /// The requested key does not exist (the `*_or_fail` calls).
    NotFound,
    /// A configuration value or URL is wrong.
    Configuration,
    /// The cache, repository or backend was closed before the call.
    Closed,
    /// A batch call named requests that belong to different repositories.
    MixedBatch,
    /// The backend answered with an error that fits no other kind.
    Backend,
    /// The call was not made: the backend is known to be down (a
    /// [`CircuitBreaker`](crate::breaker::CircuitBreaker) is open) or its
    /// store is not open yet. Callers treat it as "cache unavailable".
    Unavailable,
    /// The backend does not offer this operation (leases on a custom
    /// backend that keeps the [`Store`](crate::Store) defaults).
    Unsupported,
    /// An error of the HTTP layer (`respcache-http`), converted so code
    /// using the cache and the HTTP client together has one error type: a
    /// bad URL or request, too many redirects, a body that does not decode.
    /// (An origin that cannot be reached or does not answer in time keeps
    /// [`Connection`](Self::Connection) or [`Timeout`](Self::Timeout).) The
    /// HTTP error is the [`source`](std::error::Error::source).
    Http,
    /// The caller's own computation failed: the closure given to
    /// [`KeyValueCache::get_or_set_with`](crate::KeyValueCache::get_or_set_with)
    /// returned an error (its [`source`](std::error::Error::source)) or
    /// panicked. The message names the key, never a value.
    Computation,
}

impl ErrorKind {
    /// A short lowercase description, used in `Display`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connection => "connection error",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Contention => "contention",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Permission => "permission denied",
            ErrorKind::InvalidName => "invalid name",
            ErrorKind::InvalidKey => "invalid key",
            ErrorKind::Codec => "codec error",
            ErrorKind::PayloadTooLarge => "payload too large",
            ErrorKind::NotFound => "not found",
            ErrorKind::Configuration => "configuration error",
            ErrorKind::Closed => "closed",
            ErrorKind::MixedBatch => "batch spans repositories",
            ErrorKind::Backend => "backend error",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Unsupported => "not supported",
            ErrorKind::Http => "HTTP error",
            ErrorKind::Computation => "computation failed",
        }
    }

    /// Whether trying the same call again later may succeed.
    pub fn is_temporary(self) -> bool {
        matches!(
            self,
            ErrorKind::Connection
                | ErrorKind::Timeout
                | ErrorKind::Contention
                | ErrorKind::Throttled
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operation an error happened in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // each variant is the method of the same name
pub enum Operation {
    Connect,
    OpenStore,
    DropStore,
    ListStores,
    Close,
    Get,
    GetMany,
    Put,
    PutMany,
    Delete,
    DeleteMany,
    Contains,
    Count,
    Clear,
    Scan,
    SetExpiry,
    SetMeta,
    Encode,
    Decode,
    AcquireLease,
    ReleaseLease,
    PurgeTag,
}

impl Operation {
    /// The operation's name as written in `Display`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Connect => "connect",
            Operation::OpenStore => "open_store",
            Operation::DropStore => "drop_store",
            Operation::ListStores => "list_stores",
            Operation::Close => "close",
            Operation::Get => "get",
            Operation::GetMany => "get_many",
            Operation::Put => "put",
            Operation::PutMany => "put_many",
            Operation::Delete => "delete",
            Operation::DeleteMany => "delete_many",
            Operation::Contains => "contains",
            Operation::Count => "count",
            Operation::Clear => "clear",
            Operation::Scan => "scan",
            Operation::SetExpiry => "set_expiry",
            Operation::SetMeta => "set_meta",
            Operation::Encode => "encode",
            Operation::Decode => "decode",
            Operation::AcquireLease => "acquire_lease",
            Operation::ReleaseLease => "release_lease",
            Operation::PurgeTag => "purge_tag",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The cause as stored: shared, so an [`Error`] is cheap to clone and every
/// clone keeps the whole cause chain.
type SharedSource = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// respcache's error: a [`kind`](Error::kind), a message, and where it
/// happened (backend, repository, operation), with the underlying cause as
/// [`source`](std::error::Error::source).
///
/// `Display` fits on one line, for example
/// `sqlite: get in repository "tracks": connection error: unable to open database file`.
///
/// `Clone` is cheap (the cause is shared), so an outcome computed once can
/// reach every waiter of a single flight with its cause intact.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    backend: Option<&'static str>,
    repository: Option<String>,
    operation: Option<Operation>,
    source: Option<SharedSource>,
}

impl Error {
    /// A new error of `kind` with a message saying what went wrong.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            backend: None,
            repository: None,
            operation: None,
            source: None,
        }
    }

    /// The `Closed` error a backend returns after `close`.
    pub fn closed(backend: &'static str) -> Self {
        Error::new(ErrorKind::Closed, "the backend was closed").with_backend(backend)
    }

    /// Sets the backend name (`sqlite`, `redis`, ...).
    pub fn with_backend(mut self, backend: &'static str) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Sets the repository name.
    pub fn with_repository(mut self, repository: impl Into<String>) -> Self {
        self.repository = Some(repository.into());
        self
    }

    /// Sets the operation.
    pub fn with_operation(mut self, operation: Operation) -> Self {
        self.operation = Some(operation);
        self
    }

    /// Sets the underlying cause.
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(Arc::from(source.into()));
        self
    }

    /// Fills in backend, repository and operation where they are not set yet.
    pub fn in_context(
        mut self,
        backend: &'static str,
        repository: &str,
        operation: Operation,
    ) -> Self {
        self.backend.get_or_insert(backend);
        if self.repository.is_none() {
            self.repository = Some(repository.to_owned());
        }
        self.operation.get_or_insert(operation);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the context.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The backend the error happened in, if known.
    pub fn backend(&self) -> Option<&'static str> {
        self.backend
    }

    /// The repository the error happened in, if known.
    pub fn repository(&self) -> Option<&str> {
        self.repository.as_deref()
    }

    /// The operation the error happened in, if known.
    pub fn operation(&self) -> Option<Operation> {
        self.operation
    }

    /// Whether trying the same call again later may succeed.
    pub fn is_temporary(&self) -> bool {
        self.kind.is_temporary()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut prefix = false;
        if let Some(backend) = self.backend {
            write!(f, "{backend}")?;
            prefix = true;
        }
        if let Some(op) = self.operation {
            write!(f, "{}{op}", if prefix { ": " } else { "" })?;
            prefix = true;
        }
        if let Some(repo) = &self.repository {
            let sep = if self.operation.is_some() {
                " in"
            } else if prefix {
                ":"
            } else {
                ""
            };
            write!(f, "{sep} repository {repo:?}")?;
            prefix = true;
        }
        if prefix {
            f.write_str(": ")?;
        }
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(source) = &self.source {
            let text = source.to_string();
            if !text.is_empty() && !self.message.contains(&text) {
                write!(f, ": {text}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(b) = self.backend {
            d.field("backend", &b);
        }
        if let Some(r) = &self.repository {
            d.field("repository", r);
        }
        if let Some(o) = self.operation {
            d.field("operation", &o);
        }
        if let Some(s) = &self.source {
            d.field("source", s);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_context() {
        let e = Error::new(ErrorKind::Timeout, "no answer after 5s").in_context(
            "redis",
            "tracks",
            Operation::Get,
        );
        assert_eq!(
            e.to_string(),
            "redis: get in repository \"tracks\": timed out: no answer after 5s"
        );
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.is_temporary());
    }

    #[test]
    fn a_clone_keeps_kind_context_and_cause() {
        let e = Error::new(ErrorKind::Connection, "refused")
            .in_context("redis", "tracks", Operation::Get)
            .with_source(std::io::Error::other("port 6379 closed"));
        let c = e.clone();
        assert_eq!(c.to_string(), e.to_string());
        assert_eq!(
            std::error::Error::source(&c).map(ToString::to_string),
            Some("port 6379 closed".to_owned())
        );
    }

    #[test]
    fn display_without_context() {
        let e = Error::new(ErrorKind::InvalidName, "bad");
        assert_eq!(e.to_string(), "invalid name: bad");
    }
}
