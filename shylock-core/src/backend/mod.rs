//! The contract between the lock logic and a database, for backend authors.
//!
//! A backend implements [`Backend`]: six single-attempt operations that take
//! exactly what they need (name, owner token, ttl) and return only what the
//! database decided ([`Grant`], a new expiry, a yes/no, [`LockInfo`]). The
//! core builds leases and guards from those answers; waiting, timeouts,
//! retries, renewal and cancellation live in the core, once, for every
//! backend.
//!
//! A backend is correct when it passes the conformance suite in
//! `shylock_core::testkit` (feature `testkit`); see the crate README,
//! "Writing a backend", for a complete minimal backend.

mod name;
mod queue;
mod rwlock;
mod semaphore;
mod signal;
mod time;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use name::{validate_name, MAX_NAME_LEN};
pub use queue::{line_full, queues_unsupported, QueueBackend, QueueInfo, MAX_WAITERS};
pub use rwlock::{rwlocks_unsupported, Access, RwLockBackend, RwLockInfo};
pub use semaphore::{
    permits_mismatch, semaphores_unsupported, SemaphoreBackend, SemaphoreInfo, MAX_PERMITS,
};
pub use signal::ReleaseSignals;
pub use time::{duration_to_millis, prefix_upper_bound, system_time_from_millis, Deadline};

use crate::error::Result;

/// What a successful [`Backend::claim`] returns: the database's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// The holder's fencing token: strictly greater than every earlier
    /// holder's token for the same name.
    pub fencing_token: u64,
    /// When the lease ends unless extended, by the database's clock.
    pub expires_at: SystemTime,
}

impl Grant {
    /// A grant with its fencing token and expiry.
    pub fn new(fencing_token: u64, expires_at: SystemTime) -> Self {
        Grant {
            fencing_token,
            expires_at,
        }
    }
}

/// A live holder of a lock, as [`Backend::inspect`] and [`Backend::list`]
/// report it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockInfo {
    /// The lock name.
    pub name: String,
    /// Owner token of the current holder.
    pub owner: String,
    /// Fencing token of the current holder.
    pub fencing_token: u64,
    /// When the current lease expires, by the database's clock.
    pub expires_at: SystemTime,
}

impl LockInfo {
    /// Builds a `LockInfo` (for backend authors).
    pub fn new(
        name: impl Into<String>,
        owner: impl Into<String>,
        fencing_token: u64,
        expires_at: SystemTime,
    ) -> Self {
        LockInfo {
            name: name.into(),
            owner: owner.into(),
            fencing_token,
            expires_at,
        }
    }
}

/// A store that keeps locks: one implementation per database.
///
/// # The contract
///
/// Every method is **one attempt**: it never waits for a lock to become
/// free and never retries on its own for longer than its deadline. Names
/// passed in are already checked with [`validate_name`]; owner tokens are
/// opaque strings unique per acquisition.
///
/// | operation | does | must hold |
/// |---|---|---|
/// | [`claim`](Self::claim) | take the lock if free, expired or already `owner`'s | atomic: of N concurrent callers at most one wins; expiry by the database's clock; a new holder's fencing token is strictly greater than any before it for that name; a retry by the same owner keeps its token |
/// | [`extend`](Self::extend) | push the expiry of a lease `owner` still holds | `None` if the owner changed or the lease expired |
/// | [`release`](Self::release) | free the lock if `owner` still holds it | never frees another owner's lock |
/// | [`inspect`](Self::inspect) / [`list`](Self::list) | live holders (unexpired, by the database's clock) | read only |
/// | [`force_release`](Self::force_release) | remove whoever holds it | fencing tokens keep increasing afterwards |
/// | [`release_signal`](Self::release_signal) | optional wake-up for waiters | never needed for correctness |
/// | [`semaphores`](Self::semaphores) / [`queues`](Self::queues) / [`rwlocks`](Self::rwlocks) | the capabilities beyond the single lock, if offered | `Some(self)` only when every operation of that trait is implemented |
///
/// # Capabilities
///
/// Semaphores ([`SemaphoreBackend`]), fair queues ([`QueueBackend`]) and
/// read/write locks ([`RwLockBackend`]) are traits of their own whose
/// operations are all required, reached through
/// [`semaphores`](Self::semaphores), [`queues`](Self::queues) and
/// [`rwlocks`](Self::rwlocks), which answer `None` ("not offered") by
/// default. A backend offers a capability
/// by implementing its trait and answering `Some(self)`; forgetting an
/// operation is then a compile error, never a run-time surprise. The core
/// turns `None` into a clear error before any attempt, and the conformance
/// suite ([`conformance_tests!`](crate::conformance_tests)) runs the cases
/// of every capability offered.
///
/// Semaphore and read/write lock names are namespaces of their own: a
/// semaphore, a read/write lock and a lock with the same name are
/// independent.
///
/// # Deadlines
///
/// Every operation gets a [`Deadline`]. The core drops the operation's
/// future when the deadline passes and reports
/// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut), so an operation is
/// bounded even if the backend ignores its deadline; a backend should still
/// pass [`Deadline::remaining`] to its driver (a request timeout,
/// `maxTimeMS`, a `wtimeout`) so the server stops working on it too. A
/// `claim` dropped mid-flight counts as "may have won": the core releases
/// that owner afterwards, so a backend needs no cleanup of its own.
///
/// # Errors
///
/// Errors are [`Error::Backend`](crate::Error::Backend) with an
/// [`ErrorKind`](crate::ErrorKind) the backend chooses: `Unavailable` and
/// `TimedOut` are retried by renewal, the others are reported at once.
/// "Held by another owner", "lost the race" and "no longer ours" are
/// **answers** (`None` / `false`), never errors.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// A short, fixed name of the kind of store (`"sqlite"`, `"mongodb"`,
    /// ...), used as the `backend` label of metrics and the `backend` field
    /// of tracing spans. Default: `"custom"`.
    fn kind(&self) -> &'static str {
        "custom"
    }

    /// Takes `name` for `owner` for `ttl` if it is free, expired or already
    /// held by `owner`. Returns `None` when another owner holds it.
    async fn claim(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>>;

    /// Pushes the expiry of `owner`'s lease on `name` to now + `ttl`.
    /// Returns the new expiry, or `None` when the lock is no longer
    /// `owner`'s (taken over, expired, released or force-released).
    async fn extend(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>>;

    /// Frees `name` if `owner` still holds it. Returns whether it did; never
    /// frees another owner's lock.
    async fn release(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool>;

    /// The live holder of `name`, or `None` when it is free or expired.
    async fn inspect(&self, name: &str, deadline: Deadline) -> Result<Option<LockInfo>>;

    /// One page of live holders whose names start with `prefix`, in
    /// ascending byte order of their names, starting strictly after `after`
    /// (the last name of the previous page), at most `limit` entries (at
    /// least 1). A page shorter than `limit` is the last one. Backends
    /// bound the work per page, so a store with millions of lock records
    /// never loads into memory; [`list_all`] walks the pages.
    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<LockInfo>>;

    /// Frees `name` whoever holds it (operator escape hatch). Returns whether
    /// a live lock was removed. Fencing tokens keep increasing afterwards.
    async fn force_release(&self, name: &str, deadline: Deadline) -> Result<bool>;

    /// A signal notified (`notify_one`) when `name` may have been freed, so
    /// one waiter tries again at once instead of at its next backoff step.
    ///
    /// Backends that cannot observe releases return `None` (the default);
    /// waiters then only poll with backoff. [`ReleaseSignals`] implements it
    /// for releases made through the same backend handle, which every
    /// backend should at least do (a conformance case checks it).
    fn release_signal(&self, name: &str) -> Option<Arc<tokio::sync::Notify>> {
        let _ = name;
        None
    }

    /// Since when every release of `name` (a lock, or a permit of the
    /// semaphore `name`), made by any process, reaches
    /// [`release_signal`](Self::release_signal) /
    /// [`SemaphoreBackend::release_signal`]: for example
    /// since a change stream on the collection opened.
    /// `None` (the default) when releases elsewhere may go unnoticed.
    ///
    /// A fair waiter counts as reached when a backend that answers
    /// [`QueueBackend::turn_signal`] notifies it there at the releases
    /// where it can win.
    ///
    /// While it answers, a waiter whose last attempt started after that
    /// instant pauses between half of [`WATCHED_MAX_BACKOFF`] and all of it
    /// (or the options' maximum, if longer), from its first pause on,
    /// instead of pauses growing from the options' minimum: the signal
    /// wakes it at a release, and the slower polling only finds leases that
    /// expired without a release (a crashed holder).
    fn releases_watched_since(&self, name: &str) -> Option<std::time::Instant> {
        let _ = name;
        None
    }

    /// This backend's semaphores, if it offers them: `Some(self)` in a
    /// backend that implements [`SemaphoreBackend`]. `None` (the default):
    /// [`AsyncSemaphore`](crate::AsyncSemaphore) fails at once with
    /// [`semaphores_unsupported`].
    fn semaphores(&self) -> Option<&dyn SemaphoreBackend> {
        None
    }

    /// This backend's fair queues, if it offers them: `Some(self)` in a
    /// backend that implements [`QueueBackend`]. `None` (the default): fair
    /// locks and [`AsyncLock::enqueue`](crate::AsyncLock::enqueue) fail at
    /// once with [`queues_unsupported`].
    fn queues(&self) -> Option<&dyn QueueBackend> {
        None
    }

    /// This backend's read/write locks, if it offers them: `Some(self)` in
    /// a backend that implements [`RwLockBackend`]. `None` (the default):
    /// [`AsyncRwLock`](crate::AsyncRwLock) fails at once with
    /// [`rwlocks_unsupported`].
    fn rwlocks(&self) -> Option<&dyn RwLockBackend> {
        None
    }
}

/// The longest pause between two attempts of a waiter whose backend
/// watches releases (see [`Backend::releases_watched_since`]): 3 s. Pauses
/// are then uniform between 1.5 s and 3 s, so idle waiters cost about one
/// attempt every 2.25 s, and a lease that expired without a release (a
/// crashed holder) is found at most 3 s late.
pub const WATCHED_MAX_BACKOFF: Duration = Duration::from_secs(3);

/// Every live holder whose name starts with `prefix`, walking
/// [`Backend::list`] page by page (`page` entries per round trip, each
/// bounded by `per_page`).
///
/// # Errors
///
/// The first error of any page, or an [`ErrorKind::Other`] error when the
/// backend broke the paging contract (a page longer than asked, or names
/// out of order).
///
/// [`ErrorKind::Other`]: crate::ErrorKind::Other
pub async fn list_all(
    backend: &dyn Backend,
    prefix: &str,
    page: usize,
    per_page: Duration,
) -> Result<Vec<LockInfo>> {
    let page = page.max(1);
    let mut all: Vec<LockInfo> = Vec::new();
    loop {
        let after = all.last().map(|i| i.name.clone());
        let deadline = Deadline::after(per_page);
        let rows = deadline
            .bound(
                "list",
                backend.list(prefix, after.as_deref(), page, deadline),
            )
            .await?;
        let mut previous = after.clone();
        for row in &rows {
            if previous
                .as_ref()
                .is_some_and(|p| row.name.as_bytes() <= p.as_bytes())
            {
                return Err(broken_paging("names out of order or repeated"));
            }
            previous = Some(row.name.clone());
        }
        if rows.len() > page {
            return Err(broken_paging("a page longer than asked for"));
        }
        let done = rows.len() < page;
        all.extend(rows);
        if done {
            return Ok(all);
        }
    }
}

fn broken_paging(what: &str) -> crate::Error {
    crate::Error::backend_msg(
        "shylock",
        crate::ErrorKind::Other,
        format!(
            "the backend's list() broke the paging contract ({what}); this is a bug in the backend"
        ),
    )
}

/// A cheap-to-clone handle to any [`Backend`]: what locks hold.
///
/// Every backend converts into it with `.into()`.
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::{MemoryBackend, SharedBackend};
///
/// let backend: SharedBackend = MemoryBackend::new().into();
/// let again = backend.clone(); // same store
/// # let _ = again;
/// ```
#[derive(Clone)]
pub struct SharedBackend(Arc<dyn Backend>);

impl SharedBackend {
    /// Wraps a backend.
    pub fn new(backend: impl Backend) -> Self {
        SharedBackend(Arc::new(backend))
    }

    /// Wraps an already shared backend.
    pub fn from_arc(backend: Arc<dyn Backend>) -> Self {
        SharedBackend(backend)
    }

    /// An identity of the store handle: equal for clones of one handle.
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as *const () as usize
    }
}

impl<B: Backend> From<B> for SharedBackend {
    fn from(backend: B) -> Self {
        SharedBackend::new(backend)
    }
}

impl<B: Backend> From<Arc<B>> for SharedBackend {
    fn from(backend: Arc<B>) -> Self {
        SharedBackend(backend)
    }
}

impl std::ops::Deref for SharedBackend {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Debug for SharedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
