//! The state every clone of a backend shares, running statements on its
//! connection without stalling the runtime, and what their errors mean.
//! A leaf: it uses nothing else of this crate, so the backend, its
//! capabilities and the file watcher can all use it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode};
use shylock_core::backend::{Deadline, ReleaseSignals};
use shylock_core::{Error, ErrorKind, Result};

pub(crate) const BACKEND: &str = "sqlite";

/// What the clones of one `SqliteBackend` share: the connection and the
/// signals its waiters wait on.
pub(crate) struct Inner {
    pub(crate) conn: Mutex<Connection>,
    pub(crate) location: String,
    pub(crate) busy_timeout: Duration,
    pub(crate) signals: ReleaseSignals,
    pub(crate) permit_signals: ReleaseSignals,
    /// Read/write locks: readers may enter, a writer may win.
    pub(crate) read_signals: ReleaseSignals,
    pub(crate) write_signals: ReleaseSignals,
}

/// Now in milliseconds since the Unix epoch: this machine's clock, which
/// is the lock file's.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A stored fence as a fencing token (a negative one, never written by
/// this backend, as 0).
pub(crate) fn fence_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The kind of a SQLite error.
pub(crate) fn kind_of(error: &rusqlite::Error) -> ErrorKind {
    match error {
        rusqlite::Error::SqliteFailure(e, _) => match e.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => ErrorKind::Unavailable,
            ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly
            | ErrorCode::NotADatabase => ErrorKind::Misconfigured,
            ErrorCode::DatabaseCorrupt => ErrorKind::CorruptRecord,
            _ => ErrorKind::Other,
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..) => ErrorKind::CorruptRecord,
        _ => ErrorKind::Other,
    }
}

/// Runs `work` with the connection, waiting for other processes' write
/// transactions at most until `deadline`, without stalling the runtime: on
/// a multi-thread runtime through `block_in_place` (the worker hands its
/// other tasks to another thread and runs the statement itself, saving a
/// thread hop per operation), elsewhere on the blocking pool.
pub(crate) async fn with_conn<T, F>(
    inner: &Arc<Inner>,
    what: &'static str,
    deadline: Deadline,
    work: F,
) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
{
    let inner = inner.clone();
    let run = move || {
        let mut conn = inner.conn.lock().unwrap_or_else(|p| p.into_inner());
        // The core stops waiting at the deadline; SQLite must stop too, or
        // a statement blocked on another process's transaction would hold
        // this thread (and the connection) after the caller gave up.
        let busy = deadline
            .remaining()
            .min(inner.busy_timeout)
            .max(Duration::from_millis(1));
        let outcome = conn.busy_timeout(busy).and_then(|()| work(&mut conn));
        outcome.map_err(|e| {
            let kind = kind_of(&e);
            let hint = match kind {
                ErrorKind::Unavailable => {
                    "; another process held a write transaction until the deadline (raise \
                     operation_timeout, or look for a process stuck inside a transaction)"
                }
                ErrorKind::CorruptRecord => {
                    "; a row of shylock_locks has a shape this backend does not write: was \
                     the table written by another program?"
                }
                ErrorKind::Misconfigured => "; check that the file is a writable SQLite database",
                _ => "",
            };
            Error::backend(
                BACKEND,
                kind,
                format!("{what} failed on {:?}{hint}", inner.location),
                e,
            )
        })
    };
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        return tokio::task::block_in_place(run);
    }
    match tokio::task::spawn_blocking(run).await {
        Ok(result) => result,
        Err(join) => Err(Error::backend(
            BACKEND,
            ErrorKind::Other,
            format!("{what} did not complete (the blocking task was cancelled or panicked)"),
            join,
        )),
    }
}

#[cfg(feature = "bench")]
static STATEMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// SQL statements (`BEGIN` and `COMMIT` included) run so far by all
/// `SqliteBackend` connections of this process (feature `bench`).
#[cfg(feature = "bench")]
pub fn statements_executed() -> u64 {
    STATEMENTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts finished statements on `conn` (feature `bench`; nothing without).
pub(crate) fn count_statements(conn: &Connection) {
    #[cfg(feature = "bench")]
    {
        fn count(event: rusqlite::trace::TraceEvent<'_>) {
            if let rusqlite::trace::TraceEvent::Profile(..) = event {
                STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        conn.trace_v2(
            rusqlite::trace::TraceEventCodes::SQLITE_TRACE_PROFILE,
            Some(count),
        );
    }
    #[cfg(not(feature = "bench"))]
    let _ = conn;
}
