//! [`AsyncMultiLock`]: several locks, all or nothing.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::backend::{validate_name, SharedBackend};
use crate::error::{Error, Result};
use crate::guard::AsyncLockGuard;
use crate::options::{Backoff, LockOptions};
use crate::spec::Spec;
use crate::target::Target;
use crate::wait::{self, Owner, Wait};

/// Several named locks taken together, all or nothing.
///
/// The names are de-duplicated and sorted by their UTF-8 bytes, and every
/// attempt takes them in that order, one single attempt each. An attempt
/// that cannot get all of them releases what it took, in reverse order,
/// and the whole set is tried again after a backoff (or at once when one
/// of the missing names is released): never a partial hold while waiting,
/// so workers taking overlapping sets never deadlock. Dropping an
/// `acquire()` mid-way releases whatever it had taken.
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::{AsyncMultiLock, MemoryBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shylock::Result<()> {
/// let backend = MemoryBackend::new();
/// let transfer = AsyncMultiLock::with_backend(["acct/bob", "acct/alice"], backend.clone());
/// let guard = transfer.acquire().await?;
/// assert_eq!(guard.names(), ["acct/alice", "acct/bob"]);
/// let bob = guard.fencing_token("acct/bob").unwrap();
/// // ... move money, tagging writes with each account's token ...
/// guard.release().await?;
/// # let _ = bob;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AsyncMultiLock {
    names: Vec<String>,
    backend: Option<SharedBackend>,
    options: Option<LockOptions>,
}

impl AsyncMultiLock {
    /// The locks `names` in the default backend.
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        AsyncMultiLock {
            names: sorted(names),
            backend: None,
            options: None,
        }
    }

    /// The locks `names` in an explicit backend.
    pub fn with_backend<S: Into<String>>(
        names: impl IntoIterator<Item = S>,
        backend: impl Into<SharedBackend>,
    ) -> Self {
        AsyncMultiLock {
            names: sorted(names),
            backend: Some(backend.into()),
            options: None,
        }
    }

    /// Sets the options of every lock of the set (see [`LockOptions`]).
    pub fn with_options(mut self, options: LockOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// The names, de-duplicated, in the order they are taken.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn resolve(&self) -> Result<(SharedBackend, LockOptions)> {
        if self.names.is_empty() {
            return Err(Error::InvalidName {
                reason: "a multi-lock needs at least one name".into(),
            });
        }
        for name in &self.names {
            validate_name(name)?;
        }
        let spec = Spec {
            name: self.names[0].clone(),
            backend: self.backend.clone(),
            options: self.options.clone(),
        };
        spec.resolve()
    }

    /// Waits until every lock of the set is ours.
    ///
    /// # Errors
    ///
    /// As [`AsyncLock::acquire`](crate::AsyncLock::acquire); [`Error::Timeout`] names the first lock
    /// of the set.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: locks taken by an abandoned call are released.
    pub async fn acquire(&self) -> Result<AsyncMultiLockGuard> {
        let (backend, options) = self.resolve()?;
        let started = Instant::now();
        let wait = match options.wait_timeout {
            Some(t) => Wait::Until(started + t),
            None => Wait::Forever,
        };
        match self.wait(backend, options, wait).await? {
            Some(guard) => Ok(guard),
            None => Err(Error::Timeout {
                name: self.names[0].clone(),
                waited: started.elapsed(),
            }),
        }
    }

    /// One attempt at the whole set: all the guards, or `None` (and nothing
    /// held) when any lock is held by someone else.
    pub async fn try_acquire(&self) -> Result<Option<AsyncMultiLockGuard>> {
        let (backend, options) = self.resolve()?;
        self.wait(backend, options, Wait::Once).await
    }

    /// Waits at most `timeout` for the whole set; `None` when it timed out.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<AsyncMultiLockGuard>> {
        let (backend, options) = self.resolve()?;
        let wait = Wait::Until(Instant::now() + timeout);
        self.wait(backend, options, wait).await
    }

    /// One pass over the set: all guards, or the name that was held.
    async fn attempt(
        &self,
        backend: &SharedBackend,
        options: &LockOptions,
    ) -> Result<std::result::Result<Vec<AsyncLockGuard>, String>> {
        let mut guards: Vec<AsyncLockGuard> = Vec::with_capacity(self.names.len());
        for name in &self.names {
            let taken = wait::acquire(
                name,
                Target::Lock,
                backend.clone(),
                options.clone(),
                Wait::Once,
                Owner::New,
                None,
            )
            .await;
            match taken {
                Ok(Some(guard)) => guards.push(guard),
                Ok(None) => {
                    release_all(guards).await;
                    return Ok(Err(name.clone()));
                }
                Err(error) => {
                    release_all(guards).await;
                    return Err(error);
                }
            }
        }
        Ok(Ok(guards))
    }

    async fn wait(
        &self,
        backend: SharedBackend,
        options: LockOptions,
        wait: Wait,
    ) -> Result<Option<AsyncMultiLockGuard>> {
        let deadline = match wait {
            Wait::Until(at) => Some(at),
            _ => None,
        };
        let mut backoff = Backoff::new(&options);
        loop {
            let attempt = self.attempt(&backend, &options);
            let outcome = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, attempt).await {
                    Ok(outcome) => outcome?,
                    Err(_) => return Ok(None),
                },
                None => attempt.await?,
            };
            let held_name = match outcome {
                Ok(guards) => return Ok(Some(AsyncMultiLockGuard { guards })),
                Err(name) => name,
            };
            if matches!(wait, Wait::Once) {
                return Ok(None);
            }
            let signal = backend.release_signal(&held_name).unwrap_or_default();
            let mut wake = Instant::now() + backoff.next_delay();
            if let Some(deadline) = deadline {
                if Instant::now() >= deadline {
                    return Ok(None);
                }
                wake = wake.min(deadline);
            }
            tokio::select! {
                _ = signal.notified() => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }
}

fn sorted<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().map(Into::into).collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    names.dedup();
    names
}

/// Releases `guards` in reverse order of taking; errors are logged (the
/// leases then end by their ttl).
async fn release_all(guards: Vec<AsyncLockGuard>) {
    for guard in guards.into_iter().rev() {
        let name = guard.name().to_owned();
        if let Err(error) = guard.release().await {
            tracing::debug!(lock = %name, %error, "multi-lock: releasing a partly taken set failed");
        }
    }
}

/// A held set of locks: one [`AsyncLockGuard`] per name, each renewed.
/// Dropping it releases them all in the background.
#[must_use = "the locks are released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct AsyncMultiLockGuard {
    guards: Vec<AsyncLockGuard>,
}

impl AsyncMultiLockGuard {
    /// The names held, in the order they were taken.
    pub fn names(&self) -> Vec<&str> {
        self.guards.iter().map(AsyncLockGuard::name).collect()
    }

    /// The fencing token of `name`, or `None` when it is not in the set.
    pub fn fencing_token(&self, name: &str) -> Option<u64> {
        self.guards
            .iter()
            .find(|g| g.name() == name)
            .map(AsyncLockGuard::fencing_token)
    }

    /// The guard of each name.
    pub fn guards(&self) -> &[AsyncLockGuard] {
        &self.guards
    }

    /// The guard of each name, handed over (to the blocking guard).
    pub(crate) fn into_guards(self) -> Vec<AsyncLockGuard> {
        self.guards
    }

    /// The earliest expiry among the leases.
    pub fn expires_at(&self) -> SystemTime {
        self.guards
            .iter()
            .map(AsyncLockGuard::expires_at)
            .min()
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// True once any lock of the set is lost: the set no longer protects.
    pub fn is_lost(&self) -> bool {
        self.guards.iter().any(AsyncLockGuard::is_lost)
    }

    /// Resolves when any lock of the set is lost.
    pub async fn lost(&self) {
        let losses: Vec<_> = self.guards.iter().map(|g| Box::pin(g.lost())).collect();
        if losses.is_empty() {
            return std::future::pending().await;
        }
        let mut losses = losses;
        std::future::poll_fn(|cx| {
            for loss in losses.iter_mut() {
                if loss.as_mut().poll(cx).is_ready() {
                    return std::task::Poll::Ready(());
                }
            }
            std::task::Poll::Pending
        })
        .await
    }

    /// Releases every lock of the set.
    ///
    /// # Errors
    ///
    /// The first error: [`Error::LockLost`] when any lock was no longer
    /// ours, or a backend error. Every lock is asked to release either way.
    pub async fn release(self) -> Result<()> {
        let mut first = None;
        for guard in self.guards.into_iter().rev() {
            if let Err(error) = guard.release().await {
                first.get_or_insert(error);
            }
        }
        first.map_or(Ok(()), Err)
    }
}
