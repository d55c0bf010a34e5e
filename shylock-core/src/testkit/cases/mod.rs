//! The conformance cases: one async function per rule of the contract,
//! grouped by theme.

mod exclusion;
mod expiry;
mod fair_semaphore;
mod names;
mod ownership;
mod queue;
mod rwlock;
mod semaphore;
mod waiting;

pub use exclusion::*;
pub use expiry::*;
pub use fair_semaphore::*;
pub use names::*;
pub use ownership::*;
pub use queue::*;
pub use rwlock::*;
pub use semaphore::*;
pub use waiting::*;

use std::time::Duration;

use crate::backend::{QueueBackend, RwLockBackend, SemaphoreBackend, SharedBackend};
use crate::options::LockOptions;

/// Whether `backend` offers semaphores; a semaphore case run against a
/// backend that offers none says so on stderr and checks nothing else.
pub(super) fn offers_semaphores(backend: &SharedBackend, case: &str) -> bool {
    let offered = backend.semaphores().is_some();
    if !offered {
        eprintln!(
            "{case}: not run, the {} backend offers no semaphores",
            backend.kind()
        );
    }
    offered
}

/// Whether `backend` offers fair queues (as [`offers_semaphores`]).
pub(super) fn offers_queues(backend: &SharedBackend, case: &str) -> bool {
    let offered = backend.queues().is_some();
    if !offered {
        eprintln!(
            "{case}: not run, the {} backend offers no fair queues",
            backend.kind()
        );
    }
    offered
}

/// Whether `backend` offers read/write locks (as [`offers_semaphores`]).
pub(super) fn offers_rwlocks(backend: &SharedBackend, case: &str) -> bool {
    let offered = backend.rwlocks().is_some();
    if !offered {
        eprintln!(
            "{case}: not run, the {} backend offers no read/write locks",
            backend.kind()
        );
    }
    offered
}

/// The backend's read/write locks (checked by [`offers_rwlocks`] first).
pub(super) fn rws(backend: &SharedBackend) -> &dyn RwLockBackend {
    backend
        .rwlocks()
        .expect("the case checked that the backend offers read/write locks")
}

/// The backend's semaphores (checked by [`offers_semaphores`] first).
pub(super) fn sems(backend: &SharedBackend) -> &dyn SemaphoreBackend {
    backend
        .semaphores()
        .expect("the case checked that the backend offers semaphores")
}

/// The backend's fair queues (checked by [`offers_queues`] first).
pub(super) fn lines(backend: &SharedBackend) -> &dyn QueueBackend {
    backend
        .queues()
        .expect("the case checked that the backend offers fair queues")
}

/// Options for suite locks: long ttl so only the cases about expiry see it,
/// and a backoff starting at 1 ms; releases wake waiters through the
/// backend's signal, so the 200 ms cap only bounds idle polling.
pub(super) fn suite_options() -> LockOptions {
    LockOptions::default()
        .ttl(Duration::from_secs(30))
        .backoff(Duration::from_millis(1), Duration::from_millis(200))
}
