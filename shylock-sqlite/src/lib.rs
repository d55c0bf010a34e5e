//! Embedded SQLite backend for [shylock](https://crates.io/crates/shylock)
//! locks: every process on one machine that opens the same file shares the
//! same locks. No server, nothing installed system-wide (SQLite is bundled).
//!
//! One table, `shylock_locks`, keyed by the lock name (stored as bytes, so
//! any UTF-8 name works, NUL included) with the owner token, the expiry in
//! milliseconds since the Unix epoch and the fencing counter. The database
//! runs in WAL mode with a busy timeout; every write is one `BEGIN
//! IMMEDIATE` transaction. Rows are kept after release (owner cleared) so
//! fencing tokens keep increasing across release, expiry and
//! `force_release`.
//!
//! Database calls never stall the async runtime: on a multi-thread runtime
//! they run through `tokio::task::block_in_place` (the worker's other tasks
//! move to another thread), elsewhere on tokio's blocking pool.
//!
//! # Examples
//!
//! ```
//! use shylock_core::AsyncLock;
//! use shylock_sqlite::SqliteBackend;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> shylock_core::Result<()> {
//! let dir = std::env::temp_dir().join(format!("shylock-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let backend = SqliteBackend::open(dir.join("locks.db"))?;
//! let guard = AsyncLock::with_backend("backup", backend).acquire().await?;
//! guard.release().await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::trace::{TraceEvent, TraceEventCodes};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use shylock_core::{
    duration_to_millis, system_time_from_millis, Backend, Error, Lease, LockInfo, ReleaseSignals,
    Result,
};

const BACKEND: &str = "sqlite";

/// The statements the backend runs, public so benchmarks can replay the
/// same database work without the library. Not a stable API.
///
/// Times are whole milliseconds, truncated, so a lease stored as
/// `now + ttl` expires only once the clock is strictly past it: it never
/// ends before a full ttl after the request.
#[doc(hidden)]
pub mod sql {
    /// Takes the lock if free, expired or ours (?1 name, ?2 owner, ?3 new
    /// expiry ms, ?4 now ms); returns the fence when taken.
    pub const ACQUIRE: &str = "INSERT INTO shylock_locks (name, owner, expires_at_ms, fence)
         VALUES (?1, ?2, ?3, 1)
         ON CONFLICT (name) DO UPDATE SET
             fence = CASE WHEN owner = ?2 AND expires_at_ms >= ?4
                          THEN fence ELSE fence + 1 END,
             owner = ?2,
             expires_at_ms = ?3
         WHERE owner IS NULL OR expires_at_ms < ?4 OR owner = ?2
         RETURNING fence";
    /// Frees the lock if ?2 owns it.
    pub const RELEASE: &str = "UPDATE shylock_locks SET owner = NULL, expires_at_ms = 0
         WHERE name = ?1 AND owner = ?2";
    /// Creates the table.
    pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS shylock_locks (
             name BLOB PRIMARY KEY NOT NULL,
             owner TEXT,
             expires_at_ms INTEGER NOT NULL,
             fence INTEGER NOT NULL
         ) WITHOUT ROWID;";
}

static STATEMENTS: AtomicU64 = AtomicU64::new(0);

fn count_statement(event: TraceEvent<'_>) {
    if let TraceEvent::Profile(..) = event {
        STATEMENTS.fetch_add(1, Ordering::Relaxed);
    }
}

/// SQL statements (`BEGIN` and `COMMIT` included) run so far by all
/// `SqliteBackend` connections of this process: for benchmarks and
/// monitoring.
pub fn statements_executed() -> u64 {
    STATEMENTS.load(Ordering::Relaxed)
}

/// How long a write waits for another process's transaction before failing.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Locks in a SQLite file shared by the processes of one machine.
///
/// Cheap to clone: clones share one connection. Convert it into a
/// [`SharedBackend`](shylock_core::SharedBackend) with `.into()`.
#[derive(Clone)]
pub struct SqliteBackend {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    location: String,
    signals: ReleaseSignals,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("location", &self.inner.location)
            .finish()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn fence_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl SqliteBackend {
    /// Opens (creating if needed) the lock database at `path`. Safe to call
    /// from many processes at once.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the file cannot be opened or set up, e.g. its
    /// directory does not exist or is not writable.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path: PathBuf = path.as_ref().to_owned();
        let location = path.display().to_string();
        let conn = Connection::open(&path).map_err(|e| {
            Error::backend(
                BACKEND,
                format!(
                    "could not open lock database {location:?}: check that its directory \
                     exists and is writable"
                ),
                e,
            )
        })?;
        Self::setup(conn, location, true)
    }

    /// A private in-memory database: locks shared by clones of this backend
    /// only. For tests.
    pub fn open_in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory()
            .map_err(|e| Error::backend(BACKEND, "could not open an in-memory database", e))?;
        Self::setup(conn, ":memory:".into(), false)
    }

    fn setup(conn: Connection, location: String, wal: bool) -> Result<Self> {
        // Fires once per finished statement.
        conn.trace_v2(TraceEventCodes::SQLITE_TRACE_PROFILE, Some(count_statement));
        let fail = |what: &str, e: rusqlite::Error| {
            Error::backend(
                BACKEND,
                format!("could not set up lock database {location:?} ({what})"),
                e,
            )
        };
        conn.busy_timeout(DEFAULT_BUSY_TIMEOUT)
            .map_err(|e| fail("busy timeout", e))?;
        // Several processes may open a new file at once. Switching it to WAL
        // takes an exclusive lock, and SQLite may answer "busy" for that
        // without waiting, so the setup steps retry busy errors themselves
        // (within the busy timeout).
        let deadline = std::time::Instant::now() + DEFAULT_BUSY_TIMEOUT;
        let retry_busy = |what: &str, step: &dyn Fn() -> rusqlite::Result<()>| {
            let mut pause = Duration::from_millis(5);
            loop {
                match step() {
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if matches!(
                            e.code,
                            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                        ) && std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_millis(200));
                    }
                    other => return other.map_err(|e| fail(what, e)),
                }
            }
        };
        if wal {
            // WAL lets readers (inspect) run beside a writer; NORMAL sync is
            // durable across process crashes, which is what locks need. WAL
            // is stored in the file: only its first opener switches it.
            retry_busy("journal_mode=WAL", &|| {
                let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
                if !mode.eq_ignore_ascii_case("wal") {
                    conn.pragma_update(None, "journal_mode", "WAL")?;
                }
                Ok(())
            })?;
            retry_busy("synchronous", &|| {
                conn.pragma_update(None, "synchronous", "NORMAL")
            })?;
        }
        retry_busy("create table", &|| conn.execute_batch(sql::SCHEMA))?;
        Ok(SqliteBackend {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                location,
                signals: ReleaseSignals::new(),
            }),
        })
    }

    /// The file this backend uses (`:memory:` for in-memory ones).
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// Runs `work` with the connection without stalling the runtime: on a
    /// multi-thread runtime through `block_in_place` (the worker hands its
    /// other tasks to another thread and runs the statement itself, saving a
    /// thread hop per operation), elsewhere on the blocking pool.
    async fn with_conn<T, F>(&self, what: &'static str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let run = move || {
            let mut conn = inner.conn.lock().unwrap_or_else(|p| p.into_inner());
            work(&mut conn).map_err(|e| {
                Error::backend(
                    BACKEND,
                    format!(
                        "{what} failed on {:?}; if the error says the database is locked, \
                         another process held a write transaction longer than the busy \
                         timeout",
                        inner.location
                    ),
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
                format!("{what} did not complete (the blocking task was cancelled or panicked)"),
                join,
            )),
        }
    }
}

#[shylock_core::async_trait]
impl Backend for SqliteBackend {
    async fn acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<Option<Lease>> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        let ttl_ms = duration_to_millis(ttl);
        self.with_conn("acquire", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let expires = now.saturating_add(ttl_ms);
            // Taken when free, expired, or already ours (a retry keeps its
            // fencing token); every new holder gets fence + 1.
            let fence: Option<i64> = tx
                .query_row(
                    sql::ACQUIRE,
                    params![name.as_bytes(), owner, expires, now],
                    |row| row.get(0),
                )
                .optional()?;
            tx.commit()?;
            Ok(fence
                .map(|f| Lease::new(name, owner, fence_of(f), system_time_from_millis(expires))))
        })
        .await
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Option<Lease>> {
        let lease = lease.clone();
        let ttl_ms = duration_to_millis(ttl);
        self.with_conn("extend", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let expires = now_ms().saturating_add(ttl_ms);
            let fence: Option<i64> = tx
                .query_row(
                    "UPDATE shylock_locks SET expires_at_ms = ?3
                     WHERE name = ?1 AND owner = ?2 RETURNING fence",
                    params![lease.name().as_bytes(), lease.owner(), expires],
                    |row| row.get(0),
                )
                .optional()?;
            tx.commit()?;
            Ok(fence.map(|f| {
                Lease::new(
                    lease.name(),
                    lease.owner(),
                    fence_of(f),
                    system_time_from_millis(expires),
                )
            }))
        })
        .await
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        let (name, owner) = (lease.name().to_owned(), lease.owner().to_owned());
        let released = self
            .with_conn("release", move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let changed = tx.execute(sql::RELEASE, params![name.as_bytes(), owner])?;
                tx.commit()?;
                Ok(changed == 1)
            })
            .await?;
        if released {
            self.inner.signals.notify(lease.name());
        }
        Ok(released)
    }

    async fn inspect(&self, name: &str) -> Result<Option<LockInfo>> {
        let name = name.to_owned();
        self.with_conn("inspect", move |conn| {
            conn.query_row(
                "SELECT owner, expires_at_ms, fence FROM shylock_locks
                 WHERE name = ?1 AND owner IS NOT NULL AND expires_at_ms >= ?2",
                params![name.as_bytes(), now_ms()],
                |row| {
                    let owner: String = row.get(0)?;
                    let expires: i64 = row.get(1)?;
                    let fence: i64 = row.get(2)?;
                    Ok(LockInfo::new(
                        name.clone(),
                        owner,
                        fence_of(fence),
                        system_time_from_millis(expires),
                    ))
                },
            )
            .optional()
        })
        .await
    }

    async fn force_release(&self, name: &str) -> Result<bool> {
        let owned = name.to_owned();
        let removed = self
            .with_conn("force_release", move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let live: Option<i64> = tx
                    .query_row(
                        "SELECT 1 FROM shylock_locks
                         WHERE name = ?1 AND owner IS NOT NULL AND expires_at_ms >= ?2",
                        params![owned.as_bytes(), now_ms()],
                        |row| row.get(0),
                    )
                    .optional()?;
                tx.execute(
                    "UPDATE shylock_locks SET owner = NULL, expires_at_ms = 0 WHERE name = ?1",
                    params![owned.as_bytes()],
                )?;
                tx.commit()?;
                Ok(live.is_some())
            })
            .await?;
        self.inner.signals.notify(name);
        Ok(removed)
    }

    fn release_signal(&self, name: &str) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        Some(self.inner.signals.subscribe(name))
    }
}
