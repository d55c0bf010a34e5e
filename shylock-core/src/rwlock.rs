//! [`AsyncRwLock`]: many readers or one writer on one name.

use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{Deadline, RwLockInfo, SharedBackend};
use crate::error::{Error, Result};
use crate::guard::AsyncLockGuard;
use crate::options::LockOptions;
use crate::spec::Spec;
use crate::target::{rwlocks, Target};
use crate::wait::{self, Owner, Wait};

/// Who goes first when readers and a writer both wait on an
/// [`AsyncRwLock`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RwPreference {
    /// A waiting writer stops new readers from entering: readers already
    /// inside finish, the writer gets its turn, then readers enter again.
    /// Writers are never starved; readers wait while a writer waits. The
    /// default.
    #[default]
    Writers,
    /// Readers enter whenever no writer holds the lock, even while a writer
    /// waits: the most read throughput, but a steady stream of readers can
    /// keep a writer waiting for ever.
    Readers,
}

/// A distributed read/write lock: many readers share a name, a writer
/// holds it alone, across every process that shares the backend.
///
/// Every reader and the writer hold a lease of their own, with the whole
/// lifecycle of an [`AsyncLockGuard`]: renewal,
/// [`lost()`](AsyncLockGuard::lost), owner-checked release and background
/// release on drop. A crashed reader or writer frees its share after its
/// ttl, judged by the database's clock. Fencing tokens strictly increase
/// per name across read and write grants, so a writer's token is greater
/// than the token of every reader that entered before it. Every attempt is
/// one round trip (one transaction on SQLite).
///
/// # Writer preference
///
/// By default ([`RwPreference::Writers`]) a writer that has to wait
/// records its intent in the store, and new readers stop entering until it
/// has written (or stopped waiting, or its intent lapsed one ttl after its
/// last attempt, if its process died): writers are never starved, and
/// readers may wait behind a writer that waits. With
/// [`RwPreference::Readers`] readers enter whenever no writer holds the
/// lock. All processes should use the same preference for a name.
///
/// Like `std::sync::RwLock`, it is not reentrant: a task that holds a read
/// guard and asks for another while a writer waits waits behind that
/// writer, which waits for the first guard.
///
/// Read/write lock names are their own namespace: `AsyncRwLock::new("x")`
/// and `AsyncLock::new("x")` do not interact.
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::{AsyncRwLock, MemoryBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shylock::Result<()> {
/// let rw = AsyncRwLock::with_backend("cache/users", MemoryBackend::new());
/// let a = rw.read().await?;
/// let b = rw.read().await?; // readers share
/// assert!(rw.try_write().await?.is_none()); // a writer waits for them
/// let last_read = b.fencing_token();
/// a.release().await?;
/// b.release().await?;
/// let w = rw.write().await?;
/// assert!(w.fencing_token() > last_read);
/// assert!(rw.try_read().await?.is_none()); // the writer is alone
/// w.release().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AsyncRwLock {
    spec: Spec,
    preference: RwPreference,
}

impl AsyncRwLock {
    /// A read/write lock on `name` in the default backend set by
    /// [`configure`](crate::configure).
    pub fn new(name: impl Into<String>) -> Self {
        AsyncRwLock {
            spec: Spec::new(name.into(), None),
            preference: RwPreference::default(),
        }
    }

    /// A read/write lock on `name` in an explicit backend.
    pub fn with_backend(name: impl Into<String>, backend: impl Into<SharedBackend>) -> Self {
        AsyncRwLock {
            spec: Spec::new(name.into(), Some(backend.into())),
            preference: RwPreference::default(),
        }
    }

    /// Sets the options of its leases: ttl, renewal, wait timeout,
    /// backoff, operation timeout (see [`LockOptions`]; `fair` is not
    /// offered for read/write locks).
    pub fn with_options(self, options: LockOptions) -> Self {
        AsyncRwLock {
            spec: self.spec.with_options(options),
            preference: self.preference,
        }
    }

    /// Sets who goes first when readers and a writer wait (default:
    /// [`RwPreference::Writers`]).
    pub fn with_preference(self, preference: RwPreference) -> Self {
        AsyncRwLock {
            spec: self.spec,
            preference,
        }
    }

    /// The read/write lock name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Who goes first when readers and a writer wait.
    pub fn preference(&self) -> RwPreference {
        self.preference
    }

    fn resolve(&self) -> Result<(SharedBackend, LockOptions)> {
        let (backend, options) = self.spec.resolve()?;
        if options.fair {
            return Err(Error::InvalidOptions {
                reason: format!(
                    "read/write lock {:?} was given fair(true), which read/write locks do not \
                     offer; drop it: writers are not starved by default (RwPreference::Writers)",
                    self.name()
                ),
            });
        }
        // A backend without read/write locks fails here, before any attempt.
        rwlocks(&backend)?;
        Ok((backend, options))
    }

    fn read_target(&self) -> Target {
        Target::Read {
            writers_first: self.preference == RwPreference::Writers,
        }
    }

    async fn read_with(
        &self,
        wait: Option<Duration>,
        once: bool,
    ) -> Result<Option<AsyncReadGuard>> {
        let (backend, options) = self.resolve()?;
        let wait = plan(wait, once, &options);
        let guard = wait::acquire(
            self.name(),
            self.read_target(),
            backend,
            options,
            wait,
            Owner::New,
            None,
        )
        .await?;
        Ok(guard.map(AsyncReadGuard))
    }

    async fn write_with(
        &self,
        wait: Option<Duration>,
        once: bool,
    ) -> Result<Option<AsyncWriteGuard>> {
        let (backend, options) = self.resolve()?;
        let wait = plan(wait, once, &options);
        // A writer that waits records its intent (writer preference); one
        // attempt only does not, so it leaves nothing to withdraw.
        let intent = !once;
        let owner = uuid::Uuid::new_v4().to_string();
        let mut withdraw = Withdraw {
            armed: intent,
            backend: backend.clone(),
            name: self.name().to_owned(),
            owner: owner.clone(),
            timeout: options.operation_timeout,
        };
        let result = wait::acquire(
            self.name(),
            Target::Write { intent },
            backend,
            options,
            wait,
            Owner::Given(owner),
            None,
        )
        .await;
        match result {
            Ok(Some(guard)) => {
                withdraw.armed = false;
                Ok(Some(AsyncWriteGuard(guard)))
            }
            other => {
                // Timed out or failed: stop holding readers back now.
                withdraw.now().await;
                other.map(|_| None)
            }
        }
    }

    /// Waits until a read lease is ours and returns its guard (for at most
    /// the options' `wait_timeout`, if set). Readers share the lock; they
    /// wait while a writer holds it and, with writer preference, while a
    /// writer waits.
    ///
    /// # Errors
    ///
    /// As [`AsyncLock::acquire`](crate::AsyncLock::acquire), plus
    /// [`ErrorKind::Misconfigured`](crate::ErrorKind::Misconfigured) when
    /// the backend offers no read/write locks.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a lease won by an abandoned attempt is released at once.
    pub async fn read(&self) -> Result<AsyncReadGuard> {
        let started = Instant::now();
        self.read_with(None, false)
            .await?
            .ok_or_else(|| self.timed_out(started))
    }

    /// One attempt at a read lease: its guard, or `None` when refused.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`read`](Self::read).
    pub async fn try_read(&self) -> Result<Option<AsyncReadGuard>> {
        self.read_with(None, true).await
    }

    /// Waits at most `timeout` for a read lease; `None` when it timed out.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`read`](Self::read).
    pub async fn read_timeout(&self, timeout: Duration) -> Result<Option<AsyncReadGuard>> {
        self.read_with(Some(timeout), false).await
    }

    /// Waits until the write lease is ours and returns its guard (for at
    /// most the options' `wait_timeout`, if set). While it waits, its
    /// intent keeps new readers out (with writer preference).
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a lease won by an abandoned attempt is released, and
    /// the intent to write is withdrawn, in the background.
    pub async fn write(&self) -> Result<AsyncWriteGuard> {
        let started = Instant::now();
        self.write_with(None, false)
            .await?
            .ok_or_else(|| self.timed_out(started))
    }

    /// One attempt at the write lease: its guard, or `None` when readers or
    /// a writer hold the lock. Records no intent.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`write`](Self::write).
    pub async fn try_write(&self) -> Result<Option<AsyncWriteGuard>> {
        self.write_with(None, true).await
    }

    /// Waits at most `timeout` for the write lease; `None` when it timed
    /// out (its intent is then withdrawn).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`write`](Self::write).
    pub async fn write_timeout(&self, timeout: Duration) -> Result<Option<AsyncWriteGuard>> {
        self.write_with(Some(timeout), false).await
    }

    /// The live readers and writer, and whether a writer waits. Bounded by
    /// the operation timeout.
    pub async fn inspect(&self) -> Result<RwLockInfo> {
        let (backend, options) = self.resolve()?;
        let deadline = Deadline::after(options.operation_timeout);
        // What this process let go of a moment ago (a dropped guard, an
        // abandoned attempt) lands first.
        crate::inflight::settle(self.name(), deadline.instant()).await;
        deadline
            .bound("inspect", async {
                rwlocks(&backend)?
                    .inspect_rwlock(self.name(), deadline)
                    .await
            })
            .await
    }

    /// Frees the read or write lease of `owner` (an owner token from
    /// [`inspect`](Self::inspect)) whoever holds it: the operator's way to
    /// free a stuck holder. Returns whether it was held; the holder's guard
    /// then reports it lost.
    pub async fn force_release(&self, owner: &str) -> Result<bool> {
        let (backend, options) = self.resolve()?;
        let deadline = Deadline::after(options.operation_timeout);
        let freed = deadline
            .bound("force_release", async {
                rwlocks(&backend)?
                    .release_rw(self.name(), owner, deadline)
                    .await
            })
            .await?;
        tracing::warn!(rwlock = %self.name(), owner, freed, "read/write lease force-released");
        Ok(freed)
    }

    fn timed_out(&self, started: Instant) -> Error {
        Error::Timeout {
            name: self.name().to_owned(),
            waited: started.elapsed(),
        }
    }
}

/// How long an acquire waits: once, until `timeout`, or by the options.
fn plan(timeout: Option<Duration>, once: bool, options: &LockOptions) -> Wait {
    if once {
        return Wait::Once;
    }
    match timeout.or(options.wait_timeout) {
        Some(t) => Wait::Until(Instant::now() + t),
        None => Wait::Forever,
    }
}

/// A waiting writer's intent, withdrawn unless disarmed: at once by
/// [`now`](Self::now), or in the background when dropped (a cancelled
/// `write()`).
struct Withdraw {
    armed: bool,
    backend: SharedBackend,
    name: String,
    owner: String,
    timeout: Duration,
}

impl Withdraw {
    async fn now(&mut self) {
        if std::mem::take(&mut self.armed) {
            withdraw(&self.backend, &self.name, &self.owner, self.timeout).await;
        }
    }
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(rwlock = %self.name, "no runtime to withdraw on; the intent lapses after its ttl");
            return;
        };
        let (backend, timeout) = (self.backend.clone(), self.timeout);
        let (name, owner) = (
            std::mem::take(&mut self.name),
            std::mem::take(&mut self.owner),
        );
        runtime.spawn(async move { withdraw(&backend, &name, &owner, timeout).await });
    }
}

async fn withdraw(backend: &SharedBackend, name: &str, owner: &str, timeout: Duration) {
    let deadline = Deadline::after(timeout);
    let answer = deadline
        .bound("release", async {
            rwlocks(backend)?.release_rw(name, owner, deadline).await
        })
        .await;
    if let Err(error) = answer {
        tracing::warn!(rwlock = %name, %error, "could not withdraw a writer's intent; it lapses after its ttl");
    }
}

/// A held read lease of an [`AsyncRwLock`]: an [`AsyncLockGuard`] (renewal,
/// [`lost()`](AsyncLockGuard::lost), fencing token, owner-checked release,
/// release on drop) whose methods it derefs to.
#[must_use = "the read lease is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct AsyncReadGuard(AsyncLockGuard);

/// The held write lease of an [`AsyncRwLock`]: an [`AsyncLockGuard`]
/// (renewal, [`lost()`](AsyncLockGuard::lost), fencing token,
/// owner-checked release, release on drop) whose methods it derefs to.
#[must_use = "the write lease is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct AsyncWriteGuard(AsyncLockGuard);

macro_rules! rw_guard {
    ($guard:ident, $what:literal) => {
        impl $guard {
            #[doc = concat!("Frees the ", $what, " lease (see [`AsyncLockGuard::release`]).")]
            ///
            /// # Errors
            ///
            /// As [`AsyncLockGuard::release`].
            pub async fn release(self) -> Result<()> {
                self.0.release().await
            }

            /// The lease guard inside.
            pub fn into_inner(self) -> AsyncLockGuard {
                self.0
            }
        }

        impl std::ops::Deref for $guard {
            type Target = AsyncLockGuard;
            fn deref(&self) -> &AsyncLockGuard {
                &self.0
            }
        }
    };
}

rw_guard!(AsyncReadGuard, "read");
rw_guard!(AsyncWriteGuard, "write");
