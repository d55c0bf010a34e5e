//! [`RequestLock`]: what a handler behind the layer sees of its lock.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::AsyncLockGuard;

/// The lock a [`LockLayer`](super::LockLayer) holds for this request, put
/// in the request's extensions (with axum: `Extension<RequestLock>`).
///
/// Cheap to clone. The layer releases the lock when the inner service's
/// future completes; a clone kept past that (moved into a spawned task,
/// say) keeps the lock held until the last clone is dropped, and the lock
/// is then released in the background.
#[derive(Clone)]
pub struct RequestLock {
    guard: Arc<AsyncLockGuard>,
}

impl RequestLock {
    pub(crate) fn new(guard: Arc<AsyncLockGuard>) -> Self {
        RequestLock { guard }
    }

    /// The lock name the layer derived from this request.
    pub fn name(&self) -> &str {
        self.guard.name()
    }

    /// This holder's fencing token: strictly greater than the token of
    /// every earlier holder of the name. Send it with writes (see
    /// [`AsyncLockGuard::fencing_token`]).
    pub fn fencing_token(&self) -> u64 {
        self.guard.fencing_token()
    }

    /// When the lease expires unless renewed, by the database's clock.
    pub fn expires_at(&self) -> SystemTime {
        self.guard.expires_at()
    }

    /// True once the lease is known lost: other requests may be running
    /// under the same name. Final.
    pub fn is_lost(&self) -> bool {
        self.guard.is_lost()
    }

    /// Resolves when the lease is lost; never while it is held.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: put it in a `tokio::select!` beside the handler's work.
    pub async fn lost(&self) {
        self.guard.lost().await
    }
}

impl fmt::Debug for RequestLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestLock")
            .field("name", &self.name())
            .field("fencing_token", &self.fencing_token())
            .field("lost", &self.is_lost())
            .finish()
    }
}
