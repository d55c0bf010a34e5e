//! The read/write lock capability: [`RwLockBackend`], its types and
//! helpers.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::backend::{Deadline, Grant, LockInfo};
use crate::error::{Error, ErrorKind, Result};

/// Which side of a read/write lock a lease or a waiter is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// A reader: shares the lock with other readers.
    Read,
    /// The writer: holds the lock alone.
    Write,
}

/// Read/write locks in a store: many readers share a name, a writer holds
/// it alone.
///
/// A backend offers them by implementing this trait and answering
/// `Some(self)` from [`Backend::rwlocks`](super::Backend::rwlocks). Every
/// operation follows the rules of the single-lock contract (one attempt,
/// atomic, the database's clock, answers rather than errors; see
/// [`Backend`](super::Backend)):
///
/// | operation | does | must hold |
/// |---|---|---|
/// | [`claim_read`](Self::claim_read) | join the readers if no live writer holds the name (and, with `writers_first`, no live writer waits) | atomic in one round trip (or one transaction); expired leases count as gone; a retry by the same owner keeps its lease |
/// | [`claim_write`](Self::claim_write) | take the name alone if no live reader or writer holds it; when refused with `intent`, record that this owner waits | the same; an owner's recorded intent ends when it wins, releases, or its ttl passes |
/// | [`extend_rw`](Self::extend_rw) / [`release_rw`](Self::release_rw) | as `extend` / `release`, for the read or write lease of `owner` | owner-checked; `release_rw` also withdraws `owner`'s intent |
/// | [`inspect_rwlock`](Self::inspect_rwlock) | live readers, the live writer, whether a writer waits | read only |
/// | [`release_signal`](Self::release_signal) | optional wake-up for the waiters of one side | never needed for correctness |
///
/// Fencing tokens strictly increase per name across read and write grants:
/// every grant (to a reader or to the writer) gets a token greater than
/// every token granted before for that name.
///
/// # Writer preference
///
/// A refused `claim_write` with `intent` records that a writer waits (one
/// intent per name at a time: the first refused writer's, until it wins,
/// withdraws, or its ttl passes; then the next refused writer's). A
/// `claim_read` with `writers_first` is refused while a live intent
/// exists, so readers stop entering and the writer gets its turn once the
/// readers inside leave. A reader that already holds a lease keeps it
/// (its retry still succeeds).
///
/// Read/write lock names are a namespace of their own: a read/write lock
/// and a lock or semaphore with the same name are independent.
#[async_trait::async_trait]
pub trait RwLockBackend: Send + Sync {
    /// Takes a read lease on `name` for `owner` for `ttl` when no live
    /// writer holds it and, if `writers_first`, no live writer's intent is
    /// recorded; or returns the read lease `owner` already holds (pushing
    /// its expiry). `None` when refused.
    async fn claim_read(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        writers_first: bool,
        deadline: Deadline,
    ) -> Result<Option<Grant>>;

    /// Takes the write lease on `name` for `owner` for `ttl` when no live
    /// reader or writer holds it, or returns the write lease `owner`
    /// already holds (pushing its expiry). When refused and `intent` is
    /// set, records `owner`'s intent to write (expiring after `ttl`)
    /// unless another owner's live intent is recorded, and returns `None`.
    /// A grant clears `owner`'s intent.
    async fn claim_write(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        intent: bool,
        deadline: Deadline,
    ) -> Result<Option<Grant>>;

    /// Pushes the expiry of `owner`'s live read or write lease on `name` to
    /// now + `ttl`; `None` when `owner` holds no live lease there.
    async fn extend_rw(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>>;

    /// Frees `owner`'s read or write lease on `name` and withdraws its
    /// intent to write; whether it held a lease (a withdrawn intent alone
    /// answers `false`). Never frees another owner's lease.
    async fn release_rw(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool>;

    /// The live readers and writer of `name`, and whether a writer waits.
    async fn inspect_rwlock(&self, name: &str, deadline: Deadline) -> Result<RwLockInfo>;

    /// As [`Backend::release_signal`](super::Backend::release_signal), for
    /// the waiters of one side of read/write lock `name`: the backend
    /// notifies the `Read` signal when readers may now enter (the writer
    /// left, or a writer's intent was withdrawn) and the `Write` signal
    /// when a writer may now win (the writer or the last reader left).
    /// `None` (the default): waiters poll with backoff.
    fn release_signal(&self, name: &str, access: Access) -> Option<Arc<tokio::sync::Notify>> {
        let _ = (name, access);
        None
    }
}

/// A read/write lock's state, as [`RwLockBackend::inspect_rwlock`]
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RwLockInfo {
    /// The read/write lock name.
    pub name: String,
    /// Live readers (unexpired by the database's clock), in the order they
    /// were granted (ascending fencing token).
    pub readers: Vec<LockInfo>,
    /// The live writer, if any.
    pub writer: Option<LockInfo>,
    /// Whether a live writer's intent to write is recorded (readers that
    /// prefer writers are refused meanwhile).
    pub writer_waiting: bool,
}

impl RwLockInfo {
    /// Builds an `RwLockInfo` (for backend authors); sorts the readers by
    /// fencing token.
    pub fn new(
        name: impl Into<String>,
        mut readers: Vec<LockInfo>,
        writer: Option<LockInfo>,
        writer_waiting: bool,
    ) -> Self {
        readers.sort_by_key(|h| h.fencing_token);
        RwLockInfo {
            name: name.into(),
            readers,
            writer,
            writer_waiting,
        }
    }

    /// Whether nobody holds it (no live reader, no live writer).
    pub fn is_free(&self) -> bool {
        self.readers.is_empty() && self.writer.is_none()
    }
}

/// The error of a read/write lock operation on a backend that has none.
pub fn rwlocks_unsupported(backend: &'static str) -> Error {
    Error::backend_msg(
        backend,
        ErrorKind::Misconfigured,
        "read/write locks unsupported by this backend (Backend::rwlocks answers None); use the \
         memory backend, or a backend that implements RwLockBackend"
            .to_owned(),
    )
}
