//! The process-wide default backend.

use std::sync::OnceLock;

use crate::backend::SharedBackend;
use crate::error::{Error, Result};
use crate::options::LockOptions;

static DEFAULT: OnceLock<(SharedBackend, LockOptions)> = OnceLock::new();

/// Sets the backend that [`AsyncLock::new`](crate::AsyncLock::new) and
/// [`Lock::new`](crate::Lock::new) use. Call it once at startup.
///
/// # Errors
///
/// [`Error::AlreadyConfigured`] when a default was set before; the first
/// one stays in place.
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::{configure, AsyncLock, MemoryBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shylock::Result<()> {
/// configure(MemoryBackend::new())?;
/// let guard = AsyncLock::new("orders/42").acquire().await?;
/// # drop(guard);
/// # Ok(())
/// # }
/// ```
pub fn configure(backend: impl Into<SharedBackend>) -> Result<()> {
    configure_with(backend, LockOptions::default())
}

/// Like [`configure`], and also sets the options that locks built without
/// [`with_options`](crate::AsyncLock::with_options) use.
///
/// # Errors
///
/// [`Error::AlreadyConfigured`] on a second call; [`Error::InvalidOptions`]
/// when `options` is out of range (nothing is configured then).
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use std::time::Duration;
/// use shylock::{configure_with, LockOptions, MemoryBackend};
///
/// configure_with(MemoryBackend::new(), LockOptions::default().ttl(Duration::from_secs(60)))?;
/// # Ok::<(), shylock::Error>(())
/// ```
pub fn configure_with(backend: impl Into<SharedBackend>, options: LockOptions) -> Result<()> {
    options.validate()?;
    DEFAULT
        .set((backend.into(), options))
        .map_err(|_| Error::AlreadyConfigured)
}

/// The configured default backend and options.
///
/// # Errors
///
/// [`Error::NotConfigured`] when [`configure`] was never called.
pub fn default_backend() -> Result<(SharedBackend, LockOptions)> {
    DEFAULT.get().cloned().ok_or(Error::NotConfigured)
}

/// Whether a default backend is set.
pub fn is_configured() -> bool {
    DEFAULT.get().is_some()
}
