//! Maps the driver's errors onto respcache's [`ErrorKind`]s.

use std::time::Duration;

use mongodb::error::{ErrorKind as MongoKind, WriteFailure};
use respcache_core::{Error, ErrorKind};

use crate::NAME;

/// MongoDB's duplicate-key error code.
pub(crate) const DUPLICATE_KEY: i32 = 11000;
/// `NamespaceNotFound`.
pub(crate) const NAMESPACE_NOT_FOUND: i32 = 26;
/// `NamespaceExists`.
pub(crate) const NAMESPACE_EXISTS: i32 = 48;
/// `MaxTimeMSExpired`.
const MAX_TIME_EXPIRED: i32 = 50;
/// `Unauthorized`: the user lacks a privilege for the command.
const UNAUTHORIZED: i32 = 13;
/// `AuthenticationFailed`.
const AUTHENTICATION_FAILED: i32 = 18;
/// `WriteConflict`: another operation changed the document first.
const WRITE_CONFLICT: i32 = 112;
/// `BSONObjectTooLarge`, and the code for "document after update is larger than 16MB".
const TOO_LARGE: [i32; 2] = [10334, 17419];

/// Converts a driver error into a respcache error of the right kind.
///
/// Server selection, socket and `maxTimeMS` timeouts are
/// [`ErrorKind::Timeout`]; I/O and pool errors [`ErrorKind::Connection`]; a
/// client that was shut down [`ErrorKind::Closed`]; rejected credentials
/// and missing privileges (server codes 13 `Unauthorized`, 18
/// `AuthenticationFailed`) [`ErrorKind::Permission`]; a write conflict
/// (112) [`ErrorKind::Contention`]; bad arguments or TLS
/// [`ErrorKind::Configuration`]; BSON problems
/// [`ErrorKind::Codec`]; an oversized document
/// [`ErrorKind::PayloadTooLarge`]; anything else [`ErrorKind::Backend`].
/// `secret` (a password) is scrubbed from the message; when the driver's
/// text contained it, the driver error is not kept as the source either.
pub(crate) fn map_mongodb_error(err: mongodb::error::Error, secret: Option<&Secret>) -> Error {
    let kind = match err.kind.as_ref() {
        MongoKind::ServerSelection { .. } => ErrorKind::Timeout,
        MongoKind::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
        MongoKind::Io(_)
        | MongoKind::ConnectionPoolCleared { .. }
        | MongoKind::DnsResolve { .. } => ErrorKind::Connection,
        MongoKind::Shutdown => ErrorKind::Closed,
        MongoKind::Authentication { .. } => ErrorKind::Permission,
        MongoKind::InvalidArgument { .. } | MongoKind::InvalidTlsConfig { .. } => {
            ErrorKind::Configuration
        }
        MongoKind::BsonSerialization(_) | MongoKind::BsonDeserialization(_) => ErrorKind::Codec,
        MongoKind::Command(c) if c.code == MAX_TIME_EXPIRED => ErrorKind::Timeout,
        _ if codes(&err)
            .iter()
            .any(|c| [UNAUTHORIZED, AUTHENTICATION_FAILED].contains(c)) =>
        {
            ErrorKind::Permission
        }
        _ if codes(&err).contains(&WRITE_CONFLICT) => ErrorKind::Contention,
        _ if codes(&err).iter().any(|c| TOO_LARGE.contains(c)) => ErrorKind::PayloadTooLarge,
        _ => ErrorKind::Backend,
    };
    let text = err.to_string();
    let scrubbed = secret.map_or_else(|| text.clone(), |s| s.scrub(&text));
    let e = Error::new(kind, scrubbed.clone()).with_backend(NAME);
    if scrubbed == text {
        e.with_source(err)
    } else {
        e
    }
}

/// The error a call gets when it outlives the configured operation timeout.
pub(crate) fn operation_timed_out(after: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("no answer from MongoDB within {after:?} (operation timeout)"),
    )
    .with_backend(NAME)
}

/// The server error codes in `err` (command, write, bulk write).
pub(crate) fn codes(err: &mongodb::error::Error) -> Vec<i32> {
    match err.kind.as_ref() {
        MongoKind::Command(c) => vec![c.code],
        MongoKind::Write(WriteFailure::WriteError(w)) => vec![w.code],
        MongoKind::Write(WriteFailure::WriteConcernError(w)) => vec![w.code],
        MongoKind::BulkWrite(b) => {
            let mut v: Vec<i32> = b.write_errors.values().map(|w| w.code).collect();
            v.extend(b.write_concern_errors.iter().map(|w| w.code));
            v
        }
        MongoKind::InsertMany(i) => i.write_errors.iter().flatten().map(|w| w.code).collect(),
        _ => Vec::new(),
    }
}

/// Whether `err` is a duplicate-key error (a concurrent insert of one `_id`).
pub(crate) fn is_duplicate_key(err: &mongodb::error::Error) -> bool {
    codes(err).contains(&DUPLICATE_KEY)
}

/// Whether `err` carries the server code `code`.
pub(crate) fn has_code(err: &mongodb::error::Error, code: i32) -> bool {
    codes(err).contains(&code)
}

/// Whether the server is too old for the call (client `bulkWrite` needs 8.0).
pub(crate) fn is_incompatible_server(err: &mongodb::error::Error) -> bool {
    matches!(err.kind.as_ref(), MongoKind::IncompatibleServer { .. })
}

/// A password to keep out of error messages, as written in the URL and
/// percent-decoded.
#[derive(Clone)]
pub(crate) struct Secret {
    forms: Vec<String>,
}

impl Secret {
    /// The secret in its written (`raw`) form; also scrubs its decoded form.
    pub(crate) fn new(raw: &str) -> Self {
        let mut forms = vec![raw.to_owned()];
        let decoded = crate::config::percent_decode(raw);
        if decoded != raw {
            forms.push(decoded);
        }
        Secret { forms }
    }

    /// `text` with every occurrence of the secret replaced by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for form in &self.forms {
            if !form.is_empty() {
                out = out.replace(form.as_str(), "***");
            }
        }
        out
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed_in_both_forms() {
        let s = Secret::new("p%40ss");
        assert_eq!(
            s.scrub("auth p@ss / p%40ss failed"),
            "auth *** / *** failed"
        );
    }

    fn command_error(code: i32, name: &str) -> mongodb::error::Error {
        let command: mongodb::error::CommandError = mongodb::bson::from_document(
            mongodb::bson::doc! { "code": code, "codeName": name, "errmsg": "refused" },
        )
        .unwrap();
        mongodb::error::Error::from(MongoKind::Command(command))
    }

    #[test]
    fn privileges_and_credentials_are_permission_errors_by_code() {
        for (code, name) in [(13, "Unauthorized"), (18, "AuthenticationFailed")] {
            let e = map_mongodb_error(command_error(code, name), None);
            assert_eq!(e.kind(), ErrorKind::Permission, "{name}: {e}");
            assert!(!e.is_temporary());
        }
        let e = map_mongodb_error(command_error(112, "WriteConflict"), None);
        assert_eq!(e.kind(), ErrorKind::Contention, "{e}");
        assert!(e.is_temporary());
        let e = map_mongodb_error(command_error(2, "BadValue"), None);
        assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
    }

    #[test]
    fn kinds_follow_the_driver_error() {
        let err = mongodb::error::Error::custom("x");
        assert_eq!(map_mongodb_error(err, None).kind(), ErrorKind::Backend);
        let io =
            mongodb::error::Error::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow"));
        assert_eq!(map_mongodb_error(io, None).kind(), ErrorKind::Timeout);
        let io = mongodb::error::Error::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused with hunter2",
        ));
        let mapped = map_mongodb_error(io, Some(&Secret::new("hunter2")));
        assert_eq!(mapped.kind(), ErrorKind::Connection);
        assert!(!mapped.to_string().contains("hunter2"), "{mapped}");
        assert!(std::error::Error::source(&mapped).is_none());
    }
}
