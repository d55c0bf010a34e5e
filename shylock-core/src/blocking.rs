//! [`Lock`]: the blocking face of [`AsyncLock`], for code without async.
//!
//! Every blocking call hands its work to one background runtime that
//! shylock starts on first use (a single worker thread named
//! `shylock-runtime`) and waits for the answer on a plain channel. That
//! works from plain threads, from `tokio::task::spawn_blocking`, and never
//! nests one runtime inside another. Renewal of blocking guards runs there
//! too, so the caller needs no runtime at all.
//!
//! Called from async code (inside a tokio task), a blocking method neither
//! panics nor deadlocks, but it blocks the worker thread it runs on for the
//! whole wait, stalling every other task of that thread (all of them on a
//! `current_thread` runtime). From async code use [`AsyncLock`], or wrap
//! the call in `tokio::task::spawn_blocking`.

use std::time::{Duration, SystemTime};

use crate::backend::{LockInfo, SharedBackend};
use crate::error::Result;
use crate::guard::AsyncLockGuard;
use crate::lock::AsyncLock;
use crate::options::LockOptions;
use crate::runtime::run;
use crate::ticket::AsyncTicket;

/// A named distributed lock for blocking (non-async) code.
///
/// The same lock as [`AsyncLock`] with the same methods, minus `.await`.
/// Each call blocks the calling thread until it is done, on shylock's
/// background runtime, so no runtime of the caller's is needed. From async
/// code use [`AsyncLock`] (or `tokio::task::spawn_blocking`): a blocking
/// call there stalls the worker thread it runs on.
///
/// # Examples
///
/// ```
/// use shylock_core::{Lock, MemoryBackend};
///
/// let backend = MemoryBackend::new();
/// let lock = Lock::with_backend("nightly-job", backend.clone());
/// let guard = lock.acquire()?;
/// assert!(Lock::with_backend("nightly-job", backend).try_acquire()?.is_none());
/// guard.release()?;
/// # Ok::<(), shylock_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Lock {
    inner: AsyncLock,
}

impl Lock {
    /// A lock on `name` in the default backend (see [`AsyncLock::new`]).
    pub fn new(name: impl Into<String>) -> Self {
        Lock {
            inner: AsyncLock::new(name),
        }
    }

    /// A lock on `name` in an explicit backend.
    pub fn with_backend(name: impl Into<String>, backend: impl Into<SharedBackend>) -> Self {
        Lock {
            inner: AsyncLock::with_backend(name, backend),
        }
    }

    /// Sets this lock's options (see [`AsyncLock::with_options`]).
    pub fn with_options(self, options: LockOptions) -> Self {
        Lock {
            inner: self.inner.with_options(options),
        }
    }

    /// The lock name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The async lock behind this one.
    pub fn as_async(&self) -> &AsyncLock {
        &self.inner
    }

    /// Blocks until the lock is ours (see [`AsyncLock::acquire`]).
    pub fn acquire(&self) -> Result<LockGuard> {
        let lock = self.inner.clone();
        run("acquire", async move { lock.acquire().await }).map(LockGuard::new)
    }

    /// One attempt, never waits (see [`AsyncLock::try_acquire`]).
    pub fn try_acquire(&self) -> Result<Option<LockGuard>> {
        let lock = self.inner.clone();
        Ok(run("try_acquire", async move { lock.try_acquire().await })?.map(LockGuard::new))
    }

    /// Takes a place in the line of waiters and returns it at once (see
    /// [`AsyncLock::enqueue`]).
    pub fn enqueue(&self) -> Result<Ticket> {
        let lock = self.inner.clone();
        run("enqueue", async move { lock.enqueue().await }).map(|t| Ticket { inner: Some(t) })
    }

    /// Waits at most `timeout`; `None` when it timed out.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>> {
        let lock = self.inner.clone();
        Ok(run("acquire_timeout", async move {
            lock.acquire_timeout(timeout).await
        })?
        .map(LockGuard::new))
    }

    /// True when anyone holds the lock.
    pub fn is_locked(&self) -> Result<bool> {
        let lock = self.inner.clone();
        run("is_locked", async move { lock.is_locked().await })
    }

    /// The current holder, or `None` when the lock is free.
    pub fn inspect(&self) -> Result<Option<LockInfo>> {
        let lock = self.inner.clone();
        run("inspect", async move { lock.inspect().await })
    }

    /// Removes the lock whoever holds it (see [`AsyncLock::force_release`]).
    pub fn force_release(&self) -> Result<bool> {
        let lock = self.inner.clone();
        run("force_release", async move { lock.force_release().await })
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
/// use shylock_core::{Lock, MemoryBackend};
///
/// let lock = Lock::with_backend("cron", MemoryBackend::new());
/// {
///     let _guard = lock.acquire()?;
///     // exclusive work
/// } // released here
/// assert!(!lock.is_locked()?);
/// # Ok::<(), shylock_core::Error>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct LockGuard {
    inner: Option<AsyncLockGuard>,
}

impl LockGuard {
    pub(crate) fn new(inner: AsyncLockGuard) -> Self {
        LockGuard { inner: Some(inner) }
    }

    fn guard(&self) -> &AsyncLockGuard {
        self.inner
            .as_ref()
            .expect("the inner guard is only taken by release() or drop")
    }

    /// The lock name.
    pub fn name(&self) -> &str {
        self.guard().name()
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
/// use shylock_core::{Lock, LockOptions, MemoryBackend};
///
/// # fn main() -> shylock_core::Result<()> {
/// let lock = Lock::with_backend("queue", MemoryBackend::new());
/// let ticket = lock.enqueue()?;
/// let guard = ticket.wait()?;
/// guard.release()?;
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping a ticket leaves the line"]
#[derive(Debug)]
pub struct Ticket {
    inner: Option<AsyncTicket>,
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
        run("wait", ticket.wait()).map(LockGuard::new)
    }

    /// Blocks at most `timeout` for this ticket's turn; `None` when the
    /// time ran out (the ticket then left the line).
    pub fn wait_timeout(mut self, timeout: Duration) -> Result<Option<LockGuard>> {
        let ticket = self.take();
        Ok(run("wait_timeout", ticket.wait_timeout(timeout))?.map(LockGuard::new))
    }

    /// Leaves the line now; whether the ticket was still there.
    pub fn leave(mut self) -> Result<bool> {
        let ticket = self.take();
        run("leave_queue", ticket.leave())
    }
}
