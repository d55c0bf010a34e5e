//! The semaphore capability: [`SemaphoreBackend`], its types and helpers.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::backend::{Deadline, Grant, LockInfo};
use crate::error::{Error, ErrorKind, Result};

/// Counting semaphores in a store: at most N live holders of one name.
///
/// A backend offers them by implementing this trait and answering
/// `Some(self)` from [`Backend::semaphores`](super::Backend::semaphores).
/// Every operation follows the rules of the single-lock contract (one
/// attempt, atomic, the database's clock, answers rather than errors; see
/// [`Backend`](super::Backend)):
///
/// | operation | does | must hold |
/// |---|---|---|
/// | [`claim_permit`](Self::claim_permit) | take one of N permits of a semaphore if fewer than N live holders exist | atomic in one round trip (or one transaction); expired holders' permits reclaimed by the attempt itself; tokens strictly increase per semaphore across all its permits; a retry by the same owner keeps its permit; a different N while live holders exist is [`permits_mismatch`] |
/// | [`extend_permit`](Self::extend_permit) / [`release_permit`](Self::release_permit) | as `extend` / `release`, per permit | owner-checked |
/// | [`inspect_semaphore`](Self::inspect_semaphore) / [`list_semaphores`](Self::list_semaphores) | live permit holders of one semaphore / of those whose names start with a prefix | read only, one round trip |
/// | [`release_signal`](Self::release_signal) | optional wake-up for permit waiters | never needed for correctness |
///
/// Semaphore names are a namespace of their own: a semaphore and a lock
/// with the same name are independent.
#[async_trait::async_trait]
pub trait SemaphoreBackend: Send + Sync {
    /// Takes one of `permits` permits of semaphore `name` for `owner` for
    /// `ttl` if fewer than `permits` live holders exist, or returns the
    /// permit `owner` already holds (pushing its expiry). Returns `None`
    /// when all permits are held by others. Holders whose leases expired
    /// (by the database's clock) count as gone.
    ///
    /// # Errors
    ///
    /// [`permits_mismatch`] when live holders were granted under another
    /// permit count.
    async fn claim_permit(
        &self,
        name: &str,
        owner: &str,
        permits: u32,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>>;

    /// Pushes the expiry of `owner`'s permit of semaphore `name` to now +
    /// `ttl`; `None` when `owner` holds no live permit.
    async fn extend_permit(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>>;

    /// Frees `owner`'s permit of semaphore `name`; whether it held one.
    /// A permit whose lease already expired but is still stored may count
    /// as held here (the answer only tells the caller whether it had to
    /// free something; no other holder is affected either way).
    async fn release_permit(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool>;

    /// The live holders of semaphore `name` and the permit count they hold
    /// under.
    async fn inspect_semaphore(&self, name: &str, deadline: Deadline) -> Result<SemaphoreInfo>;

    /// The semaphores whose names start with `prefix` and that have at
    /// least one live holder, ordered by name, at most `limit` of them,
    /// each as [`inspect_semaphore`](Self::inspect_semaphore) reports it.
    /// One round trip (or one read transaction); read only. For operators
    /// (the `shylock list` command).
    async fn list_semaphores(
        &self,
        prefix: &str,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<SemaphoreInfo>>;

    /// As [`Backend::release_signal`](super::Backend::release_signal), for
    /// permits of semaphore `name` (notified when a permit may have been
    /// freed). `None` (the default): permit waiters poll with backoff.
    fn release_signal(&self, name: &str) -> Option<Arc<tokio::sync::Notify>> {
        let _ = name;
        None
    }
}

/// Most permits a semaphore may have. Every attempt reads all live holders
/// of the semaphore in one record (MongoDB, ArangoDB) or one transaction
/// (SQLite), so the count is kept well below the size where that record
/// would grow large.
pub const MAX_PERMITS: u32 = 1000;

/// A semaphore's state, as [`SemaphoreBackend::inspect_semaphore`]
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SemaphoreInfo {
    /// The semaphore name.
    pub name: String,
    /// The permit count its live holders were granted under, or `None` when
    /// it has no live holder.
    pub permits: Option<u32>,
    /// Live holders (unexpired by the database's clock), one per permit, in
    /// the order their permits were granted (ascending fencing token).
    pub holders: Vec<LockInfo>,
}

impl SemaphoreInfo {
    /// Builds a `SemaphoreInfo` (for backend authors); sorts the holders by
    /// fencing token.
    pub fn new(name: impl Into<String>, permits: Option<u32>, mut holders: Vec<LockInfo>) -> Self {
        holders.sort_by_key(|h| h.fencing_token);
        let permits = if holders.is_empty() { None } else { permits };
        SemaphoreInfo {
            name: name.into(),
            permits,
            holders,
        }
    }

    /// How many of `permits` are free now.
    pub fn free(&self, permits: u32) -> u32 {
        permits.saturating_sub(u32::try_from(self.holders.len()).unwrap_or(u32::MAX))
    }
}

/// The error a backend returns when a claim asks for `asked` permits while
/// the semaphore's live holders were granted under `stored`: the stored
/// count stands until the semaphore has no live holder.
pub fn permits_mismatch(name: &str, stored: u32, asked: u32) -> Error {
    Error::InvalidOptions {
        reason: format!(
            "semaphore {name:?} is held with {stored} permits, but this process asked for \
             {asked}; every process must use the same count. The stored count stands while \
             the semaphore has live holders: change it everywhere, and the new count applies \
             once the old holders are gone"
        ),
    }
}

/// The error of a semaphore operation on a backend that has none.
pub fn semaphores_unsupported(backend: &'static str) -> Error {
    Error::backend_msg(
        backend,
        ErrorKind::Misconfigured,
        "this backend does not offer semaphores (Backend::semaphores answers None); use the \
         memory, SQLite, MongoDB or ArangoDB backend"
            .to_owned(),
    )
}
