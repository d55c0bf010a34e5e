//! [`AsyncLock`]: a named lock used from async code.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::backend::{validate_name, Lease, LockInfo, SharedBackend};
use crate::error::{Error, Result};
use crate::global::default_backend;
use crate::guard::AsyncLockGuard;
use crate::options::{Backoff, LockOptions};

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
/// use shylock_core::{AsyncLock, MemoryBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shylock_core::Result<()> {
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
    name: String,
    backend: Option<SharedBackend>,
    options: Option<LockOptions>,
}

impl AsyncLock {
    /// A lock on `name` in the default backend set by
    /// [`configure`](crate::configure). Using it without a configured default
    /// gives [`Error::NotConfigured`].
    pub fn new(name: impl Into<String>) -> Self {
        AsyncLock {
            name: name.into(),
            backend: None,
            options: None,
        }
    }

    /// A lock on `name` in an explicit backend.
    pub fn with_backend(name: impl Into<String>, backend: impl Into<SharedBackend>) -> Self {
        AsyncLock {
            name: name.into(),
            backend: Some(backend.into()),
            options: None,
        }
    }

    /// Sets this lock's options. Without it the lock uses the options given
    /// to [`configure_with`](crate::configure_with), else
    /// [`LockOptions::default`]. Options are checked when the lock is used.
    pub fn with_options(mut self, options: LockOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// The lock name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn resolve(&self) -> Result<(SharedBackend, LockOptions)> {
        validate_name(&self.name)?;
        let (backend, configured) = match &self.backend {
            Some(backend) => (backend.clone(), default_backend().ok().map(|(_, o)| o)),
            None => {
                let (backend, options) = default_backend()?;
                (backend, Some(options))
            }
        };
        let options = self.options.clone().or(configured).unwrap_or_default();
        options.validate()?;
        Ok((backend, options))
    }

    /// Waits until the lock is ours and returns its guard.
    ///
    /// Between attempts it pauses with exponential backoff and jitter, and
    /// wakes at once when the backend signals a release.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the options set a wait timeout and it passed;
    /// [`Error::InvalidName`], [`Error::InvalidOptions`],
    /// [`Error::NotConfigured`] for bad input; [`Error::Backend`] when the
    /// database fails (no retry: the caller decides).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped while an attempt is in flight
    /// and that attempt wins on the server, the lock is released in the
    /// background, so no lock is left held by nobody.
    pub async fn acquire(&self) -> Result<AsyncLockGuard> {
        let (backend, options) = self.resolve()?;
        let started = Instant::now();
        let deadline = options.wait_timeout.map(|t| started + t);
        match self.wait(backend, options, deadline).await? {
            Some(guard) => Ok(guard),
            None => Err(Error::Timeout {
                name: self.name.clone(),
                waited: started.elapsed(),
            }),
        }
    }

    /// One attempt: the guard if the lock was free, `None` if someone else
    /// holds it. Never waits.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Self::acquire).
    pub async fn try_acquire(&self) -> Result<Option<AsyncLockGuard>> {
        let (backend, options) = self.resolve()?;
        self.wait(backend, options, Some(Instant::now())).await
    }

    /// Waits at most `timeout` for the lock; `None` when it timed out. This
    /// overrides the wait timeout of the options.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Self::acquire).
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<AsyncLockGuard>> {
        let (backend, options) = self.resolve()?;
        self.wait(backend, options, Some(Instant::now() + timeout))
            .await
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
    /// when the lock is free.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn inspect(&self) -> Result<Option<LockInfo>> {
        let (backend, _) = self.resolve()?;
        backend.inspect(&self.name).await
    }

    /// Removes the lock whoever holds it; returns whether a live lock was
    /// removed. For operators freeing a lock whose holder is stuck; the
    /// holder's guard then reports the lock as lost.
    ///
    /// # Cancel safety
    ///
    /// If dropped mid-flight the lock may or may not have been removed.
    pub async fn force_release(&self) -> Result<bool> {
        let (backend, _) = self.resolve()?;
        let removed = backend.force_release(&self.name).await?;
        tracing::warn!(lock = %self.name, removed, "lock force-released");
        Ok(removed)
    }

    /// Attempts until the lock is ours or `deadline` passes (`None`: no
    /// deadline). At least one attempt is always made.
    async fn wait(
        &self,
        backend: SharedBackend,
        options: LockOptions,
        deadline: Option<Instant>,
    ) -> Result<Option<AsyncLockGuard>> {
        let owner = uuid::Uuid::new_v4().to_string();
        let mut backoff = Backoff::new(&options);
        // Registered before each attempt, so a release between a failed
        // attempt and the pause is not missed. Without a backend signal a
        // private one stands in that nobody notifies.
        let signal = if deadline.is_some_and(|d| d <= Instant::now()) {
            None
        } else {
            backend.release_signal(&self.name)
        }
        .unwrap_or_default();
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let notified = signal.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let attempt_started = Instant::now();
            let won = {
                let pending = PendingAttempt::new(&backend, &self.name, &owner);
                let result = backend.acquire(&self.name, &owner, options.ttl).await;
                pending.disarm();
                result?
            };
            if let Some(lease) = won {
                tracing::debug!(
                    lock = %self.name,
                    fencing_token = lease.fencing_token(),
                    attempts,
                    "lock acquired"
                );
                return Ok(Some(AsyncLockGuard::start(
                    backend,
                    lease,
                    options,
                    attempt_started,
                )));
            }
            tracing::debug!(lock = %self.name, attempts, "attempt: lock held by another owner");
            let now = Instant::now();
            let mut wake = now + backoff.next_delay();
            if let Some(deadline) = deadline {
                if now >= deadline {
                    tracing::debug!(lock = %self.name, attempts, "gave up waiting for lock");
                    return Ok(None);
                }
                wake = wake.min(deadline);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}

/// Releases, in the background, an attempt whose future was dropped while
/// its request was in flight: the server may have granted it.
struct PendingAttempt<'a> {
    backend: &'a SharedBackend,
    name: &'a str,
    owner: &'a str,
    armed: bool,
}

impl<'a> PendingAttempt<'a> {
    fn new(backend: &'a SharedBackend, name: &'a str, owner: &'a str) -> Self {
        PendingAttempt {
            backend,
            name,
            owner,
            armed: true,
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for PendingAttempt<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(lock = %self.name, "acquire cancelled outside a runtime; any win expires by ttl");
            return;
        };
        let backend = self.backend.clone();
        // Release matches on name and owner only, so the token and expiry of
        // this stand-in lease do not matter.
        let lease = Lease::new(self.name, self.owner, 0, SystemTime::UNIX_EPOCH);
        tracing::debug!(lock = %self.name, "acquire cancelled mid-attempt; releasing in the background");
        handle.spawn(async move {
            if let Err(error) = backend.release(&lease).await {
                tracing::warn!(lock = %lease.name(), %error, "could not release after a cancelled acquire; the lock expires by its ttl");
            }
        });
    }
}
