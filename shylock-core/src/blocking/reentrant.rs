//! [`ReentrantLock`]: a lock its holder may take again, for blocking code.

use std::time::{Duration, SystemTime};

use super::{blocking_twin, FromAsync};
use crate::backend::SharedBackend;
use crate::error::Result;
use crate::reentrant::{AsyncReentrantGuard, AsyncReentrantLock};
use crate::runtime::run;

blocking_twin! {
    /// [`AsyncReentrantLock`] for blocking code: the same owner rules (the
    /// handle and its clones, never a thread), the same methods without
    /// `.await`.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate shylock_core as shylock;
    /// use shylock::blocking::ReentrantLock;
    /// use shylock::MemoryBackend;
    ///
    /// let lock = ReentrantLock::with_backend("tree", MemoryBackend::new());
    /// let outer = lock.acquire()?;
    /// let inner = lock.acquire()?; // no wait
    /// assert_eq!(inner.fencing_token(), outer.fencing_token());
    /// drop(inner);
    /// outer.release()?;
    /// # Ok::<(), shylock::Error>(())
    /// ```
    pub struct ReentrantLock(AsyncReentrantLock);
    fn new(name: impl Into<String>);
    fn with_backend(name: impl Into<String>, backend: impl Into<SharedBackend>);
    get {
        /// The lock name.
        fn name -> &str;
    }
    run {
        /// Blocks until this owner holds the lock (at once if it already
        /// does).
        fn acquire() -> ReentrantGuard;
        /// At once when this owner holds the lock; otherwise one attempt.
        fn try_acquire() -> Option<ReentrantGuard>;
        /// At once when this owner holds the lock; otherwise waits at most
        /// `timeout`.
        fn acquire_timeout(timeout: Duration) -> Option<ReentrantGuard>;
        /// True when anyone (this owner included) holds the lock.
        fn is_locked() -> bool;
    }
}

/// A hold of a [`ReentrantLock`]; the last hold to go releases the lease
/// (blocking for one round trip when it is dropped, like
/// [`LockGuard`](super::LockGuard)).
#[must_use = "the hold ends as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct ReentrantGuard {
    inner: Option<AsyncReentrantGuard>,
}

impl FromAsync<AsyncReentrantGuard> for ReentrantGuard {
    fn from_async(inner: AsyncReentrantGuard) -> Self {
        ReentrantGuard { inner: Some(inner) }
    }
}

impl ReentrantGuard {
    fn hold(&self) -> &AsyncReentrantGuard {
        self.inner
            .as_ref()
            .expect("the hold is only taken by release() or drop")
    }

    /// The lock name.
    pub fn name(&self) -> &str {
        self.hold().name()
    }

    /// This lease's fencing token.
    pub fn fencing_token(&self) -> u64 {
        self.hold().fencing_token()
    }

    /// When the lease expires unless renewed, by the database's clock.
    pub fn expires_at(&self) -> SystemTime {
        self.hold().expires_at()
    }

    /// True once the lease is known lost.
    pub fn is_lost(&self) -> bool {
        self.hold().is_lost()
    }

    /// How many holds share this lease now.
    pub fn holds(&self) -> usize {
        self.hold().holds()
    }

    /// Ends this hold; the last one releases the lease.
    pub fn release(mut self) -> Result<()> {
        match self.inner.take() {
            Some(hold) => run("release", hold.release()),
            None => Ok(()),
        }
    }
}

impl Drop for ReentrantGuard {
    fn drop(&mut self) {
        if let Some(hold) = self.inner.take() {
            if let Err(error) = run("release", hold.release()) {
                tracing::warn!(%error, "release of a blocking reentrant lock on drop failed");
            }
        }
    }
}
