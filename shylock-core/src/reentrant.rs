//! [`AsyncReentrantLock`]: a lock its holder may take again.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::backend::SharedBackend;
use crate::error::Result;
use crate::guard::AsyncLockGuard;
use crate::lock::AsyncLock;
use crate::options::LockOptions;

/// A lock that its owner may acquire again while holding it.
///
/// The owner is the handle and its clones, never a thread or a task (thread
/// identity means nothing to async code that moves between threads). A
/// re-acquire through the handle while its lease is held returns at once,
/// with no round trip, and shares that lease: the same fencing token,
/// renewal and `lost()`. The lease is released when the last of its guards
/// is released or dropped. Another handle of the same name is another
/// owner and waits like anyone else.
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::{AsyncReentrantLock, MemoryBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shylock::Result<()> {
/// let backend = MemoryBackend::new();
/// let tree = AsyncReentrantLock::with_backend("tree", backend.clone());
/// let outer = tree.acquire().await?;
/// let inner = tree.acquire().await?; // no wait: same owner
/// assert_eq!(inner.fencing_token(), outer.fencing_token());
/// let other = AsyncReentrantLock::with_backend("tree", backend);
/// assert!(other.try_acquire().await?.is_none()); // another owner
/// inner.release().await?;
/// assert!(other.try_acquire().await?.is_none()); // outer still holds it
/// outer.release().await?;
/// assert!(other.try_acquire().await?.is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AsyncReentrantLock {
    lock: AsyncLock,
    /// The lease this owner holds, if any; locked while acquiring, so
    /// concurrent acquires through one owner share one lease.
    held: Arc<tokio::sync::Mutex<Weak<AsyncLockGuard>>>,
}

/// One hold of an [`AsyncReentrantLock`]'s lease. Dereferences to the
/// shared [`AsyncLockGuard`] (name, fencing token, `lost()`, ...); the lease
/// is released when the last hold goes.
#[must_use = "the hold ends as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct AsyncReentrantGuard {
    lease: Arc<AsyncLockGuard>,
}

impl std::ops::Deref for AsyncReentrantGuard {
    type Target = AsyncLockGuard;

    fn deref(&self) -> &AsyncLockGuard {
        &self.lease
    }
}

impl AsyncReentrantGuard {
    /// How many holds share this lease now.
    pub fn holds(&self) -> usize {
        Arc::strong_count(&self.lease)
    }

    /// Ends this hold; the last one releases the lease (see
    /// [`AsyncLockGuard::release`] for its errors).
    pub async fn release(self) -> Result<()> {
        match Arc::try_unwrap(self.lease) {
            Ok(guard) => guard.release().await,
            Err(_) => Ok(()),
        }
    }
}

impl AsyncReentrantLock {
    /// A reentrant lock on `name` in the default backend.
    pub fn new(name: impl Into<String>) -> Self {
        AsyncReentrantLock {
            lock: AsyncLock::new(name),
            held: Arc::default(),
        }
    }

    /// A reentrant lock on `name` in an explicit backend.
    pub fn with_backend(name: impl Into<String>, backend: impl Into<SharedBackend>) -> Self {
        AsyncReentrantLock {
            lock: AsyncLock::with_backend(name, backend),
            held: Arc::default(),
        }
    }

    /// Sets the lock's options. A handle with other options is still the
    /// same owner only if it is a clone of this one.
    pub fn with_options(self, options: LockOptions) -> Self {
        AsyncReentrantLock {
            lock: self.lock.with_options(options),
            held: self.held,
        }
    }

    /// The lock name.
    pub fn name(&self) -> &str {
        self.lock.name()
    }

    /// The current live lease of this owner, if any.
    fn current(held: &Weak<AsyncLockGuard>) -> Option<AsyncReentrantGuard> {
        held.upgrade()
            .filter(|lease| !lease.is_lost())
            .map(|lease| AsyncReentrantGuard { lease })
    }

    /// Returns at once when this owner holds the lock; otherwise waits as
    /// [`AsyncLock::acquire`] does.
    pub async fn acquire(&self) -> Result<AsyncReentrantGuard> {
        let mut held = self.held.lock().await;
        if let Some(guard) = Self::current(&held) {
            return Ok(guard);
        }
        let lease = Arc::new(self.lock.acquire().await?);
        *held = Arc::downgrade(&lease);
        Ok(AsyncReentrantGuard { lease })
    }

    /// At once when this owner holds the lock; otherwise one attempt.
    pub async fn try_acquire(&self) -> Result<Option<AsyncReentrantGuard>> {
        let mut held = self.held.lock().await;
        if let Some(guard) = Self::current(&held) {
            return Ok(Some(guard));
        }
        Ok(self.lock.try_acquire().await?.map(|guard| {
            let lease = Arc::new(guard);
            *held = Arc::downgrade(&lease);
            AsyncReentrantGuard { lease }
        }))
    }

    /// At once when this owner holds the lock; otherwise waits at most
    /// `timeout`.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<AsyncReentrantGuard>> {
        let mut held = self.held.lock().await;
        if let Some(guard) = Self::current(&held) {
            return Ok(Some(guard));
        }
        Ok(self.lock.acquire_timeout(timeout).await?.map(|guard| {
            let lease = Arc::new(guard);
            *held = Arc::downgrade(&lease);
            AsyncReentrantGuard { lease }
        }))
    }

    /// True when anyone (this owner included) holds the lock.
    pub async fn is_locked(&self) -> Result<bool> {
        self.lock.is_locked().await
    }
}
