//! Types and helpers for the semaphore operations of [`Backend`](super::Backend).

use crate::backend::LockInfo;
use crate::error::{Error, ErrorKind};

/// Most permits a semaphore may have. Every attempt reads all live holders
/// of the semaphore in one record (MongoDB, ArangoDB) or one transaction
/// (SQLite), so the count is kept well below the size where that record
/// would grow large.
pub const MAX_PERMITS: u32 = 1000;

/// A semaphore's state, as [`Backend::inspect_semaphore`](super::Backend::inspect_semaphore)
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
        "this backend does not implement semaphores (Backend::claim_permit and friends); use \
         the memory, SQLite, MongoDB or ArangoDB backend"
            .to_owned(),
    )
}
