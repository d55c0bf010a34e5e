//! Helpers for the fair-queue operations of [`Backend`](super::Backend).

use crate::error::{Error, ErrorKind};

/// The error of the default fair-queue operations: this backend keeps no
/// line of waiters.
pub fn queues_unsupported(backend: &'static str) -> Error {
    Error::backend_msg(
        backend,
        ErrorKind::Misconfigured,
        "this backend does not implement fair queues (Backend::enqueue and friends); use \
         LockOptions::fair(false), or the memory, SQLite, MongoDB or ArangoDB backend"
            .to_owned(),
    )
}
