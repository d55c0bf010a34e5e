//! [`AsyncSemaphore`]: at most N holders of one name.

use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{validate_name, Deadline, SemaphoreInfo, SharedBackend, MAX_PERMITS};
use crate::error::{Error, Result};
use crate::guard::AsyncLockGuard;
use crate::options::LockOptions;
use crate::spec::Spec;
use crate::target::{semaphores, Target};
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
        Ok((backend, options, target))
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
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Self::acquire).
    pub async fn try_acquire(&self) -> Result<Option<AsyncLockGuard>> {
        let (backend, options, target) = self.resolve()?;
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
        let wait = Wait::Until(Instant::now() + timeout);
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
