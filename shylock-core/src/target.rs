//! What a lease is on: a lock, or one permit of a semaphore. Attempts,
//! guards and renewal are the same for both; only the backend operations
//! differ.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::backend::{Deadline, Grant, SharedBackend};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The lock of that name.
    Lock,
    /// The lock of that name, for a fair waiter: only the first in line
    /// may take it. Held, extended and released as [`Target::Lock`].
    Fair,
    /// One of `permits` permits of the semaphore of that name.
    Permit { permits: u32 },
}

impl Target {
    /// `"lock"` or `"permit"`, for spans and metrics.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Target::Lock | Target::Fair => "lock",
            Target::Permit { .. } => "permit",
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
            Target::Fair => backend.claim_fair(name, owner, ttl, deadline).await,
            Target::Permit { permits } => {
                backend
                    .claim_permit(name, owner, permits, ttl, deadline)
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
            Target::Permit { .. } => backend.extend_permit(name, owner, ttl, deadline).await,
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
            Target::Permit { .. } => backend.release_permit(name, owner, deadline).await,
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
            Target::Permit { .. } => backend.permit_release_signal(name),
        }
    }
}
