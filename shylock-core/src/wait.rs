//! The wait loop below every shape: attempts with backoff and jitter,
//! wake-ups by the backend's release signal, deadlines, and the guard built
//! from a grant. Shapes differ only in their [`Target`] and owner.

use tokio::time::Instant;
use tracing::Instrument;

use crate::attempt;
use crate::backend::SharedBackend;
use crate::error::{Error, Result};
use crate::guard::AsyncLockGuard;
use crate::line::LocalSlot;
use crate::observe::{self, Labels, Outcome};
use crate::options::{Backoff, LockOptions};
use crate::target::Target;

/// Whose acquisition an attempt is.
#[derive(Debug, Clone)]
pub(crate) enum Owner {
    /// A fresh owner token (unique per acquisition).
    New,
    /// A token chosen by the caller, e.g. a fair waiter's ticket or a
    /// candidate's identity in an election.
    Given(String),
}

/// Attempts until the lease (a lock, a fair lock or a permit) is ours or
/// the wait ends: the one wait loop every shape uses. `local` is a fair
/// waiter's place among this process's waiters, whose signal it waits on
/// instead of the backend's.
pub(crate) async fn acquire(
    name: &str,
    target: Target,
    backend: SharedBackend,
    options: LockOptions,
    wait: Wait,
    owner: Owner,
    local: Option<&LocalSlot>,
) -> Result<Option<AsyncLockGuard>> {
    let owner = match owner {
        Owner::New => crate::owner::token(options.owner_label.as_deref()),
        Owner::Given(owner) => owner,
    };
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
    let mut settled = false;
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
    } else if waits && local.is_none() && backend.releases_watched_since(name).is_some() {
        // The process already watches releases (another waiter started the
        // change stream or the listener), so subscribing starts nothing:
        // subscribe before the first attempt, which then needs no second
        // try after subscribing. A lock that is held costs one claim, not
        // two, before the pause.
        if let Some(backend_signal) = target.release_signal(&backend, name) {
            signal = backend_signal;
            subscribed = true;
        }
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
            // Read before the attempt: a release that lands while the
            // attempt runs is no longer in flight when it comes back.
            let releasing = !waits && crate::inflight::pending(name);
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
                // A guard of this name dropped in this process a moment ago
                // may still be releasing in the background: once that
                // release lands, one more attempt, so `drop(guard)` then
                // `try_acquire()` finds the lock free.
                if !settled && (releasing || crate::inflight::pending(name)) {
                    settled = true;
                    let until = Instant::now() + options.operation_timeout;
                    crate::inflight::settle(name, until).await;
                    continue;
                }
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
        if let Target::Write { intent: true } = target {
            // The recorded intent lasts one ttl from the last attempt:
            // attempt again well before it lapses, or readers get in.
            wake = wake.min(now + options.ttl / 3);
        }
        if let Some(deadline) = deadline {
            if now >= deadline {
                tracing::debug!(lock = %name, attempts, "gave up waiting for lock");
                return Ok(None);
            }
            wake = wake.min(deadline);
        }
        // A release of a guard of this name dropped in this process wakes
        // this waiter too, whatever the backend signals.
        let local_release = async {
            if crate::inflight::pending(name) {
                crate::inflight::settle(name, wake).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = &mut notified => {}
            _ = local_release => {}
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

/// How long [`acquire`] keeps trying.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// One attempt (`try_acquire`).
    Once,
    /// Until the lock is ours or this instant passes.
    Until(Instant),
    /// Until the lock is ours.
    Forever,
}
