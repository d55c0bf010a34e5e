//! The conformance cases: one async function per rule of the contract,
//! grouped by theme.

mod exclusion;
mod expiry;
mod names;
mod ownership;
mod queue;
mod semaphore;
mod waiting;

pub use exclusion::*;
pub use expiry::*;
pub use names::*;
pub use ownership::*;
pub use queue::*;
pub use semaphore::*;
pub use waiting::*;

use std::time::Duration;

use crate::options::LockOptions;

/// Options for suite locks: long ttl so only the cases about expiry see it,
/// and a backoff starting at 1 ms; releases wake waiters through the
/// backend's signal, so the 200 ms cap only bounds idle polling.
pub(super) fn suite_options() -> LockOptions {
    LockOptions::default()
        .ttl(Duration::from_secs(30))
        .backoff(Duration::from_millis(1), Duration::from_millis(200))
}
