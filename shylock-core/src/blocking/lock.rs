//! [`Lock`], its guard [`LockGuard`] and its place in line [`Ticket`].

use std::time::{Duration, SystemTime};

use super::{blocking_twin, FromAsync};
use crate::backend::{LockInfo, SharedBackend};
use crate::error::Result;
use crate::guard::AsyncLockGuard;
use crate::lock::AsyncLock;
use crate::runtime::run;
use crate::ticket::AsyncTicket;

blocking_twin! {
    /// A named distributed lock for blocking (non-async) code.
    ///
    /// The same lock as [`AsyncLock`] with the same methods, minus `.await`.
    /// Each call blocks the calling thread until it is done; see the
    /// [module docs](super) for what that means inside async code.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate shylock_core as shylock;
    /// use shylock::blocking::Lock;
    /// use shylock::MemoryBackend;
    ///
    /// let backend = MemoryBackend::new();
    /// let lock = Lock::with_backend("nightly-job", backend.clone());
    /// let guard = lock.acquire()?;
    /// assert!(Lock::with_backend("nightly-job", backend).try_acquire()?.is_none());
    /// guard.release()?;
    /// # Ok::<(), shylock::Error>(())
    /// ```
    pub struct Lock(AsyncLock);
    fn new(name: impl Into<String>);
    fn with_backend(name: impl Into<String>, backend: impl Into<SharedBackend>);
    get {
        /// The lock name.
        fn name -> &str;
    }
    run {
        /// Blocks until the lock is ours (see [`AsyncLock::acquire`]).
        fn acquire() -> LockGuard;
        /// One attempt, never waits (see [`AsyncLock::try_acquire`]).
        fn try_acquire() -> Option<LockGuard>;
        /// Takes a place in the line of waiters and returns it at once (see
        /// [`AsyncLock::enqueue`]).
        fn enqueue() -> Ticket;
        /// Waits at most `timeout`; `None` when it timed out.
        fn acquire_timeout(timeout: Duration) -> Option<LockGuard>;
        /// True when anyone holds the lock.
        fn is_locked() -> bool;
        /// The current holder, or `None` when the lock is free.
        fn inspect() -> Option<LockInfo>;
        /// Removes the lock whoever holds it (see [`AsyncLock::force_release`]).
        fn force_release() -> bool;
    }
}

/// A held blocking lock; dropping it releases the lock before `drop`
/// returns: one round trip to the database (bounded by the operation
/// timeout), so a drop blocks the thread that long. Errors of that release
/// are logged; call [`release`](Self::release) to see them.
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::blocking::Lock;
/// use shylock::MemoryBackend;
///
/// let lock = Lock::with_backend("cron", MemoryBackend::new());
/// {
///     let _guard = lock.acquire()?;
///     // exclusive work
/// } // released here
/// assert!(!lock.is_locked()?);
/// # Ok::<(), shylock::Error>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct LockGuard {
    inner: Option<AsyncLockGuard>,
}

impl FromAsync<AsyncLockGuard> for LockGuard {
    fn from_async(inner: AsyncLockGuard) -> Self {
        LockGuard { inner: Some(inner) }
    }
}

impl LockGuard {
    fn guard(&self) -> &AsyncLockGuard {
        self.inner
            .as_ref()
            .expect("the inner guard is only taken by release() or drop")
    }

    /// The lock name.
    pub fn name(&self) -> &str {
        self.guard().name()
    }

    /// This holder's owner token (see [`AsyncLockGuard::owner`]).
    pub fn owner(&self) -> &str {
        self.guard().owner()
    }

    /// This holder's fencing token (see [`AsyncLockGuard::fencing_token`]).
    pub fn fencing_token(&self) -> u64 {
        self.guard().fencing_token()
    }

    /// When the lease expires unless extended, by the database's clock.
    pub fn expires_at(&self) -> SystemTime {
        self.guard().expires_at()
    }

    /// True once the lock is known lost.
    pub fn is_lost(&self) -> bool {
        self.guard().is_lost()
    }

    /// Blocks until the lock is lost or `timeout` passes; returns whether it
    /// was lost.
    pub fn wait_lost(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.is_lost() {
                return true;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(10)));
        }
    }

    /// Pushes the expiry to now + `ttl` (see [`AsyncLockGuard::extend`]).
    pub fn extend(&self, ttl: Duration) -> Result<()> {
        run("extend", self.guard().extend_owned(ttl))
    }

    /// Frees the lock (see [`AsyncLockGuard::release`]).
    pub fn release(mut self) -> Result<()> {
        match self.inner.take() {
            Some(guard) => run("release", guard.release()),
            None => Ok(()),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(guard) = self.inner.take() {
            let name = guard.name().to_owned();
            if let Err(error) = run("release", guard.release()) {
                tracing::warn!(lock = %name, %error, "release of a blocking lock on drop failed");
            }
        }
    }
}

/// A place in the line of waiters of a lock, for blocking code: the
/// blocking face of [`AsyncTicket`]. Dropping it leaves the line (in the
/// background, without blocking).
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::blocking::Lock;
/// use shylock::MemoryBackend;
///
/// # fn main() -> shylock::Result<()> {
/// let lock = Lock::with_backend("queue", MemoryBackend::new());
/// let ticket = lock.enqueue()?;
/// let guard = ticket.wait()?;
/// guard.release()?;
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping a ticket leaves the line"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct Ticket {
    inner: Option<AsyncTicket>,
}

impl FromAsync<AsyncTicket> for Ticket {
    fn from_async(inner: AsyncTicket) -> Self {
        Ticket { inner: Some(inner) }
    }
}

impl Ticket {
    fn take(&mut self) -> AsyncTicket {
        self.inner
            .take()
            .expect("a ticket is only taken by the method that consumes it")
    }

    /// The lock name.
    pub fn name(&self) -> &str {
        self.inner.as_ref().map_or("", AsyncTicket::name)
    }

    /// How many live tickets were ahead of this one when it joined the line.
    pub fn place(&self) -> u64 {
        self.inner.as_ref().map_or(0, AsyncTicket::place)
    }

    /// Blocks until this ticket's turn (see [`AsyncTicket::wait`]).
    pub fn wait(mut self) -> Result<LockGuard> {
        let ticket = self.take();
        run("wait", ticket.wait()).map(FromAsync::from_async)
    }

    /// Blocks at most `timeout` for this ticket's turn; `None` when the
    /// time ran out (the ticket then left the line).
    pub fn wait_timeout(mut self, timeout: Duration) -> Result<Option<LockGuard>> {
        let ticket = self.take();
        run("wait_timeout", ticket.wait_timeout(timeout)).map(FromAsync::from_async)
    }

    /// Leaves the line now; whether the ticket was still there.
    pub fn leave(mut self) -> Result<bool> {
        let ticket = self.take();
        run("leave_queue", ticket.leave())
    }
}
