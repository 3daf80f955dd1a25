//! Maps filesystem errors to respcache's [`Error`] in one place.

use std::fmt;
use std::io;

use respcache_core::{Error, ErrorKind};

use crate::SCHEME;

/// Where an I/O error happened, which decides its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum At {
    /// Setting up or checking the root folder: any failure means the root is
    /// unusable, a [`ErrorKind::Connection`] error.
    Root,
    /// Working on a store's folders and files.
    Store,
}

/// Turns an I/O error met while `doing` something into an [`Error`] of the
/// `fs` backend, keeping the I/O error as its source.
///
/// Callers handle `NotFound` themselves where it is meaningful (a missing
/// file is a miss, `delete` answers `false`); a `NotFound` that reaches this
/// function means a folder vanished under the store, so the root is no
/// longer usable.
///
/// | I/O error | kind |
/// |---|---|
/// | `PermissionDenied`, `ReadOnlyFilesystem` (root or store) | `Permission` |
/// | anything else while setting up the root | `Connection` |
/// | `NotFound`, `NotADirectory`, `IsADirectory` | `Connection` (root unusable) |
/// | `FileTooLarge` | `PayloadTooLarge` |
/// | `TimedOut` | `Timeout` |
/// | `StorageFull`, `QuotaExceeded` and everything else | `Backend` |
pub(crate) fn map_io_error(error: io::Error, at: At, doing: impl fmt::Display) -> Error {
    use io::ErrorKind as Io;
    let kind = match (at, error.kind()) {
        (_, Io::PermissionDenied | Io::ReadOnlyFilesystem) => ErrorKind::Permission,
        (At::Root, _) => ErrorKind::Connection,
        (At::Store, Io::NotFound | Io::NotADirectory | Io::IsADirectory) => ErrorKind::Connection,
        (At::Store, Io::FileTooLarge) => ErrorKind::PayloadTooLarge,
        (At::Store, Io::TimedOut) => ErrorKind::Timeout,
        (At::Store, _) => ErrorKind::Backend,
    };
    Error::new(kind, format!("{doing}: {error}"))
        .with_backend(SCHEME)
        .with_source(error)
}

/// A blocking task that did not finish (it panicked, or the runtime is
/// shutting down).
pub(crate) fn map_join_error(error: tokio::task::JoinError) -> Error {
    Error::new(
        ErrorKind::Backend,
        format!("a blocking filesystem task did not finish: {error}"),
    )
    .with_backend(SCHEME)
    .with_source(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_table() {
        let kind = |io: io::ErrorKind, at| map_io_error(io::Error::from(io), at, "x").kind();
        assert_eq!(
            kind(io::ErrorKind::StorageFull, At::Root),
            ErrorKind::Connection
        );
        assert_eq!(
            kind(io::ErrorKind::StorageFull, At::Store),
            ErrorKind::Backend
        );
        assert_eq!(
            kind(io::ErrorKind::PermissionDenied, At::Store),
            ErrorKind::Permission
        );
        assert_eq!(
            kind(io::ErrorKind::ReadOnlyFilesystem, At::Root),
            ErrorKind::Permission
        );
        assert_eq!(
            kind(io::ErrorKind::NotFound, At::Store),
            ErrorKind::Connection
        );
        assert_eq!(
            kind(io::ErrorKind::FileTooLarge, At::Store),
            ErrorKind::PayloadTooLarge
        );
        assert_eq!(kind(io::ErrorKind::TimedOut, At::Store), ErrorKind::Timeout);
        assert_eq!(kind(io::ErrorKind::Other, At::Store), ErrorKind::Backend);
    }

    #[test]
    fn errors_name_the_backend_and_the_action() {
        let e = map_io_error(
            io::Error::from(io::ErrorKind::StorageFull),
            At::Store,
            "writing /r/c/s/aa/bb/x",
        );
        assert_eq!(e.backend(), Some("fs"));
        assert!(
            e.to_string()
                .starts_with("fs: backend error: writing /r/c/s/aa/bb/x: "),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some());
    }
}
