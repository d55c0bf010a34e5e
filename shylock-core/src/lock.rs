//! [`AsyncLock`]: a named lock used from async code.

use std::time::Duration;

use tokio::time::Instant;

use crate::attempt;
use crate::backend::{validate_name, Deadline, LockInfo, SharedBackend};
use crate::error::{bounded, Error, Result};
use crate::global::default_backend;
use crate::guard::AsyncLockGuard;
use crate::observe::{self, Labels, Outcome};
use crate::options::{Backoff, LockOptions};
use crate::target::Target;
use crate::ticket::{AsyncTicket, LocalSlot};
use tracing::Instrument;

/// A named distributed lock, used from async code.
///
/// Building an `AsyncLock` costs nothing and touches no database; every
/// method is one or more round trips to its backend. Clone it freely.
/// Locks are not reentrant: a second `acquire()` of a name this process
/// already holds waits like anyone else.
///
/// # Examples
///
/// ```
/// use shylock_core::{AsyncLock, MemoryBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shylock_core::Result<()> {
/// let backend = MemoryBackend::new();
/// let lock = AsyncLock::with_backend("orders/42", backend);
///
/// let guard = lock.acquire().await?;
/// assert!(lock.is_locked().await?);
/// // ... exclusive work, writes tagged with guard.fencing_token() ...
/// guard.release().await?;
/// assert!(!lock.is_locked().await?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AsyncLock {
    name: String,
    backend: Option<SharedBackend>,
    options: Option<LockOptions>,
}

impl AsyncLock {
    /// A lock on `name` in the default backend set by
    /// [`configure`](crate::configure). Using it without a configured default
    /// gives [`Error::NotConfigured`].
    pub fn new(name: impl Into<String>) -> Self {
        AsyncLock {
            name: name.into(),
            backend: None,
            options: None,
        }
    }

    /// A lock on `name` in an explicit backend.
    pub fn with_backend(name: impl Into<String>, backend: impl Into<SharedBackend>) -> Self {
        AsyncLock {
            name: name.into(),
            backend: Some(backend.into()),
            options: None,
        }
    }

    /// Sets this lock's options. Without it the lock uses the options given
    /// to [`configure_with`](crate::configure_with), else
    /// [`LockOptions::default`]. Options are checked when the lock is used.
    pub fn with_options(mut self, options: LockOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// The lock name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn resolve(&self) -> Result<(SharedBackend, LockOptions)> {
        validate_name(&self.name)?;
        let (backend, configured) = match &self.backend {
            Some(backend) => (backend.clone(), default_backend().ok().map(|(_, o)| o)),
            None => {
                let (backend, options) = default_backend()?;
                (backend, Some(options))
            }
        };
        let options = self.options.clone().or(configured).unwrap_or_default();
        options.validate()?;
        Ok((backend, options))
    }

    /// Waits until the lock is ours and returns its guard.
    ///
    /// Between attempts it pauses with exponential backoff and jitter, and
    /// wakes at once when the backend signals a release.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the options set a wait timeout and it passed
    /// (also while the database does not answer); [`Error::InvalidName`],
    /// [`Error::InvalidOptions`], [`Error::NotConfigured`] for bad input;
    /// [`Error::Backend`] when an attempt fails or gets no answer within the
    /// operation timeout (no retry: the caller decides).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: each attempt runs to completion in a task of its own,
    /// and if the caller is gone by then whatever it won is released at
    /// once (one round trip after the attempt's answer), so no lock is left
    /// held by nobody.
    pub async fn acquire(&self) -> Result<AsyncLockGuard> {
        let (backend, options) = self.resolve()?;
        if options.fair {
            return AsyncTicket::enqueue(self.name.clone(), backend, options)
                .await?
                .wait()
                .await;
        }
        let started = Instant::now();
        let wait = match options.wait_timeout {
            Some(t) => Wait::Until(started + t),
            None => Wait::Forever,
        };
        match wait_for_lease(&self.name, Target::Lock, backend, options, wait).await? {
            Some(guard) => Ok(guard),
            None => Err(Error::Timeout {
                name: self.name.clone(),
                waited: started.elapsed(),
            }),
        }
    }

    /// One attempt: the guard if the lock was free, `None` if someone else
    /// holds it. Never waits for the lock; bounded by the operation
    /// timeout.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Self::acquire).
    pub async fn try_acquire(&self) -> Result<Option<AsyncLockGuard>> {
        let (backend, options) = self.resolve()?;
        // A fair lock is taken at once only when nobody is in line.
        let target = if options.fair {
            Target::Fair
        } else {
            Target::Lock
        };
        wait_for_lease(&self.name, target, backend, options, Wait::Once).await
    }

    /// Waits at most `timeout` for the lock; `None` when it timed out. This
    /// overrides the wait timeout of the options. Returns within `timeout`
    /// (plus scheduling) even when the database stalls mid-request.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Self::acquire).
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<AsyncLockGuard>> {
        let (backend, options) = self.resolve()?;
        let until = Instant::now() + timeout;
        if options.fair {
            let ticket = AsyncTicket::enqueue(self.name.clone(), backend, options);
            let ticket = match tokio::time::timeout_at(until, ticket).await {
                Ok(ticket) => ticket?,
                Err(_) => return Ok(None),
            };
            return ticket
                .wait_timeout(until.saturating_duration_since(Instant::now()))
                .await;
        }
        wait_for_lease(
            &self.name,
            Target::Lock,
            backend,
            options,
            Wait::Until(until),
        )
        .await
    }

    /// Takes a place in the line of waiters (one round trip) and returns it
    /// at once, as a ticket; [`AsyncTicket::wait`] then gives the guard when
    /// it is this ticket's turn. Waiters are granted the lock in the order
    /// they joined the line, across processes (see [`LockOptions::fair`]);
    /// the lock's options need not set `fair` for this.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::InvalidOptions`],
    /// [`Error::NotConfigured`] for bad input; [`Error::Backend`] when the
    /// database failed, did not answer within the operation timeout, or
    /// keeps no line (a backend without fair queues).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a ticket taken by a request whose caller is gone leaves
    /// the line at once.
    pub async fn enqueue(&self) -> Result<AsyncTicket> {
        let (backend, options) = self.resolve()?;
        AsyncTicket::enqueue(self.name.clone(), backend, options).await
    }

    /// True when anyone holds the lock (it exists and has not expired).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn is_locked(&self) -> Result<bool> {
        Ok(self.inspect().await?.is_some())
    }

    /// The current holder's owner token, fencing token and expiry, or `None`
    /// when the lock is free. Bounded by the operation timeout.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn inspect(&self) -> Result<Option<LockInfo>> {
        let (backend, options) = self.resolve()?;
        let deadline = Deadline::after(options.operation_timeout);
        bounded("inspect", deadline, backend.inspect(&self.name, deadline)).await
    }

    /// Removes the lock whoever holds it; returns whether a live lock was
    /// removed. For operators freeing a lock whose holder is stuck; the
    /// holder's guard then reports the lock as lost. Bounded by the
    /// operation timeout.
    ///
    /// # Cancel safety
    ///
    /// If dropped mid-flight the lock may or may not have been removed.
    pub async fn force_release(&self) -> Result<bool> {
        let (backend, options) = self.resolve()?;
        let deadline = Deadline::after(options.operation_timeout);
        let removed = bounded(
            "force_release",
            deadline,
            backend.force_release(&self.name, deadline),
        )
        .await?;
        tracing::warn!(lock = %self.name, removed, "lock force-released");
        Ok(removed)
    }
}

/// Attempts until the lease (a lock, or a permit) is ours or the wait ends.
pub(crate) async fn wait_for_lease(
    name: &str,
    target: Target,
    backend: SharedBackend,
    options: LockOptions,
    wait: Wait,
) -> Result<Option<AsyncLockGuard>> {
    let owner = uuid::Uuid::new_v4().to_string();
    wait_for_lease_as(name, target, owner, backend, options, wait).await
}

/// [`wait_for_lease`] with a given owner token (unique per acquisition).
pub(crate) async fn wait_for_lease_as(
    name: &str,
    target: Target,
    owner: String,
    backend: SharedBackend,
    options: LockOptions,
    wait: Wait,
) -> Result<Option<AsyncLockGuard>> {
    wait_for_lease_with(name, target, owner, backend, options, wait, None).await
}

/// [`wait_for_lease_as`] for a fair waiter: `local` is its place among this
/// process's waiters, whose signal it waits on instead of the backend's.
pub(crate) async fn wait_for_lease_with(
    name: &str,
    target: Target,
    owner: String,
    backend: SharedBackend,
    options: LockOptions,
    wait: Wait,
    local: Option<&LocalSlot>,
) -> Result<Option<AsyncLockGuard>> {
    let labels = Labels::new(name, target, &backend, &options);
    let mut observed = observe::Acquire::start(name, labels);
    let span = observed.span.clone();
    let result = attempt_until(
        name,
        target,
        owner,
        backend,
        options,
        wait,
        local,
        &mut observed,
    )
    .instrument(span)
    .await;
    let outcome = match &result {
        Ok(Some(_)) => Outcome::Acquired,
        Ok(None) if matches!(wait, Wait::Once) => Outcome::Busy,
        Ok(None) => Outcome::TimedOut,
        Err(_) => Outcome::Error,
    };
    let token = result
        .as_ref()
        .ok()
        .and_then(|g| g.as_ref())
        .map(|g| g.fencing_token());
    observed.finish(outcome, token);
    result
}

/// The attempts of one acquire; `observed` counts them.
#[allow(clippy::too_many_arguments)]
async fn attempt_until(
    name: &str,
    target: Target,
    owner: String,
    backend: SharedBackend,
    options: LockOptions,
    wait: Wait,
    local: Option<&LocalSlot>,
    observed: &mut observe::Acquire,
) -> Result<Option<AsyncLockGuard>> {
    let mut backoff = Backoff::new(&options);
    let waits = !matches!(wait, Wait::Once);
    let deadline = match wait {
        Wait::Until(at) => Some(at),
        _ => None,
    };
    // The backend's release signal is asked for only once a first attempt
    // failed, so an uncontended acquire starts nothing (MongoDB's change
    // stream, say); the next attempt follows at once. From then on it is
    // registered before each attempt, so a release between a failed attempt
    // and the pause is not missed. Until then, or without a backend signal,
    // a private one stands in that nobody notifies.
    let mut signal: std::sync::Arc<tokio::sync::Notify> = std::sync::Arc::default();
    let mut subscribed = false;
    let mut attempts: u32 = 0;
    // A fair waiter known not to be first in line, whose turn the backend
    // signals through a watch that was running before its ticket was taken,
    // waits for that signal before its first attempt: every release since
    // the ticket was taken reaches the signal, and an attempt before its
    // turn could only lose (MongoDB: a write the server serializes with the
    // claim that can win).
    let mut skip_attempt = false;
    let unexpired = deadline.is_none_or(|d| d > Instant::now());
    if let Some(slot) = local.filter(|slot| unexpired && slot.turn_is_watched()) {
        signal = slot.subscribe();
        subscribed = true;
        skip_attempt = true;
        observed.waiting();
    }
    loop {
        let current = signal.clone();
        let notified = current.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // When the attempt started; `None` when it was skipped.
        let attempted = if std::mem::take(&mut skip_attempt) {
            None
        } else {
            attempts += 1;
            observed.attempt();
            let pending = attempt::start(
                target,
                &backend,
                name,
                &owner,
                options.ttl,
                options.operation_timeout,
            );
            // The first attempt is always made, even with a deadline that
            // already passed (`acquire_timeout(Duration::ZERO)`).
            let race = deadline.filter(|d| attempts > 1 || *d > Instant::now());
            let outcome = match race {
                // A caller that waits gives up at its deadline even if the
                // database has not answered; the attempt then cleans up
                // after itself.
                Some(deadline) => tokio::select! {
                    biased;
                    outcome = pending => outcome,
                    _ = tokio::time::sleep_until(deadline) => {
                        tracing::debug!(lock = %name, attempts, "gave up waiting for lock (attempt still in flight)");
                        return Ok(None);
                    }
                },
                None => pending.await,
            };
            let (result, attempt_started) = outcome.resolve();
            if let Some(grant) = result? {
                if Instant::now() >= options.lease_deadline(attempt_started, options.ttl) {
                    // The answer came so late that the lease may already be
                    // over: release it and report the slow database rather
                    // than hand out a guard that is lost at once.
                    let late = AsyncLockGuard::start(
                        target,
                        backend,
                        name.to_owned(),
                        owner,
                        grant,
                        options.clone().renewal(crate::options::Renewal::Off),
                        attempt_started,
                    );
                    drop(late);
                    return Err(Error::Backend {
                        backend: "shylock",
                        kind: crate::error::ErrorKind::TimedOut,
                        message: format!(
                            "the database granted the lock only after its ttl ({:?}) had passed, \
                         so the lease may already be over; the lock was released again. \
                         Check the database's load and latency, or use a longer ttl",
                            options.ttl
                        ),
                        source: None,
                    });
                }
                tracing::debug!(
                    lock = %name,
                    fencing_token = grant.fencing_token,
                    attempts,
                    "lock acquired"
                );
                return Ok(Some(AsyncLockGuard::start(
                    target,
                    backend,
                    name.to_owned(),
                    owner,
                    grant,
                    options,
                    attempt_started,
                )));
            }
            tracing::debug!(lock = %name, attempts, "attempt: lock held by another owner");
            if !waits {
                return Ok(None);
            }
            observed.waiting();
            if !subscribed {
                // First time this waiter has to wait: subscribe, then try again
                // at once, so a release made before the subscription is seen.
                subscribed = true;
                let subscription = match local {
                    Some(slot) => Some(slot.subscribe()),
                    None => target.release_signal(&backend, name),
                };
                if let Some(backend_signal) = subscription {
                    signal = backend_signal;
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(None);
                    }
                    continue;
                }
            }
            Some(attempt_started)
        };
        // Releases anywhere wake this waiter: poll only for leases that
        // expire without one, so pause longer.
        let watched = subscribed
            && attempted.is_none_or(|started| {
                backend
                    .releases_watched_since(name)
                    .is_some_and(|since| since <= started.into_std())
            });
        backoff.set_watched(watched);
        let now = Instant::now();
        let mut wake = now + backoff.next_delay();
        if let Some(deadline) = deadline {
            if now >= deadline {
                tracing::debug!(lock = %name, attempts, "gave up waiting for lock");
                return Ok(None);
            }
            wake = wake.min(deadline);
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
        // No new attempt once the deadline passed: it would only be
        // abandoned at once, and a win it made would hold the lock for
        // nobody until its cleanup ran.
        if deadline.is_some_and(|d| Instant::now() >= d) {
            tracing::debug!(lock = %name, attempts, "gave up waiting for lock");
            return Ok(None);
        }
    }
}

/// How long [`wait_for_lease`] keeps trying.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// One attempt (`try_acquire`).
    Once,
    /// Until the lock is ours or this instant passes.
    Until(Instant),
    /// Until the lock is ours.
    Forever,
}
