//! Maps the AWS SDK's errors onto respcache's [`ErrorKind`]s.

use std::error::Error as StdError;
use std::fmt;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use respcache_core::{Error, ErrorKind};

use crate::NAME;

/// DynamoDB's error code for a table that does not exist (or is not
/// `ACTIVE` yet).
pub(crate) const RESOURCE_NOT_FOUND: &str = "ResourceNotFoundException";

/// The source of every service error [`map_sdk_error`] makes: the SDK's
/// error with the service's error code beside it, so callers decide by
/// the code ([`service_code`]), never by message text.
#[derive(Debug)]
pub(crate) struct ServiceError {
    code: String,
    sdk: Box<dyn StdError + Send + Sync>,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The SDK's own text ("service error"): the code and the service's
        // message are already in the respcache error's message.
        fmt::Display::fmt(&self.sdk, f)
    }
}

impl StdError for ServiceError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.sdk.as_ref())
    }
}

/// The DynamoDB error code of `err`, when it is a service error mapped by
/// [`map_sdk_error`].
pub(crate) fn service_code(err: &Error) -> Option<&str> {
    StdError::source(err)
        .and_then(|s| s.downcast_ref::<ServiceError>())
        .map(|s| s.code.as_str())
}

/// Turns an SDK error into a respcache [`Error`] of the right kind, with the
/// service's error code and message (the SDK's own `Display` says only
/// "service error"); the code stays readable by [`service_code`].
///
/// - `ResourceNotFoundException`: [`ErrorKind::Configuration`], naming the
///   table (it is missing, or not `ACTIVE` yet).
/// - throttling and capacity errors (after the SDK's own retries):
///   [`ErrorKind::Throttled`], which is temporary.
/// - a transaction conflict: [`ErrorKind::Contention`], also temporary.
/// - `InternalServerError`, `ServiceUnavailable`, connection and dispatch
///   failures: [`ErrorKind::Connection`]; SDK timeouts and `RequestTimeout`:
///   [`ErrorKind::Timeout`].
/// - a `ValidationException` about an item's size: [`ErrorKind::PayloadTooLarge`].
/// - rejected, expired or missing credentials, and a denied action
///   (`AccessDeniedException`, `UnrecognizedClientException`, ...):
///   [`ErrorKind::Permission`].
/// - anything else: [`ErrorKind::Backend`].
pub(crate) fn map_sdk_error<E, R>(err: SdkError<E, R>, table: &str) -> Error
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let mut code_seen = None;
    let (kind, message) = match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("UnknownError");
            let text = e.message().unwrap_or("");
            let kind = kind_of_code(code, text);
            let detail = if text.is_empty() {
                code.to_owned()
            } else {
                format!("{code}: {text}")
            };
            code_seen = Some(code.to_owned());
            let message = if code == RESOURCE_NOT_FOUND {
                format!(
                    "DynamoDB table {table:?} does not exist or is not ACTIVE \
                     (create it, or connect with create_table=true) ({detail}; service error)"
                )
            } else if kind == ErrorKind::PayloadTooLarge {
                format!("the item is over DynamoDB's 400 KB item limit ({detail}; service error)")
            } else {
                format!("{detail} (table {table:?}; service error)")
            };
            (kind, message)
        }
        SdkError::TimeoutError(_) => (ErrorKind::Timeout, chain(&err)),
        SdkError::DispatchFailure(dispatch) => {
            let kind = if dispatch.is_timeout() {
                ErrorKind::Timeout
            } else if dispatch.is_user() {
                ErrorKind::Configuration
            } else {
                ErrorKind::Connection
            };
            (kind, chain(&err))
        }
        SdkError::ResponseError(_) => (ErrorKind::Connection, chain(&err)),
        SdkError::ConstructionFailure(_) => (ErrorKind::Configuration, chain(&err)),
        _ => (ErrorKind::Backend, chain(&err)),
    };
    let e = Error::new(kind, message).with_backend(NAME);
    match code_seen {
        Some(code) => e.with_source(ServiceError {
            code,
            sdk: Box::new(err),
        }),
        None => e.with_source(err),
    }
}

/// `err` and its sources on one line, `a: b: c` (the SDK's
/// `DisplayErrorContext` also appends the whole `Debug` form).
pub(crate) fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && parts.last().is_none_or(|last| !last.ends_with(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// The kind for a DynamoDB error code (and, for validation errors, message).
fn kind_of_code(code: &str, message: &str) -> ErrorKind {
    match code {
        RESOURCE_NOT_FOUND => ErrorKind::Configuration,
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "MissingAuthenticationToken"
        | "MissingAuthenticationTokenException"
        | "IncompleteSignature"
        | "IncompleteSignatureException"
        | "ExpiredTokenException"
        | "AccessDeniedException"
        | "InvalidClientTokenId" => ErrorKind::Permission,
        "ProvisionedThroughputExceededException"
        | "ThrottlingException"
        | "Throttling"
        | "RequestLimitExceeded"
        | "LimitExceededException" => ErrorKind::Throttled,
        "TransactionConflictException" => ErrorKind::Contention,
        "RequestTimeout" | "RequestTimeoutException" => ErrorKind::Timeout,
        "InternalServerError" | "InternalFailure" | "ServiceUnavailable" => ErrorKind::Connection,
        "ValidationException" if is_size_message(message) => ErrorKind::PayloadTooLarge,
        _ => ErrorKind::Backend,
    }
}

/// Whether a `ValidationException` message is about an item or request size.
fn is_size_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("size has exceeded") || m.contains("item size") || m.contains("request size")
}

/// An error of `kind` raised by this backend itself (not by the SDK).
pub(crate) fn backend_error(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error::new(kind, message).with_backend(NAME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_dynamodb::operation::put_item::PutItemError;

    #[test]
    fn codes_map_to_kinds() {
        assert_eq!(
            kind_of_code("ResourceNotFoundException", "Requested resource not found"),
            ErrorKind::Configuration
        );
        assert_eq!(
            kind_of_code("ProvisionedThroughputExceededException", ""),
            ErrorKind::Throttled
        );
        assert_eq!(
            kind_of_code("ThrottlingException", ""),
            ErrorKind::Throttled
        );
        assert_eq!(
            kind_of_code("RequestLimitExceeded", ""),
            ErrorKind::Throttled
        );
        assert_eq!(
            kind_of_code("TransactionConflictException", ""),
            ErrorKind::Contention
        );
        assert_eq!(
            kind_of_code("AccessDeniedException", ""),
            ErrorKind::Permission
        );
        assert_eq!(
            kind_of_code("UnrecognizedClientException", ""),
            ErrorKind::Permission
        );
        assert_eq!(
            kind_of_code("InternalServerError", ""),
            ErrorKind::Connection
        );
        assert_eq!(
            kind_of_code(
                "ValidationException",
                "Item size has exceeded the maximum allowed size"
            ),
            ErrorKind::PayloadTooLarge
        );
        assert_eq!(
            kind_of_code(
                "ValidationException",
                "One or more parameter values were invalid"
            ),
            ErrorKind::Backend
        );
        assert_eq!(kind_of_code("SomethingNew", ""), ErrorKind::Backend);
    }

    fn service(code: &str, message: &str) -> SdkError<PutItemError, ()> {
        SdkError::service_error(
            PutItemError::generic(ErrorMetadata::builder().code(code).message(message).build()),
            (),
        )
    }

    #[test]
    fn service_errors_show_code_and_message() {
        let e = map_sdk_error(
            service(
                "ValidationException",
                "Item size has exceeded the maximum allowed size",
            ),
            "t1",
        );
        assert_eq!(e.kind(), ErrorKind::PayloadTooLarge);
        assert_eq!(e.backend(), Some("dynamodb"));
        let text = e.to_string();
        assert!(
            text.contains("ValidationException: Item size has exceeded the maximum allowed size"),
            "{text}"
        );
        // The SDK's own Display ("service error") is not appended again.
        assert_eq!(text.matches("service error").count(), 1, "{text}");

        let e = map_sdk_error(
            service("ResourceNotFoundException", "Requested resource not found"),
            "t1",
        );
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.to_string().contains("table \"t1\" does not exist"), "{e}");

        assert_eq!(service_code(&e), Some(RESOURCE_NOT_FOUND));

        let e = map_sdk_error(service("ThrottlingException", "Rate exceeded"), "t1");
        assert_eq!(e.kind(), ErrorKind::Throttled);
        assert_eq!(service_code(&e), Some("ThrottlingException"));
        assert!(e.is_temporary());
        assert!(
            e.to_string().contains("ThrottlingException: Rate exceeded"),
            "{e}"
        );
    }

    #[test]
    fn transport_errors_are_connection_or_timeout() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = map_sdk_error(
            SdkError::<PutItemError, ()>::dispatch_failure(ConnectorError::io(Box::new(refused))),
            "t1",
        );
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert!(e.is_temporary());
        let e = map_sdk_error(SdkError::<PutItemError, ()>::timeout_error("slow"), "t1");
        assert_eq!(e.kind(), ErrorKind::Timeout);
    }
}
