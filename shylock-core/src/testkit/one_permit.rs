//! A one-permit semaphore seen as a lock, so the lock conformance cases
//! that apply (exclusion, expiry, owner checks, fencing, waiting,
//! cancellation, names) also run against a backend's semaphore operations.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::backend::{Backend, Deadline, Grant, LockInfo, SharedBackend};
use crate::error::Result;
use crate::target::semaphores;

/// Implements the lock operations of [`Backend`] with the semaphore
/// operations of the wrapped backend and one permit. `list` fails with a
/// `Misconfigured` error (semaphores have no listing), and `force_release` takes two
/// round trips (inspect, then release each holder): fine for tests only.
#[derive(Debug)]
pub struct OnePermit {
    inner: SharedBackend,
}

impl OnePermit {
    /// Wraps `inner`.
    pub fn wrap(inner: impl Into<SharedBackend>) -> SharedBackend {
        SharedBackend::from(Arc::new(OnePermit {
            inner: inner.into(),
        }))
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl Backend for OnePermit {
    fn releases_watched_since(&self, name: &str) -> Option<std::time::Instant> {
        self.inner.releases_watched_since(name)
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn claim(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        semaphores(&self.inner)?
            .claim_permit(name, owner, 1, ttl, deadline)
            .await
    }

    async fn extend(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        semaphores(&self.inner)?
            .extend_permit(name, owner, ttl, deadline)
            .await
    }

    async fn release(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        semaphores(&self.inner)?
            .release_permit(name, owner, deadline)
            .await
    }

    async fn inspect(&self, name: &str, deadline: Deadline) -> Result<Option<LockInfo>> {
        let info = semaphores(&self.inner)?
            .inspect_semaphore(name, deadline)
            .await?;
        assert!(
            info.holders.len() <= 1,
            "a one-permit semaphore has two holders: {info:?}"
        );
        Ok(info.holders.into_iter().next())
    }

    async fn list(
        &self,
        _prefix: &str,
        _after: Option<&str>,
        _limit: usize,
        _deadline: Deadline,
    ) -> Result<Vec<LockInfo>> {
        Err(crate::error::Error::backend_msg(
            "one-permit adapter",
            crate::error::ErrorKind::Misconfigured,
            "semaphores have no listing; the one-permit suite leaves out the list cases",
        ))
    }

    async fn force_release(&self, name: &str, deadline: Deadline) -> Result<bool> {
        let info = semaphores(&self.inner)?
            .inspect_semaphore(name, deadline)
            .await?;
        let mut freed = false;
        for holder in info.holders {
            freed |= semaphores(&self.inner)?
                .release_permit(name, &holder.owner, deadline)
                .await?;
        }
        Ok(freed)
    }

    fn release_signal(&self, name: &str) -> Option<Arc<tokio::sync::Notify>> {
        self.inner.semaphores()?.release_signal(name)
    }

    /// A semaphore of one permit has no line of its own.
    fn queues(&self) -> Option<&dyn crate::backend::QueueBackend> {
        None
    }

    /// Its semaphores are the wrapped backend's.
    fn semaphores(&self) -> Option<&dyn crate::backend::SemaphoreBackend> {
        self.inner.semaphores()
    }

    /// Read/write locks are not what this wrapper tests.
    fn rwlocks(&self) -> Option<&dyn crate::backend::RwLockBackend> {
        None
    }
}
