//! [`AsyncSemaphore`]: at most N holders of one name.

use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{validate_name, Deadline, SemaphoreInfo, SharedBackend, MAX_PERMITS};
use crate::error::{Error, Result};
use crate::fair_permits::{gate_name, PermitStep};
use crate::guard::AsyncLockGuard;
use crate::options::LockOptions;
use crate::spec::Spec;
use crate::target::{semaphores, Target};
use crate::ticket::AsyncTicket;
use crate::wait::{self, Owner, Wait};

/// A counting semaphore: at most `permits` holders of one name at a time,
/// across every process that shares the backend.
///
/// Each holder gets a permit guard, an [`AsyncLockGuard`] with the lock's
/// whole lifecycle: renewal, [`lost()`](AsyncLockGuard::lost), a fencing
/// token (strictly increasing per semaphore, across all its permits),
/// owner-checked [`release()`](AsyncLockGuard::release) and background
/// release on drop. A holder that crashes frees its permit after its ttl;
/// the next attempt reclaims it, with no cleanup job. Every attempt is one
/// round trip (one transaction on SQLite), whatever the permit count.
///
/// All processes must use the same permit count for a name. While a
/// semaphore has live holders, the count they were granted under stands,
/// and an attempt with another count fails with
/// [`Error::InvalidOptions`] naming both; once it has no live holder, the
/// next attempt's count applies.
///
/// Semaphore names are their own namespace: `AsyncSemaphore::new("x", 3)`
/// and `AsyncLock::new("x")` do not interact.
///
/// # Fair semaphores
///
/// By default a freed permit goes to whichever waiter asks first, so with
/// many waiters a late arrival may win again and again. With
/// [`LockOptions::fair`], permits go to waiters in the order they joined
/// the semaphore's line, across processes, as for a fair lock (two-phase
/// with [`enqueue`](Self::enqueue) and [`AsyncTicket::wait`]). The line is
/// the line of a fair lock in front of the semaphore, named
/// `shylock/semaphore-line/<name>` (what `shylock list` shows): the waiter
/// first in it holds that lock while it waits for a permit, and lets go of
/// it as soon as it has one, so only one waiter at a time asks for a
/// permit. A crashed waiter holds up the line for at most its ticket's (or
/// the gate's) ttl. Costs: an acquisition is three database operations
/// instead of one (take the gate, take the permit, and, in the background,
/// let go of the gate), and
/// [`try_acquire`](Self::try_acquire) is refused while someone waits in
/// line or is passing the gate, even if a permit is free. Every process
/// using the semaphore must set `fair(true)`: a non-fair acquirer does not
/// queue and may take a freed permit ahead of the line. Needs a backend
/// with fair queues (all bundled backends).
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::{AsyncSemaphore, LockOptions, MemoryBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shylock::Result<()> {
/// let pool = AsyncSemaphore::with_backend("gpu", 1, MemoryBackend::new())
///     .with_options(LockOptions::default().fair(true));
/// let held = pool.acquire().await?;
/// let first = pool.enqueue().await?;   // a place in line, at once
/// let second = pool.enqueue().await?;
/// assert_eq!((first.place(), second.place()), (0, 1));
/// let second = tokio::spawn(second.wait());
/// let first = tokio::spawn(first.wait());
/// held.release().await?;
/// let first = first.await.unwrap()?;    // served in arrival order
/// let token = first.fencing_token();
/// first.release().await?;
/// assert!(second.await.unwrap()?.fencing_token() > token);
/// # Ok(())
/// # }
/// ```
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::{AsyncSemaphore, MemoryBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shylock::Result<()> {
/// let backend = MemoryBackend::new();
/// let pool = AsyncSemaphore::with_backend("upstream-connections", 2, backend);
/// let a = pool.acquire().await?;
/// let b = pool.acquire().await?;
/// assert!(pool.try_acquire().await?.is_none()); // both permits taken
/// assert_eq!(pool.available().await?, 0);
/// a.release().await?;
/// let c = pool.try_acquire().await?.expect("a permit was freed");
/// assert!(c.fencing_token() > b.fencing_token());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AsyncSemaphore {
    spec: Spec,
    permits: u32,
}

impl AsyncSemaphore {
    /// A semaphore of `permits` permits on `name` in the default backend
    /// set by [`configure`](crate::configure). `permits` must be 1 to
    /// [`MAX_PERMITS`]; it is checked when the semaphore is used.
    pub fn new(name: impl Into<String>, permits: u32) -> Self {
        AsyncSemaphore {
            spec: Spec::new(name.into(), None),
            permits,
        }
    }

    /// A semaphore of `permits` permits on `name` in an explicit backend.
    pub fn with_backend(
        name: impl Into<String>,
        permits: u32,
        backend: impl Into<SharedBackend>,
    ) -> Self {
        AsyncSemaphore {
            spec: Spec::new(name.into(), Some(backend.into())),
            permits,
        }
    }

    /// Sets the options of its permits: ttl, renewal, wait timeout,
    /// backoff, operation timeout (see [`LockOptions`]).
    pub fn with_options(self, options: LockOptions) -> Self {
        AsyncSemaphore {
            spec: self.spec.with_options(options),
            permits: self.permits,
        }
    }

    /// The semaphore name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The permit count.
    pub fn permits(&self) -> u32 {
        self.permits
    }

    fn resolve(&self) -> Result<(SharedBackend, LockOptions, Target)> {
        validate_name(self.name())?;
        if self.permits == 0 || self.permits > MAX_PERMITS {
            return Err(Error::InvalidOptions {
                reason: format!(
                    "semaphore {:?} has {} permits; use 1 to {MAX_PERMITS} (for one holder at \
                     a time, AsyncLock is the same with less work)",
                    self.name(),
                    self.permits
                ),
            });
        }
        let (backend, options) = self.spec.resolve()?;
        // A backend without semaphores fails here, before any attempt.
        let target = Target::Permit {
            permits: self.permits,
        };
        target.check(&backend)?;
        if options.fair {
            gate_name(self.name())?;
            Target::Fair.check(&backend)?;
        }
        Ok((backend, options, target))
    }

    fn step(&self) -> PermitStep {
        PermitStep {
            semaphore: self.name().to_owned(),
            permits: self.permits,
        }
    }

    /// Takes a place in the semaphore's line (one round trip) and returns
    /// it at once, as a ticket; [`AsyncTicket::wait`] then gives a permit's
    /// guard when it is this ticket's turn. Permits go to waiters in the
    /// order they joined the line, across processes (see [Fair
    /// semaphores](Self#fair-semaphores)); the options need not set `fair`
    /// for this.
    ///
    /// # Errors
    ///
    /// As [`AsyncLock::enqueue`](crate::AsyncLock::enqueue), plus
    /// [`Error::InvalidOptions`] for a permit count out of range.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a ticket taken by a request whose caller is gone leaves
    /// the line at once.
    pub async fn enqueue(&self) -> Result<AsyncTicket> {
        let (backend, options, _) = self.resolve()?;
        self.enqueue_with(backend, options).await
    }

    async fn enqueue_with(
        &self,
        backend: SharedBackend,
        options: LockOptions,
    ) -> Result<AsyncTicket> {
        let gate = gate_name(self.name())?;
        Ok(AsyncTicket::enqueue(gate, backend, options)
            .await?
            .for_permit(self.step()))
    }

    /// Waits until a permit is ours and returns its guard. Released permits
    /// wake waiters through the backend's signal; otherwise waiters retry
    /// with the options' backoff.
    ///
    /// # Errors
    ///
    /// As [`AsyncLock::acquire`](crate::AsyncLock::acquire), plus [`Error::InvalidOptions`] for a
    /// permit count out of range or different from the live holders'.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`AsyncLock::acquire`](crate::AsyncLock::acquire): a permit won by an abandoned
    /// attempt is released at once.
    pub async fn acquire(&self) -> Result<AsyncLockGuard> {
        let (backend, options, target) = self.resolve()?;
        if options.fair {
            return self.enqueue_with(backend, options).await?.wait().await;
        }
        let started = Instant::now();
        let wait = match options.wait_timeout {
            Some(t) => Wait::Until(started + t),
            None => Wait::Forever,
        };
        match wait::acquire(
            self.name(),
            target,
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
                name: self.name().to_owned(),
                waited: started.elapsed(),
            }),
        }
    }

    /// One attempt: a permit guard, or `None` when all permits are held.
    /// A fair semaphore is taken at once only when nobody waits in its line
    /// (see [Fair semaphores](Self#fair-semaphores)).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Self::acquire).
    pub async fn try_acquire(&self) -> Result<Option<AsyncLockGuard>> {
        let (backend, options, target) = self.resolve()?;
        if options.fair {
            return self.step().try_once(backend, options).await;
        }
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

    /// Waits at most `timeout` for a permit; `None` when it timed out.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Self::acquire).
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<AsyncLockGuard>> {
        let (backend, options, target) = self.resolve()?;
        let until = Instant::now() + timeout;
        if options.fair {
            let ticket = self.enqueue_with(backend, options);
            return AsyncTicket::enqueue_and_wait_until(ticket, until).await;
        }
        let wait = Wait::Until(until);
        wait::acquire(
            self.name(),
            target,
            backend,
            options,
            wait,
            Owner::New,
            None,
        )
        .await
    }

    /// The live holders, one per permit in use, and the permit count they
    /// hold under. Bounded by the operation timeout.
    pub async fn inspect(&self) -> Result<SemaphoreInfo> {
        let (backend, options, _) = self.resolve()?;
        let deadline = Deadline::after(options.operation_timeout);
        // What this process let go of a moment ago (a dropped guard, an
        // abandoned attempt) lands first.
        crate::inflight::settle(self.name(), deadline.instant()).await;
        deadline
            .bound("inspect", async {
                semaphores(&backend)?
                    .inspect_semaphore(self.name(), deadline)
                    .await
            })
            .await
    }

    /// How many permits are free now (a snapshot: another process may
    /// take them at once).
    pub async fn available(&self) -> Result<u32> {
        Ok(self.inspect().await?.free(self.permits))
    }

    /// Frees the permit of `owner` (an owner token from
    /// [`inspect`](Self::inspect)) whoever holds it: the operator's way to
    /// free a permit whose holder is stuck. Returns whether it was held;
    /// the holder's guard then reports it lost.
    pub async fn force_release(&self, owner: &str) -> Result<bool> {
        let (backend, options, _) = self.resolve()?;
        let deadline = Deadline::after(options.operation_timeout);
        let freed = deadline
            .bound("force_release", async {
                semaphores(&backend)?
                    .release_permit(self.name(), owner, deadline)
                    .await
            })
            .await?;
        tracing::warn!(semaphore = %self.name(), owner, freed, "permit force-released");
        Ok(freed)
    }
}
