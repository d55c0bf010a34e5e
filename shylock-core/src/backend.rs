//! The contract between the lock logic and a database.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

/// Longest accepted lock name, in bytes (64 KiB).
pub const MAX_NAME_LEN: usize = 64 * 1024;

/// Checks a lock name: any UTF-8 string of 1 to [`MAX_NAME_LEN`] bytes is
/// valid (slashes, dots, `$`, spaces, emoji and NUL included), and two
/// different strings are always two different locks.
///
/// # Examples
///
/// ```
/// use shylock_core::validate_name;
///
/// assert!(validate_name("orders/42").is_ok());
/// assert!(validate_name("").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidName {
            reason: "the name is empty; give every lock a non-empty name such as \"orders/42\""
                .into(),
        });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::InvalidName {
            reason: format!(
                "the name is {} bytes long, over the limit of {MAX_NAME_LEN} bytes; use a \
                 shorter name, e.g. a hash of the resource identifier",
                name.len()
            ),
        });
    }
    Ok(())
}

/// A lock held by one owner: what a successful [`Backend::acquire`] returns.
///
/// Backends build it with [`Lease::new`]; callers usually see it through a
/// guard.
#[derive(Clone, PartialEq, Eq)]
pub struct Lease {
    name: String,
    owner: String,
    fencing_token: u64,
    expires_at: SystemTime,
}

impl Lease {
    /// A lease on `name` held by `owner`, with its fencing token and its
    /// expiry as the database's clock reported it.
    pub fn new(
        name: impl Into<String>,
        owner: impl Into<String>,
        fencing_token: u64,
        expires_at: SystemTime,
    ) -> Self {
        Lease {
            name: name.into(),
            owner: owner.into(),
            fencing_token,
            expires_at,
        }
    }

    /// The lock name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The owner token: unique for every acquisition.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The fencing token: strictly greater than the token of every earlier
    /// holder of the same name.
    pub fn fencing_token(&self) -> u64 {
        self.fencing_token
    }

    /// When the lease expires unless extended, by the database's clock.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.name)
            .field("owner", &self.owner)
            .field("fencing_token", &self.fencing_token)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What [`Backend::inspect`] reports about a held lock.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockInfo {
    /// The lock name.
    pub name: String,
    /// Owner token of the current holder.
    pub owner: String,
    /// Fencing token of the current holder.
    pub fencing_token: u64,
    /// When the current lease expires, by the database's clock.
    pub expires_at: SystemTime,
}

impl LockInfo {
    /// Builds a `LockInfo` (for backend authors).
    pub fn new(
        name: impl Into<String>,
        owner: impl Into<String>,
        fencing_token: u64,
        expires_at: SystemTime,
    ) -> Self {
        LockInfo {
            name: name.into(),
            owner: owner.into(),
            fencing_token,
            expires_at,
        }
    }
}

/// A store that keeps locks: one implementation per database.
///
/// Every method is **one attempt** and never waits for the lock: waiting,
/// timeouts, backoff, renewal and guards live in [`AsyncLock`](crate::AsyncLock),
/// once for every backend. Names passed in are already checked with
/// [`validate_name`].
///
/// A backend is correct when it passes the conformance suite in
/// `shylock_core::testkit` (feature `testkit`):
///
/// - `acquire` is atomic: of any number of concurrent callers at most one
///   wins; a lock whose expiry passed (by the database's clock) is free; a
///   caller that already holds the lock with the same owner token gets it
///   again (so a retried request cannot turn a win into "held"); the fencing
///   token of each new holder is strictly greater than any earlier token for
///   that name, also after release, expiry and `force_release`.
/// - `extend` and `release` match on name **and** owner token, so they never
///   touch another owner's lock.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// Takes `name` for `owner` for `ttl` if it is free, expired or already
    /// held by `owner`. Returns `None` when another owner holds it.
    async fn acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<Option<Lease>>;

    /// Pushes the expiry of `lease` to now + `ttl` if it is still held by its
    /// owner. Returns the updated lease, or `None` when the lock is no longer
    /// ours (taken over, force-released or released).
    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Option<Lease>>;

    /// Frees `lease`'s lock if it is still held by its owner. Returns whether
    /// it was; never frees another owner's lock.
    async fn release(&self, lease: &Lease) -> Result<bool>;

    /// The current holder of `name`, or `None` when it is free or expired.
    async fn inspect(&self, name: &str) -> Result<Option<LockInfo>>;

    /// Frees `name` whoever holds it (operator escape hatch). Returns whether
    /// a live lock was removed. Fencing tokens keep increasing afterwards.
    async fn force_release(&self, name: &str) -> Result<bool>;

    /// A signal notified (`notify_one`) when `name` may have been freed, so
    /// one waiter tries again at once instead of at its next backoff step.
    ///
    /// Backends that cannot observe releases return `None` (the default);
    /// waiters then only poll with backoff. [`ReleaseSignals`] implements it
    /// for releases made in this process.
    ///
    /// [`ReleaseSignals`]: crate::ReleaseSignals
    fn release_signal(&self, name: &str) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        let _ = name;
        None
    }
}

/// A cheap-to-clone handle to any [`Backend`]: what locks hold.
///
/// Every backend converts into it with `.into()`.
///
/// # Examples
///
/// ```
/// use shylock_core::{MemoryBackend, SharedBackend};
///
/// let backend: SharedBackend = MemoryBackend::new().into();
/// let again = backend.clone(); // same store
/// # let _ = again;
/// ```
#[derive(Clone)]
pub struct SharedBackend(Arc<dyn Backend>);

impl SharedBackend {
    /// Wraps a backend.
    pub fn new(backend: impl Backend) -> Self {
        SharedBackend(Arc::new(backend))
    }

    /// Wraps an already shared backend.
    pub fn from_arc(backend: Arc<dyn Backend>) -> Self {
        SharedBackend(backend)
    }
}

impl<B: Backend> From<B> for SharedBackend {
    fn from(backend: B) -> Self {
        SharedBackend::new(backend)
    }
}

impl std::ops::Deref for SharedBackend {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Debug for SharedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Converts milliseconds since the Unix epoch, as databases store them, into a
/// [`SystemTime`] (negative values clamp to the epoch).
pub fn system_time_from_millis(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// Converts a [`Duration`] to whole milliseconds for a database, rounding up
/// so a lease is never shorter than asked.
pub fn duration_to_millis(d: Duration) -> i64 {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    i64::try_from(ms).unwrap_or(i64::MAX)
}
