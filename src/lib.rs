//! Distributed locks kept in the database you already run.
//!
//! A lock is one record, kept unique by name by the database itself, with an
//! owner token, an expiry and a fencing counter: exactly one process holds
//! it, a crashed holder's lock frees itself after its ttl, and nobody can
//! release a lock that is not theirs.
//!
//! ```toml
//! [dependencies]
//! shylock = "0.1"            # or: { version = "0.1", features = ["mongo"] }
//! tokio = { version = "1", features = ["rt-multi-thread", "macros"] }
//! ```
//!
//! The async types need a tokio runtime; the blocking ones in [`blocking`]
//! ([`Lock`], [`Semaphore`], ...) run their work on shylock's own
//! ([`background_runtime`]) and need none.
//!
//! # Backends
//!
//! Each behind a cargo feature:
//!
//! | feature | backend | store |
//! |---|---|---|
//! | (always) | [`MemoryBackend`] | this process only |
//! | `sqlite` (default) | `SqliteBackend` | a file shared by the processes of one machine |
//! | `mongo` | `MongoBackend` | a MongoDB collection (replica sets and sharded clusters too) |
//! | `arango` | `ArangoBackend` | an ArangoDB collection |
//! | `postgres` | `PostgresBackend` | a PostgreSQL table (through PgBouncer too) |
//!
//! Other features: `macros` (default) for [`#[locked]`](macro@locked),
//! `metrics` for the [`metrics`] facade, `tower` for per-request locks in
//! web services (`shylock::tower::LockLayer`), `testkit` for the conformance
//! suite of [`backend`] authors.
//!
//! # Examples
//!
//! Configure a default backend once, then lock by name anywhere: an async
//! guard (in a web handler, say), or `try_acquire` to skip work another
//! process is already doing (a cron job):
//!
//! ```
//! use shylock::{AsyncLock, MemoryBackend};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> shylock::Result<()> {
//! shylock::configure(MemoryBackend::new())?;
//!
//! let guard = AsyncLock::new("orders/42").acquire().await?;
//! // ... exclusive work; send guard.fencing_token() along with writes ...
//! guard.release().await?;
//!
//! // Skip instead of waiting when another replica runs the job:
//! match AsyncLock::new("nightly-report").try_acquire().await? {
//!     Some(guard) => {
//!         // ... run it ...
//!         guard.release().await?;
//!     }
//!     None => { /* someone else is running it */ }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Blocking code uses [`Lock`], with the same methods minus `.await`:
//!
//! ```
//! use shylock::{Lock, MemoryBackend};
//!
//! # fn main() -> shylock::Result<()> {
//! let backend = MemoryBackend::new();
//! let lock = Lock::with_backend("invoices/export", backend);
//! let guard = lock.acquire()?;
//! assert!(lock.try_acquire()?.is_none(), "held until released");
//! guard.release()?;
//! # Ok(())
//! # }
//! ```
//!
//! # Fencing tokens
//!
//! [`AsyncLockGuard::fencing_token`] is a `u64`, strictly greater for each
//! new holder of a name than for all before it; its values are
//! backend-specific (SQLite counts 1, 2, 3, ... per name; MongoDB and
//! ArangoDB use `max(previous + 1, server time in milliseconds)`, so store
//! it in 64 bits).
//!
//! # More
//!
//! The [`guide`] covers the other lock shapes ([`AsyncSemaphore`],
//! [`AsyncMultiLock`], [`AsyncReentrantLock`], fair waiting with
//! [`AsyncTicket`], [`Election`], `#[locked]`), operating shylock (the
//! `shylock` command, metrics, tracing, [`release_all`] at shutdown),
//! errors, failure behaviour and each backend in detail.

#![cfg_attr(docsrs, feature(doc_cfg))]

// Everything shylock-core exports at its root (tests/public_types.rs checks).
pub use shylock_core::{
    background_runtime, block_on, configure, configure_with, default_backend, is_configured,
    release_all, release_all_blocking, AsyncLock, AsyncLockGuard, AsyncMultiLock,
    AsyncMultiLockGuard, AsyncReadGuard, AsyncReentrantGuard, AsyncReentrantLock, AsyncRwLock,
    AsyncSemaphore, AsyncTicket, AsyncWriteGuard, BoxError, Campaign, Election, Error, ErrorKind,
    LeaderInfo, Lock, LockGuard, LockInfo, LockOptions, MemoryBackend, MultiLock, QueueInfo,
    ReentrantLock, ReleaseAllReport, Renewal, Result, Role, RwLock, RwLockInfo, RwPreference,
    Semaphore, SemaphoreInfo, ShardedBackend, SharedBackend, Ticket, DEFAULT_CLOCK_DRIFT_PPM,
    DEFAULT_OPERATION_TIMEOUT, MAX_PERMITS, MAX_TTL, MAX_WAITERS,
};

// The old guard names, deprecated for one release.
#[allow(deprecated)]
pub use shylock_core::{
    BlockingMultiLockGuard, BlockingReentrantGuard, MultiLockGuard, ReentrantGuard,
};

pub use shylock_core::blocking;
pub use shylock_core::metrics;

/// Holds a distributed lock for the whole function (feature `macros`, on
/// by default).
///
/// ```text
/// #[shylock::locked("report-{user_id}")]                  // waits
/// #[shylock::locked("import-{tenant}", nowait)]           // held -> Err(Error::Held { .. })
/// #[shylock::locked("sync-{job.id}", timeout = "5s", ttl = "30s", backend = my_backend())]
/// ```
///
/// - The name is a template over the function's arguments: `{arg}`, or
///   `{arg.field}` for a field (`{self.id}` in methods); `{{` and `}}` are
///   braces. Each value is formatted with `Display`.
/// - Without options the function waits for the lock (the default
///   backend's options apply); `nowait` returns `Err(Error::Held { name })`
///   when someone else holds it; `timeout = "5s"` returns
///   `Err(Error::Timeout { .. })` after that long. Durations are whole
///   numbers with `ms`, `s`, `m` or `h`.
/// - `ttl = ".."` sets the lease's ttl; `backend = expr` uses that backend
///   (anything `Into<SharedBackend>`) instead of the default one.
/// - The function must return `Result<T, E>` with `E: From<shylock::Error>`:
///   lock errors arrive through it. An `async fn` uses [`AsyncLock`], a
///   plain `fn` the blocking [`Lock`].
/// - The lock is held across the whole body, `.await`s included, and
///   released on every return path; a panic drops the guard, which releases
///   it too. A body that returned `Ok` while its lease was lost returns
///   `Err(Error::LockLost { .. })` instead: its work was not protected.
/// - A companion function `<name>_lock(same arguments)` returns the lock
///   for those arguments, for `is_locked()`, `inspect()` or
///   `force_release()` from outside.
///
/// # Examples
///
/// ```
/// use shylock::{locked, MemoryBackend, SharedBackend};
///
/// fn store() -> SharedBackend {
///     static STORE: std::sync::OnceLock<MemoryBackend> = std::sync::OnceLock::new();
///     STORE.get_or_init(MemoryBackend::new).clone().into()
/// }
///
/// #[locked("report-{user_id}", nowait, backend = store())]
/// async fn build_report(user_id: u64) -> Result<String, shylock::Error> {
///     // At most one report per user at a time, across all processes.
///     Ok(format!("report for {user_id}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), shylock::Error> {
/// assert_eq!(build_report(7).await?, "report for 7");
/// assert!(!build_report_lock(7).is_locked().await?);
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use shylock_macros::locked;

#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use shylock_sqlite::SqliteBackend;

/// The embedded SQLite backend (feature `sqlite`).
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite {
    pub use shylock_sqlite::*;
}

#[cfg(feature = "mongo")]
#[cfg_attr(docsrs, doc(cfg(feature = "mongo")))]
pub use shylock_mongo::MongoBackend;

/// The MongoDB backend (feature `mongo`), with the driver re-exported as
/// `shylock::mongo::mongodb`.
#[cfg(feature = "mongo")]
#[cfg_attr(docsrs, doc(cfg(feature = "mongo")))]
pub mod mongo {
    pub use shylock_mongo::*;
}

#[cfg(feature = "arango")]
#[cfg_attr(docsrs, doc(cfg(feature = "arango")))]
pub use shylock_arango::ArangoBackend;

/// The ArangoDB backend (feature `arango`).
#[cfg(feature = "arango")]
#[cfg_attr(docsrs, doc(cfg(feature = "arango")))]
pub mod arango {
    pub use shylock_arango::*;
}

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use shylock_postgres::PostgresBackend;

/// The PostgreSQL backend (feature `postgres`), with sqlx re-exported as
/// `shylock::postgres::sqlx`.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres {
    pub use shylock_postgres::*;
}

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

/// For backend authors: the [`Backend`](backend::Backend) trait, what its
/// operations return, time helpers and release signals; with feature
/// `testkit`, the conformance suite as `shylock::backend::testkit`.
pub mod backend {
    pub use shylock_core::async_trait;
    pub use shylock_core::backend::*;

    #[cfg(feature = "testkit")]
    #[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
    pub use shylock_core::testkit;

    #[cfg(feature = "testkit")]
    #[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
    pub use shylock_core::conformance_tests;
}

/// The guide: the lock shapes beyond the single lock, operating shylock,
/// errors and failure behaviour, and each backend in detail (`GUIDE.md` in
/// the repository).
#[cfg_attr(
    all(feature = "sqlite", feature = "mongo", feature = "arango"),
    doc = include_str!("../GUIDE.md")
)]
#[cfg_attr(
    not(all(feature = "sqlite", feature = "mongo", feature = "arango")),
    doc = "Built with features `sqlite`, `mongo` and `arango` (as on docs.rs), this page holds the guide; it is also `GUIDE.md` in the repository."
)]
pub mod guide {}

/// The README's examples, compiled as doctests.
#[cfg(all(
    doctest,
    feature = "mongo",
    feature = "arango",
    feature = "sqlite",
    feature = "tower"
))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
