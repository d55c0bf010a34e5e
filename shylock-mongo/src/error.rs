//! What the driver's errors mean, and the one retry this backend makes
//! itself (Cosmos DB's rate limiting).

use std::time::Duration;

use mongodb::error::{ErrorKind as DriverKind, WriteFailure};
use shylock_core::{Error, ErrorKind};

pub(crate) const BACKEND: &str = "mongodb";

/// The server error code of a command or write error, if any.
pub(crate) fn error_code(error: &mongodb::error::Error) -> Option<i32> {
    match &*error.kind {
        DriverKind::Command(c) => Some(c.code),
        DriverKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        DriverKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        _ => None,
    }
}

/// 11000: two first-time creators raced on the same `_id`.
pub(crate) fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    error_code(error) == Some(11000)
}

/// 16500: Cosmos DB's "request rate is large".
fn is_rate_limited(error: &mongodb::error::Error) -> bool {
    error_code(error) == Some(16500)
}

/// The kind of a driver error.
pub(crate) fn kind_of(error: &mongodb::error::Error) -> ErrorKind {
    match &*error.kind {
        DriverKind::ServerSelection { .. }
        | DriverKind::Io(_)
        | DriverKind::ConnectionPoolCleared { .. }
        | DriverKind::DnsResolve { .. } => ErrorKind::Unavailable,
        DriverKind::Authentication { .. } => ErrorKind::Unauthenticated,
        DriverKind::InvalidArgument { .. } | DriverKind::InvalidTlsConfig { .. } => {
            ErrorKind::Misconfigured
        }
        DriverKind::BsonDeserialization(_) => ErrorKind::CorruptRecord,
        _ => match error_code(error) {
            // MaxTimeMSExpired, and a write concern that timed out (wtimeout).
            Some(50 | 64) => ErrorKind::TimedOut,
            // Rate limited, not primary, shutting down, interrupted at shutdown.
            Some(16500 | 10107 | 13435 | 91 | 11600 | 11602 | 189) => ErrorKind::Unavailable,
            Some(13 | 18) => ErrorKind::Unauthenticated,
            // Index options or key specs conflict, invalid namespace.
            Some(85 | 86 | 73) => ErrorKind::Misconfigured,
            _ if error.contains_label("RetryableWriteError") => ErrorKind::Unavailable,
            _ => ErrorKind::Other,
        },
    }
}

/// A backend error for `what`, with a hint of what to check.
pub(crate) fn mongo_error(what: &str, error: mongodb::error::Error) -> Error {
    let kind = kind_of(&error);
    let hint = match &*error.kind {
        // The driver reports why servers were not selectable only in this
        // message; a refused connection is the common first-run mistake.
        DriverKind::ServerSelection { message, .. } if message.contains("refused") => {
            "; the server refused the connection: check the host and port in the URI and that \
             MongoDB is running there"
        }
        DriverKind::ServerSelection { .. } => {
            "; no server answered within the server selection timeout: check the URI, that \
             MongoDB is running and reachable, and the TLS and auth settings"
        }
        DriverKind::Authentication { .. } => "; check the user name, password and authSource",
        DriverKind::Io(_) => "; the connection failed, check the network and the server",
        _ if kind == ErrorKind::TimedOut => {
            "; the server did not finish in time (maxTimeMS or the write concern's wtimeout): \
             check its load and that a majority of the replica set is up"
        }
        _ => "",
    };
    Error::backend(BACKEND, kind, format!("{what} failed{hint}"), error)
}

/// A lock document whose fields this backend did not write.
pub(crate) fn corrupt(what: &str) -> Error {
    Error::backend_msg(
        BACKEND,
        ErrorKind::CorruptRecord,
        format!("lock document {what}; was it written by another program? Remove it, or use another collection"),
    )
}

/// Runs `op`, retrying rate-limit errors (Cosmos DB 16500) with backoff,
/// at most 6 attempts over about 1.5 s.
pub(crate) async fn retry_rate_limited<T, F, Fut>(mut op: F) -> mongodb::error::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::IntoFuture<Output = mongodb::error::Result<T>>,
{
    let mut pause = Duration::from_millis(25);
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if is_rate_limited(&e) && attempt < 6 => {
                tracing::debug!(attempt, "mongodb rate limited (16500); retrying");
                let jitter = fastrand::u64(0..pause.as_millis() as u64);
                tokio::time::sleep(pause + Duration::from_millis(jitter)).await;
                pause *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}
