//! [`AsyncLockGuard`]: proof of holding a lock, renewal and the lost signal.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backend::{Grant, SharedBackend};
use crate::error::Result;
use crate::lease::Shared;
use crate::observe::Labels;
use crate::options::{validate_ttl, LockOptions};
use crate::renewal::renew;
use crate::target::Target;

/// A held lock. Releasing it (or dropping it) frees the lock.
///
/// While the guard lives and renewal is on (the default), its lease is
/// extended in the background every ttl / 3. If the lease cannot be kept —
/// another owner took the lock after it expired, an operator force-released
/// it, or the database stayed unreachable until the lease ran out — the
/// guard is *lost*: [`is_lost`](Self::is_lost) turns true and
/// [`lost`](Self::lost) resolves. Work that must stay exclusive should stop
/// then, and writes to other systems should carry
/// [`fencing_token`](Self::fencing_token) so those systems can refuse a
/// stale holder.
///
/// Dropping the guard never blocks: it releases in the background, on
/// shylock's own runtime, so the release finishes even when the caller's
/// runtime ends right after the drop (the last line of `#[tokio::main]`).
/// A later acquire of the same name in this process first waits for that
/// release, and so does [`release_all`](crate::release_all); on Unix the
/// process's exit waits for it too (bounded by the operation timeout). See
/// [Releasing on drop](crate#releasing-on-drop) for backends whose client
/// lives on the caller's runtime.
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::{AsyncLock, MemoryBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shylock::Result<()> {
/// let guard = AsyncLock::with_backend("invoices", MemoryBackend::new()).acquire().await?;
/// tokio::select! {
///     _ = guard.lost() => eprintln!("lost the lock, stopping"),
///     _ = async { /* exclusive work */ } => {}
/// }
/// guard.release().await?;
/// # Ok(())
/// # }
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
pub struct AsyncLockGuard {
    shared: Arc<Shared>,
    backend: SharedBackend,
    renewal: Option<JoinHandle<()>>,
    released: bool,
}

impl AsyncLockGuard {
    pub(crate) fn start(
        target: Target,
        backend: SharedBackend,
        name: String,
        owner: String,
        grant: Grant,
        options: LockOptions,
        request_started: Instant,
    ) -> Self {
        let labels = Labels::new(&name, target, &backend, &options);
        let shared = Arc::new(Shared::new(
            target,
            name,
            owner,
            grant,
            &options,
            request_started,
            labels,
        ));
        crate::shutdown::register(&shared, &backend);
        let runtime = tokio::runtime::Handle::try_current().ok();
        let renewal = match (options.renewal_interval(), runtime) {
            (Some(interval), Some(handle)) => {
                Some(handle.spawn(renew(shared.clone(), backend.clone(), interval, options)))
            }
            _ => None,
        };
        AsyncLockGuard {
            shared,
            backend,
            renewal,
            released: false,
        }
    }

    /// The lock name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// This holder's fencing token: strictly greater than every earlier
    /// holder's token for the same name. Pass it along with writes to other
    /// systems so they can reject a holder whose lock was lost.
    pub fn fencing_token(&self) -> u64 {
        self.shared.fencing_token
    }

    /// The owner token of this lease (unique per acquisition).
    pub fn owner(&self) -> &str {
        &self.shared.owner
    }

    /// When the lease expires unless extended, by the database's clock. Kept
    /// current by renewal and [`extend`](Self::extend).
    pub fn expires_at(&self) -> SystemTime {
        self.shared.state().expires_at
    }

    /// True once the lock is known lost (see the type docs). Final: a lost
    /// guard never becomes valid again.
    pub fn is_lost(&self) -> bool {
        self.shared.is_lost()
    }

    /// Resolves when the lock is lost; never resolves while it is held.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it changes nothing, so it can sit in a
    /// `tokio::select!` beside the work the lock protects.
    pub async fn lost(&self) {
        let mut rx = self.shared.lost.subscribe();
        loop {
            if *rx.borrow_and_update() || self.shared.is_lost() {
                return;
            }
            let deadline = self.shared.state().deadline;
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        // Cannot happen while `self` holds the sender.
                        std::future::pending::<()>().await;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Pushes the expiry to now + `ttl` (one round trip, bounded by the
    /// operation timeout); later renewals use this ttl as well. Works with
    /// renewal on or off.
    ///
    /// # Errors
    ///
    /// [`Error::LockLost`](crate::Error::LockLost) if the lock is no longer ours;
    /// [`Error::InvalidOptions`](crate::Error::InvalidOptions) for a ttl out of range; [`Error::Backend`](crate::Error::Backend)
    /// if the database failed or did not answer in time (the lease is then
    /// unchanged).
    ///
    /// # Cancel safety
    ///
    /// If dropped mid-flight the expiry may or may not have been pushed;
    /// the guard stays valid either way.
    pub async fn extend(&self, ttl: Duration) -> Result<()> {
        self.extend_owned(ttl).await
    }

    /// [`extend`](Self::extend) as a future that borrows nothing, so it can
    /// run on another runtime.
    pub(crate) fn extend_owned(
        &self,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let shared = self.shared.clone();
        let backend = self.backend.clone();
        async move {
            validate_ttl(ttl)?;
            if shared.is_lost() {
                return Err(shared.lost_error());
            }
            let started = Instant::now();
            match shared.extend(&backend, ttl).await? {
                Some(expires_at) => {
                    shared.update(expires_at, ttl, started);
                    shared.extended.notify_one();
                    tracing::debug!(lock = %shared.name, ?ttl, "lease extended");
                    Ok(())
                }
                None => {
                    shared.mark_lost("extend found another owner or no lock");
                    Err(shared.lost_error())
                }
            }
        }
    }

    /// Frees the lock and consumes the guard (one round trip, bounded by
    /// the operation timeout).
    ///
    /// # Errors
    ///
    /// [`Error::LockLost`](crate::Error::LockLost) when the lock was no longer ours, or the guard
    /// was already lost (its lease ran out): the work done under it was not
    /// protected all along. Another owner's lock is never freed;
    /// [`Error::Backend`](crate::Error::Backend) when the database failed or did not answer in
    /// time (the lock then expires after its ttl).
    ///
    /// # Cancel safety
    ///
    /// If dropped mid-flight the lock may or may not have been freed; if
    /// not, it expires after its ttl.
    pub async fn release(mut self) -> Result<()> {
        self.released = true;
        self.stop_renewal();
        let was_lost = self.shared.is_lost();
        // Even a lost guard asks the backend: if nobody took the lock over,
        // this frees it now instead of at its expiry.
        let freed = self.shared.release(&self.backend).await?;
        if freed && !was_lost {
            tracing::debug!(lock = %self.shared.name, fencing_token = self.shared.fencing_token, "lock released");
            Ok(())
        } else {
            self.shared
                .mark_lost("release found another owner or no lock");
            Err(self.shared.lost_error())
        }
    }

    fn stop_renewal(&mut self) {
        if let Some(task) = self.renewal.take() {
            task.abort();
        }
    }
}

impl Drop for AsyncLockGuard {
    fn drop(&mut self) {
        self.stop_renewal();
        if self.released {
            return;
        }
        // On the background runtime, not the caller's: the caller's runtime
        // may end right after this drop (the last line of `main`).
        let backend = self.backend.clone();
        let shared = self.shared.clone();
        let (name, lost) = (shared.name.clone(), shared.is_lost());
        crate::inflight::spawn(&name, lost, shared.operation_timeout(), async move {
            match shared.release(&backend).await {
                Ok(true) => tracing::debug!(lock = %shared.name, "lock released on drop"),
                Ok(false) => {
                    tracing::warn!(lock = %shared.name, "lock was already lost when its guard was dropped")
                }
                Err(error) => {
                    tracing::warn!(lock = %shared.name, %error, "release on drop failed; the lock expires by its ttl")
                }
            }
        });
    }
}

impl std::fmt::Debug for AsyncLockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncLockGuard")
            .field("name", &self.shared.name)
            .field("fencing_token", &self.shared.fencing_token)
            .field("expires_at", &self.expires_at())
            .field("lost", &*self.shared.lost.borrow())
            .finish()
    }
}
