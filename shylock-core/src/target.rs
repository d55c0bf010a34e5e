//! What a lease is on: a lock, one permit of a semaphore, or one side of
//! a read/write lock. Attempts, guards and renewal are the same for all;
//! only the backend operations differ.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::backend::{
    queues_unsupported, rwlocks_unsupported, semaphores_unsupported, Access, Deadline, Grant,
    QueueBackend, RwLockBackend, SemaphoreBackend, SharedBackend,
};
use crate::error::Result;

/// The backend's semaphores, or the error saying it offers none.
pub(crate) fn semaphores(backend: &SharedBackend) -> Result<&dyn SemaphoreBackend> {
    backend
        .semaphores()
        .ok_or_else(|| semaphores_unsupported(backend.kind()))
}

/// The backend's fair queues, or the error saying it offers none.
pub(crate) fn queues(backend: &SharedBackend) -> Result<&dyn QueueBackend> {
    backend
        .queues()
        .ok_or_else(|| queues_unsupported(backend.kind()))
}

/// The backend's read/write locks, or the error saying it offers none.
pub(crate) fn rwlocks(backend: &SharedBackend) -> Result<&dyn RwLockBackend> {
    backend
        .rwlocks()
        .ok_or_else(|| rwlocks_unsupported(backend.kind()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The lock of that name.
    Lock,
    /// The lock of that name, for a fair waiter: only the first in line
    /// may take it. Held, extended and released as [`Target::Lock`].
    Fair,
    /// One of `permits` permits of the semaphore of that name.
    Permit { permits: u32 },
    /// A read lease on the read/write lock of that name; `writers_first`:
    /// refused while a writer waits.
    Read { writers_first: bool },
    /// The write lease on the read/write lock of that name; `intent`: a
    /// refused claim records that this owner waits to write.
    Write { intent: bool },
}

impl Target {
    /// `"lock"`, `"permit"`, `"read"` or `"write"`, for spans and metrics.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Target::Lock | Target::Fair => "lock",
            Target::Permit { .. } => "permit",
            Target::Read { .. } => "read",
            Target::Write { .. } => "write",
        }
    }

    pub(crate) async fn claim(
        self,
        backend: &SharedBackend,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        match self {
            Target::Lock => backend.claim(name, owner, ttl, deadline).await,
            Target::Fair => {
                queues(backend)?
                    .claim_fair(name, owner, ttl, deadline)
                    .await
            }
            Target::Permit { permits } => {
                semaphores(backend)?
                    .claim_permit(name, owner, permits, ttl, deadline)
                    .await
            }
            Target::Read { writers_first } => {
                rwlocks(backend)?
                    .claim_read(name, owner, ttl, writers_first, deadline)
                    .await
            }
            Target::Write { intent } => {
                rwlocks(backend)?
                    .claim_write(name, owner, ttl, intent, deadline)
                    .await
            }
        }
    }

    pub(crate) async fn extend(
        self,
        backend: &SharedBackend,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        match self {
            Target::Lock | Target::Fair => backend.extend(name, owner, ttl, deadline).await,
            Target::Permit { .. } => {
                semaphores(backend)?
                    .extend_permit(name, owner, ttl, deadline)
                    .await
            }
            Target::Read { .. } | Target::Write { .. } => {
                rwlocks(backend)?
                    .extend_rw(name, owner, ttl, deadline)
                    .await
            }
        }
    }

    pub(crate) async fn release(
        self,
        backend: &SharedBackend,
        name: &str,
        owner: &str,
        deadline: Deadline,
    ) -> Result<bool> {
        match self {
            Target::Lock | Target::Fair => backend.release(name, owner, deadline).await,
            Target::Permit { .. } => {
                semaphores(backend)?
                    .release_permit(name, owner, deadline)
                    .await
            }
            Target::Read { .. } | Target::Write { .. } => {
                rwlocks(backend)?.release_rw(name, owner, deadline).await
            }
        }
    }

    /// Whether a refused claim may leave something in the store that an
    /// abandoned attempt must withdraw (a waiting writer's intent).
    pub(crate) fn refusal_leaves_state(self) -> bool {
        matches!(self, Target::Write { intent: true })
    }

    /// Fails at once, before any attempt, when the backend does not offer
    /// what this target needs.
    pub(crate) fn check(self, backend: &SharedBackend) -> Result<()> {
        match self {
            Target::Lock => Ok(()),
            Target::Fair => queues(backend).map(drop),
            Target::Permit { .. } => semaphores(backend).map(drop),
            Target::Read { .. } | Target::Write { .. } => rwlocks(backend).map(drop),
        }
    }

    /// The backend's wake-up for waiters on `name`, if it has one.
    pub(crate) fn release_signal(
        self,
        backend: &SharedBackend,
        name: &str,
    ) -> Option<Arc<tokio::sync::Notify>> {
        match self {
            Target::Lock | Target::Fair => backend.release_signal(name),
            Target::Permit { .. } => backend.semaphores()?.release_signal(name),
            Target::Read { .. } => backend.rwlocks()?.release_signal(name, Access::Read),
            Target::Write { .. } => backend.rwlocks()?.release_signal(name, Access::Write),
        }
    }
}
