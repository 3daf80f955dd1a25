//! Maps rusqlite and tokio-rusqlite errors onto respcache's [`Error`].

use respcache_core::{Error, ErrorKind};
use rusqlite::ErrorCode;

use crate::NAME;

/// Maps a rusqlite error to respcache's error kinds, always tagged with the
/// backend name:
///
/// | SQLite | kind |
/// |---|---|
/// | `SQLITE_BUSY`, `SQLITE_LOCKED` (after the busy timeout) | [`Contention`](ErrorKind::Contention) (temporary) |
/// | `SQLITE_PERM`, `SQLITE_READONLY`, `SQLITE_AUTH` | [`Permission`](ErrorKind::Permission) |
/// | `SQLITE_CANTOPEN`, `SQLITE_IOERR`, `SQLITE_NOTADB` | [`Connection`](ErrorKind::Connection) |
/// | `SQLITE_TOOBIG` | [`PayloadTooLarge`](ErrorKind::PayloadTooLarge) |
/// | anything else | [`Backend`](ErrorKind::Backend) |
pub(crate) fn map_sqlite_error(error: rusqlite::Error) -> Error {
    let kind = match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => ErrorKind::Contention,
        Some(
            ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly
            | ErrorCode::AuthorizationForStatementDenied,
        ) => ErrorKind::Permission,
        Some(ErrorCode::CannotOpen | ErrorCode::SystemIoFailure | ErrorCode::NotADatabase) => {
            ErrorKind::Connection
        }
        Some(ErrorCode::TooBig) => ErrorKind::PayloadTooLarge,
        _ => ErrorKind::Backend,
    };
    let message = match kind {
        ErrorKind::Contention => format!(
            "the database stayed locked by another connection for the whole busy timeout ({error})"
        ),
        _ => error.to_string(),
    };
    Error::new(kind, message)
        .with_backend(NAME)
        .with_source(error)
}

/// Maps the error of a call on the writer connection (whose closures
/// already map their SQLite errors): a closed connection is
/// [`Closed`](ErrorKind::Closed).
pub(crate) fn map_call_error(error: tokio_rusqlite::Error<Error>) -> Error {
    match error {
        tokio_rusqlite::Error::Error(e) => e,
        tokio_rusqlite::Error::Close((_, e)) => map_sqlite_error(e),
        // `ConnectionClosed`, and any variant a later version adds.
        _ => Error::closed(NAME),
    }
}

/// Maps the error of closing the writer connection.
pub(crate) fn map_close_error(error: tokio_rusqlite::Error) -> Error {
    match error {
        tokio_rusqlite::Error::Error(e) | tokio_rusqlite::Error::Close((_, e)) => {
            map_sqlite_error(e)
        }
        _ => Error::closed(NAME),
    }
}

/// Whether SQLite refused because another connection holds a lock: a
/// reader then hands its query to the writer connection instead.
pub(crate) fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Whether a statement failed because its table does not exist (the store
/// was dropped, possibly by another process).
pub(crate) fn is_missing_table(error: &rusqlite::Error) -> bool {
    match error {
        rusqlite::Error::SqliteFailure(e, Some(message)) => {
            e.code == ErrorCode::Unknown && message.starts_with("no such table")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn kinds_follow_the_sqlite_code() {
        let kind = |code| map_sqlite_error(failure(code)).kind();
        assert_eq!(kind(rusqlite::ffi::SQLITE_BUSY), ErrorKind::Contention);
        assert_eq!(kind(rusqlite::ffi::SQLITE_LOCKED), ErrorKind::Contention);
        assert_eq!(kind(rusqlite::ffi::SQLITE_READONLY), ErrorKind::Permission);
        assert_eq!(kind(rusqlite::ffi::SQLITE_PERM), ErrorKind::Permission);
        assert_eq!(kind(rusqlite::ffi::SQLITE_CANTOPEN), ErrorKind::Connection);
        assert_eq!(kind(rusqlite::ffi::SQLITE_IOERR), ErrorKind::Connection);
        assert_eq!(
            kind(rusqlite::ffi::SQLITE_TOOBIG),
            ErrorKind::PayloadTooLarge
        );
        assert_eq!(kind(rusqlite::ffi::SQLITE_CONSTRAINT), ErrorKind::Backend);
        assert!(map_sqlite_error(failure(rusqlite::ffi::SQLITE_BUSY)).is_temporary());
        assert_eq!(
            map_sqlite_error(failure(rusqlite::ffi::SQLITE_BUSY)).backend(),
            Some("sqlite")
        );
    }

    #[test]
    fn a_closed_connection_is_a_closed_error() {
        let e = map_call_error(tokio_rusqlite::Error::ConnectionClosed);
        assert_eq!(e.kind(), ErrorKind::Closed);
        let e = map_close_error(tokio_rusqlite::Error::ConnectionClosed);
        assert_eq!(e.kind(), ErrorKind::Closed);
        assert_eq!(e.backend(), Some("sqlite"));
    }
}
