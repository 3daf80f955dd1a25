//! Turns the `redis` crate's errors into respcache [`Error`]s.

use std::time::Duration;

use redis::{RedisError, ServerErrorKind};
use respcache_core::{Error, ErrorKind};

use crate::NAME;

/// Maps a `redis` error to the [`ErrorKind`] a caller can act on:
///
/// | redis error | kind |
/// |---|---|
/// | I/O timeout | [`Timeout`](ErrorKind::Timeout) |
/// | refused, dropped or broken connection, other I/O; `LOADING`, `TRYAGAIN`, `MASTERDOWN` | [`Connection`](ErrorKind::Connection) (temporary) |
/// | authentication failed (`WRONGPASS`, `NOAUTH`), `NOPERM` (an ACL user without the command or key) | [`Permission`](ErrorKind::Permission) |
/// | `BUSY` (a script or function is running) | [`Contention`](ErrorKind::Contention) (temporary) |
/// | invalid client configuration | [`Configuration`](ErrorKind::Configuration) |
/// | a value over `proto-max-bulk-len` (512 MB by default) | [`PayloadTooLarge`](ErrorKind::PayloadTooLarge) |
/// | anything else | [`Backend`](ErrorKind::Backend) |
///
/// The `redis` crate's messages never contain the password.
pub(crate) fn map_redis_error(error: RedisError) -> Error {
    map_redis_error_with(error, "Redis command failed".to_owned())
}

/// [`map_redis_error`] with a message of the caller's.
pub(crate) fn map_redis_error_with(error: RedisError, message: String) -> Error {
    let kind = kind_of(&error);
    Error::new(kind, message)
        .with_backend(NAME)
        .with_source(error)
}

fn kind_of(error: &RedisError) -> ErrorKind {
    if error.is_timeout() {
        return ErrorKind::Timeout;
    }
    if error.is_io_error() || error.is_connection_refusal() || error.is_connection_dropped() {
        return ErrorKind::Connection;
    }
    match error.kind() {
        redis::ErrorKind::AuthenticationFailed
        | redis::ErrorKind::Server(ServerErrorKind::NoPerm) => ErrorKind::Permission,
        redis::ErrorKind::InvalidClientConfig => ErrorKind::Configuration,
        redis::ErrorKind::Server(
            ServerErrorKind::BusyLoading | ServerErrorKind::TryAgain | ServerErrorKind::MasterDown,
        ) => ErrorKind::Connection,
        _ => match error.code() {
            Some("WRONGPASS" | "NOAUTH" | "NOPERM") => ErrorKind::Permission,
            Some("BUSY") => ErrorKind::Contention,
            _ => {
                let text = error.to_string();
                if text.contains("maximum allowed size") || text.contains("proto-max-bulk-len") {
                    ErrorKind::PayloadTooLarge
                } else {
                    ErrorKind::Backend
                }
            }
        },
    }
}

/// Whether `error` is Redis's `WRONGTYPE`: the key holds a value of
/// another type than the command works on (another program's value).
pub(crate) fn is_wrong_type(error: &Error) -> bool {
    std::error::Error::source(error)
        .and_then(|s| s.downcast_ref::<RedisError>())
        .is_some_and(|e| e.code() == Some("WRONGTYPE"))
}

/// The error for a call that got no answer within `after`.
pub(crate) fn timeout_error(after: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("Redis did not answer within {after:?}"),
    )
    .with_backend(NAME)
}
