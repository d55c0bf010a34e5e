//! The fair-queue capability: [`QueueBackend`] and its helpers.

use std::sync::Arc;
use std::time::Duration;

use crate::backend::{Deadline, Grant};
use crate::error::{Error, ErrorKind, Result};

/// Most live tickets a line of fair waiters may hold. Each fair operation
/// reads (MongoDB, ArangoDB: rewrites) the whole line, stored in the lock's
/// record, and a change-stream event carries it, so the line is kept far
/// below the sizes where that record or event would grow too large (16 MB
/// on MongoDB). An `enqueue` that would pass it fails with [`line_full`];
/// an owner already in line keeps its place.
pub const MAX_WAITERS: u64 = 10_000;

/// The error of an [`enqueue`](QueueBackend::enqueue) into a line that
/// already holds [`MAX_WAITERS`] live tickets.
pub fn line_full(backend: &'static str, name: &str) -> Error {
    Error::backend_msg(
        backend,
        ErrorKind::LimitReached,
        format!(
            "the line of fair waiters for {name:?} already holds {MAX_WAITERS} tickets, the most \
             a line may hold; try again later, or let some of these waiters use a \
             non-fair lock or give up sooner (a shorter wait timeout)"
        ),
    )
}

/// Lines of waiters in a store, for fair locks: waiters are granted a lock
/// in the order they joined its line, across processes.
///
/// A backend offers them by implementing this trait and answering
/// `Some(self)` from [`Backend::queues`](super::Backend::queues). Every
/// operation follows the rules of the single-lock contract (see
/// [`Backend`](super::Backend)):
///
/// | operation | does | must hold |
/// |---|---|---|
/// | [`enqueue`](Self::enqueue) | a ticket in the line of waiters of a lock, with its own lease | one atomic step; arrival order kept; a retry by the same owner keeps its place; the lock's live holder gets no ticket |
/// | [`claim_fair`](Self::claim_fair) | `claim`, only for the first live ticket (or an empty line) | atomic with the ticket's removal; expired tickets skipped by the attempt itself; a retry by the live holder wins whatever the line, keeping its token |
/// | [`extend_ticket`](Self::extend_ticket) / [`leave_queue`](Self::leave_queue) | keep or give up a place in line | owner-checked |
/// | [`list_queues`](Self::list_queues) | lines with live tickets, and their lengths | read only, one round trip |
/// | [`turn_signal`](Self::turn_signal) | optional wake-up for the waiter first in line | never needed for correctness |
#[async_trait::async_trait]
pub trait QueueBackend: Send + Sync {
    /// Puts `owner` in the line of waiters for lock `name` with a ticket
    /// that lives for `ttl` (by the database's clock) unless extended, and
    /// returns its place: how many live tickets are ahead of it (0: first).
    /// An owner already in the line keeps its place and its ticket's
    /// expiry is pushed. Expired tickets count as gone.
    ///
    /// A new owner is refused with [`line_full`] (kind
    /// [`ErrorKind::LimitReached`]) when the line already holds
    /// [`MAX_WAITERS`] live tickets.
    ///
    /// An owner that holds a live lease on `name` gets no ticket and the
    /// answer 0: its ticket was removed by its winning claim, and a
    /// renewal of the ticket racing that claim must not put back a ticket
    /// nobody keeps alive, which would block the line until it expired.
    async fn enqueue(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<u64>;

    /// [`claim`](super::Backend::claim) for a fair waiter: takes `name` for
    /// `owner` only if it is free, expired or already `owner`'s **and** no
    /// live ticket of another owner is ahead in the line (`owner`'s own
    /// ticket is first, or the line is empty). A win removes `owner`'s
    /// ticket in the same atomic step.
    ///
    /// A retry by the owner that holds a live lease (a win whose answer was
    /// lost) wins again whatever the line, with the same fencing token, as
    /// [`claim`](super::Backend::claim) does.
    async fn claim_fair(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>>;

    /// Pushes the expiry of `owner`'s ticket for `name` to now + `ttl`;
    /// `false` if it has no live ticket (it expired or was never there).
    async fn extend_ticket(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<bool>;

    /// Removes `owner`'s ticket for `name`; whether there was one.
    async fn leave_queue(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool>;

    /// The lines of waiters whose lock names start with `prefix` and that
    /// hold at least one live ticket, ordered by name, at most `limit` of
    /// them, each with its count of live tickets. One round trip (or one
    /// read transaction); read only. For operators (the `shylock list`
    /// command).
    async fn list_queues(
        &self,
        prefix: &str,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<QueueInfo>>;

    /// A signal notified when the fair waiter holding `owner`'s ticket for
    /// `name` may now win: a release was seen while that ticket was first
    /// in the line. Backends that see the line at each release (MongoDB's
    /// change stream, SQLite's file watcher) answer it, so a release wakes
    /// only the waiter that can win, in whichever process it is, instead of
    /// one waiter in every process. A fair waiter subscribes before it asks
    /// for its place, and one behind others waits for this signal before
    /// its first attempt while releases are watched.
    ///
    /// `None` (the default): fair waiters are woken through
    /// [`Backend::release_signal`](super::Backend::release_signal) alone.
    /// Fair waiters always listen to both, so a backend answering this one
    /// still notifies `release_signal` for releases it makes itself.
    fn turn_signal(&self, name: &str, owner: &str) -> Option<Arc<tokio::sync::Notify>> {
        let _ = (name, owner);
        None
    }
}

/// A line of fair waiters, as [`QueueBackend::list_queues`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueInfo {
    /// The lock name the line waits for.
    pub name: String,
    /// Live tickets in the line (unexpired by the database's clock).
    pub waiting: u64,
}

impl QueueInfo {
    /// Builds a `QueueInfo` (for backend authors).
    pub fn new(name: impl Into<String>, waiting: u64) -> Self {
        QueueInfo {
            name: name.into(),
            waiting,
        }
    }
}

/// The error of the default fair-queue operations: this backend keeps no
/// line of waiters.
pub fn queues_unsupported(backend: &'static str) -> Error {
    Error::backend_msg(
        backend,
        ErrorKind::Misconfigured,
        "this backend does not offer fair queues (Backend::queues answers None); use \
         LockOptions::fair(false), or the memory, SQLite, MongoDB or ArangoDB backend"
            .to_owned(),
    )
}
