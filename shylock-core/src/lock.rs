//! [`AsyncLock`]: a named lock used from async code.

use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{Deadline, LockInfo, SharedBackend};
use crate::error::{Error, Result};
use crate::guard::AsyncLockGuard;
use crate::options::LockOptions;
use crate::spec::Spec;
use crate::target::Target;
use crate::ticket::AsyncTicket;
use crate::wait::{self, Owner, Wait};

/// A named distributed lock, used from async code.
///
/// Building an `AsyncLock` costs nothing and touches no database; every
/// method is one or more round trips to its backend. Clone it freely.
/// Locks are not reentrant: a second `acquire()` of a name this process
/// already holds waits like anyone else.
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::{AsyncLock, MemoryBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shylock::Result<()> {
/// let backend = MemoryBackend::new();
/// let lock = AsyncLock::with_backend("orders/42", backend);
///
/// let guard = lock.acquire().await?;
/// assert!(lock.is_locked().await?);
/// // ... exclusive work, writes tagged with guard.fencing_token() ...
/// guard.release().await?;
/// assert!(!lock.is_locked().await?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AsyncLock {
    spec: Spec,
}

impl AsyncLock {
    /// A lock on `name` in the default backend set by
    /// [`configure`](crate::configure). Using it without a configured default
    /// gives [`Error::NotConfigured`].
    pub fn new(name: impl Into<String>) -> Self {
        AsyncLock {
            spec: Spec::new(name.into(), None),
        }
    }

    /// A lock on `name` in an explicit backend.
    pub fn with_backend(name: impl Into<String>, backend: impl Into<SharedBackend>) -> Self {
        AsyncLock {
            spec: Spec::new(name.into(), Some(backend.into())),
        }
    }

    /// Sets this lock's options. Without it the lock uses the options given
    /// to [`configure_with`](crate::configure_with), else
    /// [`LockOptions::default`]. Options are checked when the lock is used.
    pub fn with_options(self, options: LockOptions) -> Self {
        AsyncLock {
            spec: self.spec.with_options(options),
        }
    }

    /// The lock name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    fn resolve(&self) -> Result<(SharedBackend, LockOptions)> {
        self.spec.resolve()
    }

    /// Waits until the lock is ours and returns its guard.
    ///
    /// Between attempts it pauses with exponential backoff and jitter, and
    /// wakes at once when the backend signals a release.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the options set a wait timeout and it passed
    /// (also while the database does not answer); [`Error::InvalidName`],
    /// [`Error::InvalidOptions`], [`Error::NotConfigured`] for bad input;
    /// [`Error::Backend`] when an attempt fails or gets no answer within the
    /// operation timeout (no retry: the caller decides).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: each attempt runs to completion in a task of its own,
    /// and if the caller is gone by then whatever it won is released at
    /// once (one round trip after the attempt's answer), so no lock is left
    /// held by nobody.
    pub async fn acquire(&self) -> Result<AsyncLockGuard> {
        let (backend, options) = self.resolve()?;
        if options.fair {
            return AsyncTicket::enqueue(self.spec.name.clone(), backend, options)
                .await?
                .wait()
                .await;
        }
        let started = Instant::now();
        let wait = match options.wait_timeout {
            Some(t) => Wait::Until(started + t),
            None => Wait::Forever,
        };
        match wait::acquire(
            self.name(),
            Target::Lock,
            backend,
            options,
            wait,
            Owner::New,
            None,
        )
        .await?
        {
            Some(guard) => Ok(guard),
            None => Err(Error::Timeout {
                name: self.spec.name.clone(),
                waited: started.elapsed(),
            }),
        }
    }

    /// One attempt: the guard if the lock was free, `None` if someone else
    /// holds it. Never waits for the lock; bounded by the operation
    /// timeout.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Self::acquire).
    pub async fn try_acquire(&self) -> Result<Option<AsyncLockGuard>> {
        let (backend, options) = self.resolve()?;
        // A fair lock is taken at once only when nobody is in line.
        let target = if options.fair {
            Target::Fair
        } else {
            Target::Lock
        };
        target.check(&backend)?;
        wait::acquire(
            self.name(),
            target,
            backend,
            options,
            Wait::Once,
            Owner::New,
            None,
        )
        .await
    }

    /// Runs `work` under the lock if it is free: one attempt as
    /// [`try_acquire`](Self::try_acquire); then `work` runs, and the lock is
    /// released, awaited, before this returns. `None` (and `work` never
    /// polled) when someone else holds the lock.
    ///
    /// The scoped form for short programs: nothing is left in the
    /// background when it returns, whatever runtime the caller is on.
    ///
    /// # Errors
    ///
    /// Those of [`try_acquire`](Self::try_acquire), and those of
    /// [`AsyncLockGuard::release`]: [`Error::LockLost`] when the lease was
    /// lost while `work` ran (it was not protected all along).
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate shylock_core as shylock;
    /// use shylock::{AsyncLock, MemoryBackend};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> shylock::Result<()> {
    /// let lock = AsyncLock::with_backend("nightly-report", MemoryBackend::new());
    /// match lock.try_run(async { /* the job */ 42 }).await? {
    ///     Some(answer) => assert_eq!(answer, 42),
    ///     None => eprintln!("running elsewhere; skipped"),
    /// }
    /// assert!(!lock.is_locked().await?);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropped before `work` finished, the guard is dropped with it and the
    /// lock released in the background, as for any dropped guard.
    pub async fn try_run<T>(
        &self,
        work: impl std::future::Future<Output = T>,
    ) -> Result<Option<T>> {
        let Some(guard) = self.try_acquire().await? else {
            return Ok(None);
        };
        let output = work.await;
        guard.release().await?;
        Ok(Some(output))
    }

    /// Waits at most `timeout` for the lock; `None` when it timed out. This
    /// overrides the wait timeout of the options. Returns within `timeout`
    /// (plus scheduling) even when the database stalls mid-request.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Self::acquire).
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<AsyncLockGuard>> {
        let (backend, options) = self.resolve()?;
        let until = Instant::now() + timeout;
        if options.fair {
            let ticket = AsyncTicket::enqueue(self.spec.name.clone(), backend, options);
            return AsyncTicket::enqueue_and_wait_until(ticket, until).await;
        }
        let wait = Wait::Until(until);
        wait::acquire(
            self.name(),
            Target::Lock,
            backend,
            options,
            wait,
            Owner::New,
            None,
        )
        .await
    }

    /// Takes a place in the line of waiters (one round trip) and returns it
    /// at once, as a ticket; [`AsyncTicket::wait`] then gives the guard when
    /// it is this ticket's turn. Waiters are granted the lock in the order
    /// they joined the line, across processes (see [`LockOptions::fair`]);
    /// the lock's options need not set `fair` for this.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::InvalidOptions`],
    /// [`Error::NotConfigured`] for bad input; [`Error::Backend`] when the
    /// database failed, did not answer within the operation timeout, or
    /// keeps no line (a backend without fair queues).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a ticket taken by a request whose caller is gone leaves
    /// the line at once.
    pub async fn enqueue(&self) -> Result<AsyncTicket> {
        let (backend, options) = self.resolve()?;
        AsyncTicket::enqueue(self.spec.name.clone(), backend, options).await
    }

    /// True when anyone holds the lock (it exists and has not expired).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn is_locked(&self) -> Result<bool> {
        Ok(self.inspect().await?.is_some())
    }

    /// The current holder's owner token, fencing token and expiry, or `None`
    /// when the lock is free. Bounded by the operation timeout.
    ///
    /// It reads the lock once this process's own releases of the name that
    /// are still on their way (a guard dropped a moment ago, an acquire
    /// that gave up while its claim was in flight) have landed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn inspect(&self) -> Result<Option<LockInfo>> {
        let (backend, options) = self.resolve()?;
        let deadline = Deadline::after(options.operation_timeout);
        // What this process let go of a moment ago (a dropped guard, an
        // abandoned attempt) lands first.
        crate::inflight::settle(&self.spec.name, deadline.instant()).await;
        deadline
            .bound("inspect", backend.inspect(&self.spec.name, deadline))
            .await
    }

    /// Removes the lock whoever holds it; returns whether a live lock was
    /// removed. For operators freeing a lock whose holder is stuck; the
    /// holder's guard then reports the lock as lost. Bounded by the
    /// operation timeout.
    ///
    /// # Cancel safety
    ///
    /// If dropped mid-flight the lock may or may not have been removed.
    pub async fn force_release(&self) -> Result<bool> {
        let (backend, options) = self.resolve()?;
        let deadline = Deadline::after(options.operation_timeout);
        let removed = deadline
            .bound(
                "force_release",
                backend.force_release(&self.spec.name, deadline),
            )
            .await?;
        tracing::warn!(lock = %self.spec.name, removed, "lock force-released");
        Ok(removed)
    }
}
