//! The one error type of shylock.

use std::time::Duration;

/// A boxed error from a database driver, kept as the `source()` of
/// [`Error::Backend`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout shylock.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when taking, holding or releasing a lock.
///
/// Every message says what to do next. The enum is `#[non_exhaustive]`: match
/// the variants you care about and keep a `_` arm.
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::{AsyncLock, Error, MemoryBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let lock = AsyncLock::with_backend("", MemoryBackend::new());
/// match lock.try_acquire().await {
///     Err(Error::InvalidName { .. }) => {}
///     other => panic!("expected InvalidName, got {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A lock was created without a backend and no default backend is set.
    #[error(
        "no default lock backend is configured: call `shylock::configure(backend)` once at \
         startup, or build the lock with `with_backend(name, backend)`"
    )]
    NotConfigured,

    /// [`configure`](crate::configure) or [`configure_with`](crate::configure_with)
    /// was called a second time.
    #[error(
        "a default lock backend is already configured: call `shylock::configure` only once per \
         process, or pass a backend explicitly with `with_backend(name, backend)`"
    )]
    AlreadyConfigured,

    /// The lock name is empty or too long.
    #[error("invalid lock name: {reason}")]
    InvalidName {
        /// Why the name was rejected and what is accepted.
        reason: String,
    },

    /// A [`LockOptions`](crate::LockOptions) value is out of range.
    #[error("invalid lock options: {reason}")]
    InvalidOptions {
        /// Which option is wrong and what range is accepted.
        reason: String,
    },

    /// Waiting for the lock took longer than the configured wait timeout.
    #[error(
        "timed out after {waited:?} waiting for lock {name:?}: it is still held by another \
         owner; raise the wait timeout, use `try_acquire()` to skip instead of waiting, or \
         check `is_locked()` / `force_release()` if the holder is stuck"
    )]
    Timeout {
        /// Name of the lock.
        name: String,
        /// How long the caller waited.
        waited: Duration,
    },

    /// The lock is held by another owner and the caller asked not to wait
    /// (`#[locked(.., nowait)]`).
    #[error(
        "lock {name:?} is held by another owner; it was not waited for (nowait). Try again \
         later, or wait for it (drop `nowait`, or set a timeout)"
    )]
    Held {
        /// Name of the lock.
        name: String,
    },

    /// The lock is no longer ours: it expired and another owner may have taken
    /// it, or it was force-released.
    #[error(
        "lock {name:?} was lost: it expired or was taken over before it was released or \
         extended; treat the work done under it as unprotected (check fencing tokens in the \
         systems you wrote to) and raise the ttl or keep renewal on"
    )]
    LockLost {
        /// Name of the lock.
        name: String,
    },

    /// The database failed, could not be reached or did not answer in time.
    #[error("{backend} backend error ({kind}): {message}")]
    Backend {
        /// Which backend reported the error (`"mongodb"`, `"sqlite"`, ...).
        backend: &'static str,
        /// What kind of failure it was; decides [`Error::is_transient`].
        kind: ErrorKind,
        /// What failed and what to check.
        message: String,
        /// The driver's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// The background runtime that drives blocking [`Lock`](crate::Lock)s
    /// could not be started.
    #[error("could not start shylock's background runtime for blocking locks: {0}; use AsyncLock from your own runtime instead")]
    Runtime(#[source] std::io::Error),

    /// An operation panicked inside shylock's background runtime (a bug in
    /// shylock or in a backend). A lock it may have taken expires by its ttl.
    #[error(
        "the {operation} operation panicked on shylock's background runtime; this is a bug in \
         shylock or in the backend, please report it with the log; a lock it may have taken \
         expires by its ttl"
    )]
    Panicked {
        /// Which operation panicked (`"acquire"`, `"release"`, ...).
        operation: &'static str,
    },
}

/// What kind of failure an [`Error::Backend`] is, so callers can decide
/// without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The database could not be reached, refused the connection, is
    /// failing over or asked to slow down. A later attempt may succeed.
    Unavailable,
    /// The database did not answer within the operation's deadline. The
    /// operation may or may not have taken effect.
    TimedOut,
    /// The database refused the credentials or the user may not do this.
    Unauthenticated,
    /// A lock record has a shape this backend does not write (wrong types,
    /// missing fields): another program wrote it, or it was edited by hand.
    CorruptRecord,
    /// The backend is set up wrongly: a bad URI, a missing database or
    /// collection, an index with other options, an unsupported server.
    Misconfigured,
    /// A limit this library sets was reached, such as the length of a
    /// line of fair waiters ([`MAX_WAITERS`](crate::backend::MAX_WAITERS)).
    /// A later attempt succeeds once the line is shorter.
    LimitReached,
    /// Anything else the database reported.
    Other,
}

impl ErrorKind {
    /// True for the kinds a retry can fix: [`Unavailable`](Self::Unavailable)
    /// and [`TimedOut`](Self::TimedOut).
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Unavailable | ErrorKind::TimedOut)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::CorruptRecord => "corrupt record",
            ErrorKind::Misconfigured => "misconfigured",
            ErrorKind::LimitReached => "limit reached",
            ErrorKind::Other => "other",
        })
    }
}

impl Error {
    /// Builds an [`Error::Backend`] with the driver error as its source.
    pub fn backend(
        backend: &'static str,
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Backend {
            backend,
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Builds an [`Error::Backend`] that has no underlying driver error.
    pub fn backend_msg(backend: &'static str, kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::Backend {
            backend,
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The kind of a backend error; `None` for the other variants.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Backend { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The error the core reports when an operation passed its deadline.
    pub(crate) fn timed_out(operation: &str, after: Duration) -> Self {
        Error::Backend {
            backend: "shylock",
            kind: ErrorKind::TimedOut,
            message: format!(
                "{operation} got no answer from the database within {after:?}; check that the \
                 database is up and reachable (network, load, failover), or raise \
                 LockOptions::operation_timeout"
            ),
            source: None,
        }
    }

    pub(crate) fn invalid_options(reason: impl Into<String>) -> Self {
        Error::InvalidOptions {
            reason: reason.into(),
        }
    }

    /// True for errors that a later attempt may not hit again: backend
    /// errors of a transient [`ErrorKind`] (unavailable, timed out). False
    /// for errors in the caller's input, setup or state.
    pub fn is_transient(&self) -> bool {
        self.kind().is_some_and(ErrorKind::is_transient)
    }
}
