//! What ArangoDB's answers mean.

use std::time::Duration;

use arangors::ClientError;
use shylock_core::{Error, ErrorKind, Result};

pub(crate) const BACKEND: &str = "arangodb";

/// ArangoDB error number: unique constraint violated.
pub const ERROR_UNIQUE_CONSTRAINT: u16 = 1210;
/// ArangoDB error number: write-write conflict.
pub const ERROR_CONFLICT: u16 = 1200;
pub(crate) const ERROR_DUPLICATE_NAME: u16 = 1207;

pub(crate) fn annotate(error: Error, hint: &str) -> Error {
    match error {
        Error::Backend {
            backend,
            kind,
            message,
            source,
        } => Error::Backend {
            backend,
            kind,
            message: format!("{message}; {hint}"),
            source,
        },
        other => other,
    }
}

pub(crate) async fn with_timeout<T>(
    timeout: Duration,
    what: &str,
    fut: impl std::future::Future<Output = std::result::Result<T, ClientError>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(arango_error(what, e)),
        Err(_) => Err(Error::backend_msg(
            BACKEND,
            ErrorKind::TimedOut,
            format!(
                "{what} got no answer within {timeout:?}; check that ArangoDB is running and \
                 reachable, or raise request_timeout"
            ),
        )),
    }
}

/// Whether the server refused the request's credentials (HTTP 401,
/// errorNum 11), as it does once a JWT has expired.
pub(crate) fn is_unauthorized(error: &ClientError) -> bool {
    matches!(error, ClientError::Arango(e) if e.code() == 401)
}

pub(crate) fn error_num(error: &ClientError) -> Option<u16> {
    match error {
        ClientError::Arango(e) => Some(e.error_num()),
        _ => None,
    }
}

pub(crate) fn arango_error(what: &str, error: ClientError) -> Error {
    let hint = match &error {
        ClientError::Arango(e) if e.code() == 401 || e.error_num() == 11 => {
            "; the server refused the credentials: check user and password"
        }
        ClientError::Arango(e) if e.error_num() == 1228 => "; the database does not exist",
        ClientError::InvalidServer(_) => {
            "; the server's answer to `GET /` carries no `Server: ArangoDB` header, which the \
             client library requires: point the URL at ArangoDB itself, or at a proxy that keeps \
             the header, and do not start ArangoDB with --http.hide-product-header"
        }
        ClientError::HttpClient(_) => "; the HTTP request failed: check the URL and the network",
        _ => "",
    };
    Error::backend(
        BACKEND,
        kind_of(&error),
        format!("{what} failed{hint}"),
        error,
    )
}

pub(crate) fn timeout_error() -> ClientError {
    ClientError::HttpClient(TIMED_OUT.into())
}

const TIMED_OUT: &str = "request timed out";

/// The kind of an error arangors reported.
pub(crate) fn kind_of(error: &ClientError) -> ErrorKind {
    match error {
        ClientError::Arango(e) if e.code() == 401 || e.error_num() == 11 => {
            ErrorKind::Unauthenticated
        }
        ClientError::Arango(e) if e.code() == 403 => ErrorKind::Unauthenticated,
        // Database or collection not found, illegal name.
        ClientError::Arango(e) if matches!(e.error_num(), 1228 | 1203 | 1208 | 1229) => {
            ErrorKind::Misconfigured
        }
        // Shutting down, cluster backend unavailable, timeouts, overload.
        ClientError::Arango(e) if matches!(e.code(), 503 | 502 | 504 | 429) => {
            ErrorKind::Unavailable
        }
        ClientError::Arango(e) if e.error_num() == 1200 => ErrorKind::Unavailable,
        ClientError::Arango(_) => ErrorKind::Other,
        ClientError::HttpClient(message) if message == TIMED_OUT => ErrorKind::TimedOut,
        ClientError::HttpClient(_) => ErrorKind::Unavailable,
        ClientError::InvalidServer(_) => ErrorKind::Misconfigured,
        ClientError::Serde(_) => ErrorKind::CorruptRecord,
        _ => ErrorKind::Other,
    }
}

pub(crate) struct QueryError {
    pub(crate) what: String,
    pub(crate) error: ClientError,
}

impl QueryError {
    pub(crate) fn into_error(self) -> Error {
        arango_error(&self.what, self.error)
    }
}
