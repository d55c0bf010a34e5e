//! [`SqliteBackend`]: opening the file and the six operations.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use shylock_core::backend::{
    duration_to_millis, prefix_upper_bound, system_time_from_millis, Backend, Deadline, Grant,
    QueueBackend, ReleaseSignals, RwLockBackend, SemaphoreBackend,
};
use shylock_core::{Error, ErrorKind, LockInfo, Result};

use crate::conn::{count_statements, fence_of, kind_of, now_ms, with_conn, Inner, BACKEND};
use crate::queries as sql;
use crate::watch::FileWatcher;

/// How long a write waits for another process's transaction before failing.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Prepared statements kept per connection: more than the backend's
/// distinct statements (about 40), so none is parsed twice.
const STATEMENT_CACHE: usize = 64;

/// Locks in a SQLite file shared by the processes of one machine.
///
/// Cheap to clone: clones share one connection. Convert it into a
/// [`SharedBackend`](shylock_core::SharedBackend) with `.into()`.
#[derive(Clone)]
pub struct SqliteBackend {
    inner: Arc<Inner>,
    /// Wakes waiters at commits by other connections (files only).
    watcher: Option<Arc<FileWatcher>>,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("location", &self.inner.location)
            .finish()
    }
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
                ErrorKind::Misconfigured,
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
        let conn = Connection::open_in_memory().map_err(|e| {
            Error::backend(
                BACKEND,
                ErrorKind::Other,
                "could not open an in-memory database",
                e,
            )
        })?;
        Self::setup(conn, ":memory:".into(), false)
    }

    fn setup(conn: Connection, location: String, wal: bool) -> Result<Self> {
        count_statements(&conn);
        let fail = |what: &str, e: rusqlite::Error| {
            Error::backend(
                BACKEND,
                kind_of(&e),
                format!("could not set up lock database {location:?} ({what})"),
                e,
            )
        };
        conn.busy_timeout(DEFAULT_BUSY_TIMEOUT)
            .map_err(|e| fail("busy timeout", e))?;
        // Every operation runs its statements prepared once per connection:
        // parsing them anew took most of an uncontended acquire's CPU time.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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
        let watcher = wal.then(|| FileWatcher::for_path(Path::new(&location)));
        Ok(SqliteBackend {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                location,
                busy_timeout: DEFAULT_BUSY_TIMEOUT,
                signals: ReleaseSignals::new(),
                permit_signals: ReleaseSignals::new(),
                read_signals: ReleaseSignals::new(),
                write_signals: ReleaseSignals::new(),
            }),
            watcher,
        })
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// One `IMMEDIATE` transaction running `statement` (`EXTEND` or
    /// `PERMIT_EXTEND`: ?1 name, ?2 owner, ?3 new expiry, ?4 now, a row
    /// back when the live lease was `owner`'s); the new expiry, or `None`.
    pub(crate) async fn extend_with(
        &self,
        what: &'static str,
        statement: &'static str,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        let ttl_ms = duration_to_millis(ttl);
        with_conn(&self.inner, what, deadline, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let expires = now.saturating_add(ttl_ms);
            let fence: Option<i64> = tx
                .prepare_cached(statement)?
                .query_row(params![name.as_bytes(), owner, expires, now], |row| {
                    row.get(0)
                })
                .optional()?;
            tx.commit()?;
            Ok(fence.map(|_| system_time_from_millis(expires)))
        })
        .await
    }

    /// One `IMMEDIATE` transaction running `statement` (?1 name, ?2 owner);
    /// whether it changed a row.
    pub(crate) async fn write_owned(
        &self,
        what: &'static str,
        statement: &'static str,
        name: &str,
        owner: &str,
        deadline: Deadline,
    ) -> Result<bool> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        with_conn(&self.inner, what, deadline, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let changed = tx
                .prepare_cached(statement)?
                .execute(params![name.as_bytes(), owner])?;
            tx.commit()?;
            Ok(changed == 1)
        })
        .await
    }

    /// Starts waking this handle's waiters at other connections' commits.
    /// Whether a file watcher reads the line at each commit (a file has
    /// one; an in-memory database does not).
    pub(crate) fn has_watcher(&self) -> bool {
        self.watcher.is_some()
    }

    pub(crate) fn watch(&self) {
        if let Some(watcher) = &self.watcher {
            watcher.watch(&self.inner);
        }
    }

    pub(crate) fn permit_signals(&self) -> &ReleaseSignals {
        &self.inner.permit_signals
    }

    /// The file this backend uses (`:memory:` for in-memory ones).
    pub fn location(&self) -> &str {
        &self.inner.location
    }
}

pub(crate) fn utf8_name(bytes: Vec<u8>) -> rusqlite::Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

#[shylock_core::async_trait]
impl Backend for SqliteBackend {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn claim(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        let ttl_ms = duration_to_millis(ttl);
        with_conn(&self.inner, "acquire", deadline, move |conn| {
            // A lock another owner holds is only read: waiters polling it
            // take no write transaction (and no write lock on the file).
            // The decision to grant is still made by the write below.
            let holder: Option<String> = conn
                .prepare_cached(sql::INSPECT)?
                .query_row(params![name.as_bytes(), now_ms()], |row| row.get(0))
                .optional()?;
            if holder.is_some_and(|h| h != owner) {
                return Ok(None);
            }
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let expires = now.saturating_add(ttl_ms);
            let fence: Option<i64> = tx
                .prepare_cached(sql::ACQUIRE)?
                .query_row(params![name.as_bytes(), owner, expires, now], |row| {
                    row.get(0)
                })
                .optional()?;
            tx.commit()?;
            Ok(fence.map(|f| Grant::new(fence_of(f), system_time_from_millis(expires))))
        })
        .await
    }

    async fn extend(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        self.extend_with("extend", sql::EXTEND, name, owner, ttl, deadline)
            .await
    }

    async fn release(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        let released = self
            .write_owned("release", sql::RELEASE, name, owner, deadline)
            .await?;
        if released {
            self.inner.signals.notify(name);
        }
        Ok(released)
    }

    async fn inspect(&self, name: &str, deadline: Deadline) -> Result<Option<LockInfo>> {
        let name = name.to_owned();
        with_conn(&self.inner, "inspect", deadline, move |conn| {
            conn.prepare_cached(sql::INSPECT)?
                .query_row(params![name.as_bytes(), now_ms()], |row| {
                    let owner: String = row.get(0)?;
                    let expires: i64 = row.get(1)?;
                    let fence: i64 = row.get(2)?;
                    Ok(LockInfo::new(
                        name.clone(),
                        owner,
                        fence_of(fence),
                        system_time_from_millis(expires),
                    ))
                })
                .optional()
        })
        .await
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<LockInfo>> {
        let upper = prefix_upper_bound(prefix).map(String::into_bytes);
        let prefix = prefix.as_bytes().to_vec();
        let after = after.map(|a| a.as_bytes().to_vec());
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        with_conn(&self.inner, "list", deadline, move |conn| {
            let mut statement = conn.prepare_cached(sql::LIST)?;
            let rows =
                statement.query_map(params![prefix, upper, after, now_ms(), limit], |row| {
                    let name: Vec<u8> = row.get(0)?;
                    let owner: String = row.get(1)?;
                    let expires: i64 = row.get(2)?;
                    let fence: i64 = row.get(3)?;
                    Ok(LockInfo::new(
                        utf8_name(name)?,
                        owner,
                        fence_of(fence),
                        system_time_from_millis(expires),
                    ))
                })?;
            rows.collect()
        })
        .await
    }

    async fn force_release(&self, name: &str, deadline: Deadline) -> Result<bool> {
        let owned = name.to_owned();
        let removed = with_conn(&self.inner, "force_release", deadline, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let live: Option<i64> = tx
                .prepare_cached(sql::IS_LIVE)?
                .query_row(params![owned.as_bytes(), now_ms()], |row| row.get(0))
                .optional()?;
            tx.prepare_cached(sql::FORCE_RELEASE)?
                .execute(params![owned.as_bytes()])?;
            tx.commit()?;
            Ok(live.is_some())
        })
        .await?;
        self.inner.signals.notify(name);
        Ok(removed)
    }

    fn release_signal(&self, name: &str) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        let signal = self.inner.signals.subscribe(name);
        self.watch();
        Some(signal)
    }

    fn releases_watched_since(&self, _name: &str) -> Option<std::time::Instant> {
        self.watcher.as_ref().and_then(|w| w.since())
    }

    fn semaphores(&self) -> Option<&dyn SemaphoreBackend> {
        Some(self)
    }

    fn queues(&self) -> Option<&dyn QueueBackend> {
        Some(self)
    }

    fn rwlocks(&self) -> Option<&dyn RwLockBackend> {
        Some(self)
    }
}
