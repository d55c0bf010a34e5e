//! [`MultiLock`]: several locks, all or nothing, for blocking code.

use std::time::{Duration, SystemTime};

use super::{blocking_twin, FromAsync, LockGuard};
use crate::backend::SharedBackend;
use crate::error::Result;
use crate::multi::{AsyncMultiLock, AsyncMultiLockGuard};

blocking_twin! {
    /// [`AsyncMultiLock`] for blocking code: the same methods without
    /// `.await`, giving a [`MultiLockGuard`].
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate shylock_core as shylock;
    /// use shylock::blocking::MultiLock;
    /// use shylock::MemoryBackend;
    ///
    /// let locks = MultiLock::with_backend(["b", "a"], MemoryBackend::new());
    /// let held = locks.acquire()?;
    /// assert_eq!(held.names(), ["a", "b"]);
    /// assert!(held.fencing_token("a").is_some());
    /// held.release()?;
    /// # Ok::<(), shylock::Error>(())
    /// ```
    pub struct MultiLock(AsyncMultiLock);
    fn new<S: Into<String>>(names: impl IntoIterator<Item = S>);
    fn with_backend<S: Into<String>>(
        names: impl IntoIterator<Item = S>,
        backend: impl Into<SharedBackend>,
    );
    get {
        /// The names, de-duplicated, in the order they are taken.
        fn names -> &[String];
    }
    run {
        /// Blocks until every lock of the set is ours (see
        /// [`AsyncMultiLock::acquire`]).
        fn acquire() -> MultiLockGuard;
        /// One attempt at the whole set: all the guards, or `None` (and
        /// nothing held).
        fn try_acquire() -> Option<MultiLockGuard>;
        /// Waits at most `timeout` for the whole set; `None` when it timed
        /// out.
        fn acquire_timeout(timeout: Duration) -> Option<MultiLockGuard>;
    }
}

/// A held set from [`MultiLock`]: one blocking [`LockGuard`] per name,
/// each renewed. Dropping it releases them all before `drop` returns.
#[must_use = "the locks are released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct MultiLockGuard {
    guards: Vec<LockGuard>,
}

impl FromAsync<AsyncMultiLockGuard> for MultiLockGuard {
    fn from_async(inner: AsyncMultiLockGuard) -> Self {
        MultiLockGuard {
            guards: inner
                .into_guards()
                .into_iter()
                .map(LockGuard::from_async)
                .collect(),
        }
    }
}

impl MultiLockGuard {
    /// The names held, in the order they were taken.
    pub fn names(&self) -> Vec<&str> {
        self.guards.iter().map(LockGuard::name).collect()
    }

    /// The fencing token of `name`, or `None` when it is not in the set.
    pub fn fencing_token(&self, name: &str) -> Option<u64> {
        self.guards
            .iter()
            .find(|g| g.name() == name)
            .map(LockGuard::fencing_token)
    }

    /// The earliest expiry among the leases.
    pub fn expires_at(&self) -> SystemTime {
        self.guards
            .iter()
            .map(LockGuard::expires_at)
            .min()
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// True once any lock of the set is lost.
    pub fn is_lost(&self) -> bool {
        self.guards.iter().any(LockGuard::is_lost)
    }

    /// Releases every lock of the set (see [`AsyncMultiLockGuard::release`]).
    pub fn release(self) -> Result<()> {
        let mut first = None;
        for guard in self.guards.into_iter().rev() {
            if let Err(error) = guard.release() {
                first.get_or_insert(error);
            }
        }
        first.map_or(Ok(()), Err)
    }
}
