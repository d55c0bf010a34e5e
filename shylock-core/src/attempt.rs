//! One claim attempt, run to completion in its own task.
//!
//! A caller may stop waiting at any moment (its future is dropped, or its
//! wait deadline passes) while a claim is on its way to the database. The
//! claim itself is never cut short by the caller: it runs in a task of its
//! own until the database answers or the operation timeout passes, and
//! whatever may have been won is released unless the caller took it. So the
//! release can never overtake the claim it cleans up after (on another
//! pooled connection, say), and a cancelled `acquire()` never leaves a lock
//! held by nobody until its ttl.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::backend::{Deadline, Grant, SharedBackend};
use crate::error::{bounded, Result};
use crate::target::Target;

/// The outcome of one attempt.
pub(crate) struct Outcome {
    /// What the database decided (or the error).
    result: Result<Option<Grant>>,
    /// When the request was sent: the lease surely ends by then + ttl.
    started: Instant,
    cleanup: Cleanup,
}

impl Outcome {
    /// The database's answer. A win is handed over (the caller now owns
    /// the lease and its release); after an error the database's decision
    /// is unknown, so this owner is still released in the background.
    pub(crate) fn resolve(mut self) -> (Result<Option<Grant>>, Instant) {
        if matches!(self.result, Ok(Some(_))) {
            self.cleanup.armed = false;
        }
        let result = std::mem::replace(&mut self.result, Ok(None));
        (result, self.started)
    }
}

/// Releases `owner` in the background unless disarmed: dropped with an
/// outcome nobody took that may hold the lock (a win, or an error after
/// which the database's decision is unknown).
struct Cleanup {
    armed: bool,
    target: Target,
    backend: SharedBackend,
    name: String,
    owner: String,
    timeout: Duration,
    runtime: tokio::runtime::Handle,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let backend = self.backend.clone();
        let name = std::mem::take(&mut self.name);
        let owner = std::mem::take(&mut self.owner);
        let timeout = self.timeout;
        let target = self.target;
        tracing::debug!(lock = %name, "attempt abandoned; releasing whatever it may have won");
        self.runtime.spawn(async move {
            let deadline = Deadline::after(timeout);
            let release = target.release(&backend, &name, &owner, deadline);
            match bounded("release", deadline, release).await {
                Ok(true) => tracing::debug!(lock = %name, "released the win of an abandoned attempt"),
                Ok(false) => {}
                Err(error) => tracing::warn!(lock = %name, %error, "could not release after an abandoned attempt; the lock expires by its ttl"),
            }
        });
    }
}

/// Starts one claim attempt on the current runtime and returns the channel
/// its outcome arrives on. Dropping the receiver abandons the attempt
/// (anything it wins is released).
pub(crate) fn start(
    target: Target,
    backend: &SharedBackend,
    name: &str,
    owner: &str,
    ttl: Duration,
    timeout: Duration,
) -> oneshot::Receiver<Outcome> {
    let (tx, rx) = oneshot::channel();
    let backend = backend.clone();
    let (name, owner) = (name.to_owned(), owner.to_owned());
    tokio::spawn(async move {
        let started = Instant::now();
        let deadline = Deadline::after(timeout);
        let result = bounded(
            "acquire",
            deadline,
            target.claim(&backend, &name, &owner, ttl, deadline),
        )
        .await;
        let armed = !matches!(result, Ok(None));
        let outcome = Outcome {
            result,
            started,
            cleanup: Cleanup {
                armed,
                target,
                backend,
                name,
                owner,
                timeout,
                runtime: tokio::runtime::Handle::current(),
            },
        };
        // If the caller is gone the outcome comes back and is dropped here,
        // which releases a win.
        let _ = tx.send(outcome);
    });
    rx
}
