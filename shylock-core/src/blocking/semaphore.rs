//! [`Semaphore`]: at most N holders of one name, for blocking code.

use std::time::Duration;

use super::{blocking_twin, LockGuard, Ticket};
use crate::backend::{SemaphoreInfo, SharedBackend};
use crate::error::Result;
use crate::runtime::run;
use crate::semaphore::AsyncSemaphore;

blocking_twin! {
    /// [`AsyncSemaphore`] for blocking code: the same methods without
    /// `.await`, giving [`LockGuard`]s (see the [module docs](super) for how
    /// blocking calls run).
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate shylock_core as shylock;
    /// use shylock::blocking::Semaphore;
    /// use shylock::MemoryBackend;
    ///
    /// let licences = Semaphore::with_backend("licences", 1, MemoryBackend::new());
    /// let held = licences.acquire()?;
    /// assert!(licences.try_acquire()?.is_none());
    /// held.release()?;
    /// # Ok::<(), shylock::Error>(())
    /// ```
    pub struct Semaphore(AsyncSemaphore);
    fn new(name: impl Into<String>, permits: u32);
    fn with_backend(name: impl Into<String>, permits: u32, backend: impl Into<SharedBackend>);
    get {
        /// The semaphore name.
        fn name -> &str;
        /// The permit count.
        fn permits -> u32;
    }
    run {
        /// Blocks until a permit is ours (see [`AsyncSemaphore::acquire`]).
        fn acquire() -> LockGuard;
        /// One attempt (see [`AsyncSemaphore::try_acquire`]).
        fn try_acquire() -> Option<LockGuard>;
        /// Waits at most `timeout`; `None` when it timed out.
        fn acquire_timeout(timeout: Duration) -> Option<LockGuard>;
        /// Takes a place in the semaphore's line (see
        /// [`AsyncSemaphore::enqueue`]).
        fn enqueue() -> Ticket;
        /// See [`AsyncSemaphore::inspect`].
        fn inspect() -> SemaphoreInfo;
        /// See [`AsyncSemaphore::available`].
        fn available() -> u32;
    }
}

impl Semaphore {
    /// See [`AsyncSemaphore::force_release`].
    pub fn force_release(&self, owner: &str) -> Result<bool> {
        let inner = self.inner.clone();
        let owner = owner.to_owned();
        run(
            "force_release",
            async move { inner.force_release(&owner).await },
        )
    }
}
