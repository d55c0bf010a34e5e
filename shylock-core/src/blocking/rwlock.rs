//! [`RwLock`]: many readers or one writer, for blocking code, with its
//! guards [`ReadGuard`] and [`WriteGuard`].

use std::time::Duration;

use super::{blocking_twin, FromAsync, LockGuard};
use crate::backend::{RwLockInfo, SharedBackend};
use crate::error::Result;
use crate::runtime::run;
use crate::rwlock::{AsyncReadGuard, AsyncRwLock, AsyncWriteGuard, RwPreference};

blocking_twin! {
    /// [`AsyncRwLock`] for blocking code: the same methods without
    /// `.await`, giving [`ReadGuard`]s and [`WriteGuard`]s (see the
    /// [module docs](super) for how blocking calls run).
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate shylock_core as shylock;
    /// use shylock::blocking::RwLock;
    /// use shylock::MemoryBackend;
    ///
    /// let rw = RwLock::with_backend("schema", MemoryBackend::new());
    /// let reader = rw.read()?;
    /// assert!(rw.try_write()?.is_none());
    /// reader.release()?;
    /// let writer = rw.write()?;
    /// assert!(rw.try_read()?.is_none());
    /// writer.release()?;
    /// # Ok::<(), shylock::Error>(())
    /// ```
    pub struct RwLock(AsyncRwLock);
    fn new(name: impl Into<String>);
    fn with_backend(name: impl Into<String>, backend: impl Into<SharedBackend>);
    get {
        /// The read/write lock name.
        fn name -> &str;
        /// Who goes first when readers and a writer wait.
        fn preference -> RwPreference;
    }
    run {
        /// Blocks until a read lease is ours (see [`AsyncRwLock::read`]).
        fn read() -> ReadGuard;
        /// One attempt at a read lease (see [`AsyncRwLock::try_read`]).
        fn try_read() -> Option<ReadGuard>;
        /// Waits at most `timeout` for a read lease; `None` when it timed out.
        fn read_timeout(timeout: Duration) -> Option<ReadGuard>;
        /// Blocks until the write lease is ours (see [`AsyncRwLock::write`]).
        fn write() -> WriteGuard;
        /// One attempt at the write lease (see [`AsyncRwLock::try_write`]).
        fn try_write() -> Option<WriteGuard>;
        /// Waits at most `timeout` for the write lease; `None` when it timed out.
        fn write_timeout(timeout: Duration) -> Option<WriteGuard>;
        /// See [`AsyncRwLock::inspect`].
        fn inspect() -> RwLockInfo;
    }
}

impl RwLock {
    /// See [`AsyncRwLock::with_preference`].
    pub fn with_preference(self, preference: RwPreference) -> Self {
        RwLock {
            inner: self.inner.with_preference(preference),
        }
    }

    /// See [`AsyncRwLock::force_release`].
    pub fn force_release(&self, owner: &str) -> Result<bool> {
        let inner = self.inner.clone();
        let owner = owner.to_owned();
        run(
            "force_release",
            async move { inner.force_release(&owner).await },
        )
    }
}

/// A held read lease of an [`RwLock`]: a [`LockGuard`] (renewal, fencing
/// token, owner-checked release, release on drop) whose methods it derefs
/// to.
#[must_use = "the read lease is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct ReadGuard(LockGuard);

/// The held write lease of an [`RwLock`]: a [`LockGuard`] (renewal,
/// fencing token, owner-checked release, release on drop) whose methods it
/// derefs to.
#[must_use = "the write lease is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct WriteGuard(LockGuard);

macro_rules! rw_guard {
    ($guard:ident, $async:ident, $what:literal) => {
        impl FromAsync<$async> for $guard {
            fn from_async(answer: $async) -> Self {
                $guard(LockGuard::from_async(answer.into_inner()))
            }
        }

        impl $guard {
            #[doc = concat!("Frees the ", $what, " lease (see [`LockGuard::release`]).")]
            ///
            /// # Errors
            ///
            /// As [`LockGuard::release`].
            pub fn release(self) -> Result<()> {
                self.0.release()
            }

            /// The lease guard inside.
            pub fn into_inner(self) -> LockGuard {
                self.0
            }
        }

        impl std::ops::Deref for $guard {
            type Target = LockGuard;
            fn deref(&self) -> &LockGuard {
                &self.0
            }
        }
    };
}

rw_guard!(ReadGuard, AsyncReadGuard, "read");
rw_guard!(WriteGuard, AsyncWriteGuard, "write");
