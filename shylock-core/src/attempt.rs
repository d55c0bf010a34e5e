//! One claim attempt, always run to completion.
//!
//! A caller may stop waiting at any moment (its future is dropped, or its
//! wait deadline passes) while a claim is on its way to the database. The
//! claim itself is never cut short by the caller: it runs in the caller's
//! task while the caller waits for it (no thread hop on the common path),
//! and if the caller goes away first, the unfinished claim moves to a task
//! of its own and runs until the database answers or the operation timeout
//! passes. Whatever may have been won is released unless the caller took
//! it. So the release can never overtake the claim it cleans up after (on
//! another pooled connection, say), and a cancelled `acquire()` never
//! leaves a lock held by nobody until its ttl.

use std::time::Duration;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::Instant;

use crate::backend::{Deadline, Grant, SharedBackend};
use crate::error::Result;
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
    /// the lease and its release), and so is a refusal (the caller
    /// withdraws whatever it recorded); after an error the database's
    /// decision is unknown, so this owner is still released in the
    /// background.
    pub(crate) fn resolve(mut self) -> (Result<Option<Grant>>, Instant) {
        if self.result.is_ok() {
            self.cleanup.armed = false;
        }
        let result = std::mem::replace(&mut self.result, Ok(None));
        (result, self.started)
    }

    /// Releases, in this task, whatever this outcome nobody took may hold.
    async fn clean_up(mut self) {
        if let Some(release) = self.cleanup.take() {
            release.await;
        }
    }
}

/// Releases `owner` in the background unless disarmed: dropped with an
/// outcome nobody took that may hold the lock (a win, or an error after
/// which the database's decision is unknown) or left state behind (a
/// refused writer's recorded intent).
struct Cleanup {
    armed: bool,
    target: Target,
    backend: SharedBackend,
    name: String,
    owner: String,
    timeout: Duration,
    runtime: Option<tokio::runtime::Handle>,
}

impl Cleanup {
    /// The release this cleanup stands for, if armed (then disarmed).
    fn take(&mut self) -> Option<impl Future<Output = ()> + Send + 'static> {
        if !std::mem::take(&mut self.armed) {
            return None;
        }
        let backend = self.backend.clone();
        let name = std::mem::take(&mut self.name);
        let owner = std::mem::take(&mut self.owner);
        let timeout = self.timeout;
        let target = self.target;
        tracing::debug!(lock = %name, "attempt abandoned; releasing whatever it may have won");
        Some(async move {
            let deadline = Deadline::after(timeout);
            let release = target.release(&backend, &name, &owner, deadline);
            match deadline.bound("release", release).await {
                Ok(true) => {
                    tracing::debug!(lock = %name, "released the win of an abandoned attempt")
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(lock = %name, %error, "could not release after an abandoned attempt; the lock expires by its ttl")
                }
            }
        })
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.clone() else {
            if self.armed {
                tracing::debug!(lock = %self.name, "no runtime to release on; the lock expires by its ttl");
            }
            return;
        };
        if let Some(release) = self.take() {
            runtime.spawn(release);
        }
    }
}

/// The claim in flight: a future that runs in the caller's task while the
/// caller polls it. Dropped before it finished, it hands the unfinished
/// claim to a task on the same runtime, which completes it and releases
/// whatever it won.
pub(crate) struct Pending {
    claim: Option<Pin<Box<dyn Future<Output = Outcome> + Send>>>,
    runtime: Option<tokio::runtime::Handle>,
    name: String,
    timeout: Duration,
}

impl Future for Pending {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let Some(claim) = self.claim.as_mut() else {
            // Polled again after it finished: a bug in the caller.
            return Poll::Pending;
        };
        match claim.as_mut().poll(cx) {
            Poll::Ready(outcome) => {
                self.claim = None;
                Poll::Ready(outcome)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(claim) = self.claim.take() else {
            return;
        };
        match &self.runtime {
            // When the claim finishes, whatever it won (or recorded) is
            // released. Both are counted as in flight for this name until
            // then, so this process's next attempt or look at the name
            // (`try_acquire`, `inspect`) comes after them.
            Some(runtime) => {
                let entry = crate::inflight::track(&self.name, self.timeout * 2);
                runtime.spawn(async move {
                    claim.await.clean_up().await;
                    drop(entry);
                });
            }
            None => {
                tracing::debug!("attempt abandoned outside a runtime; the lock expires by its ttl")
            }
        }
    }
}

/// Starts one claim attempt. Awaiting the returned future runs it; dropping
/// the future abandons the attempt (it completes in the background, and
/// anything it wins is released).
pub(crate) fn start(
    target: Target,
    backend: &SharedBackend,
    name: &str,
    owner: &str,
    ttl: Duration,
    timeout: Duration,
) -> Pending {
    let backend = backend.clone();
    let pending_name = name.to_owned();
    let (name, owner) = (name.to_owned(), owner.to_owned());
    let runtime = tokio::runtime::Handle::try_current().ok();
    let cleanup_runtime = runtime.clone();
    let claim = async move {
        let started = Instant::now();
        let deadline = Deadline::after(timeout);
        let result = deadline
            .bound(
                "acquire",
                target.claim(&backend, &name, &owner, ttl, deadline),
            )
            .await;
        let armed = !matches!(result, Ok(None)) || target.refusal_leaves_state();
        Outcome {
            result,
            started,
            cleanup: Cleanup {
                armed,
                target,
                backend,
                name,
                owner,
                timeout,
                runtime: cleanup_runtime,
            },
        }
    };
    Pending {
        claim: Some(Box::pin(claim)),
        runtime,
        name: pending_name,
        timeout,
    }
}
