//! Fair waiting: [`AsyncTicket`], a place in the line of waiters of a lock
//! or of a fair semaphore.
//!
//! The line itself lives in the database (see `Backend::enqueue`); this
//! module keeps a ticket's lease alive while its waiter waits, leaves the
//! line when the ticket is dropped, and orders the waiters of one process
//! so that a release wakes only the one that can be first in line.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backend::{Deadline, SharedBackend};
use crate::error::{Error, Result};
use crate::fair_permits::PermitStep;
use crate::guard::AsyncLockGuard;
use crate::line::LocalSlot;
use crate::options::LockOptions;
use crate::target::{queues, Target};
use crate::wait::{self, Owner, Wait};

/// A place in the line of waiters of a lock (fair mode): returned at once
/// by [`AsyncLock::enqueue`](crate::AsyncLock::enqueue), turned into the
/// lock's guard by [`wait`](Self::wait) when it is this ticket's turn.
///
/// [`AsyncSemaphore::enqueue`](crate::AsyncSemaphore::enqueue) gives the
/// same for a fair semaphore: [`wait`](Self::wait) then gives a permit's
/// guard, in the order the waiters joined the semaphore's line.
///
/// The ticket has a lease of its own (the lock's ttl) that is renewed in
/// the background while the ticket lives, so a waiter that crashes holds up
/// the line for at most one ttl. Dropping the ticket (or a `wait` future)
/// leaves the line.
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::{AsyncLock, LockOptions, MemoryBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shylock::Result<()> {
/// let lock = AsyncLock::with_backend("queue", MemoryBackend::new())
///     .with_options(LockOptions::default().fair(true));
/// let ticket = lock.enqueue().await?;      // a place in line, at once
/// println!("{} waiters ahead", ticket.place());
/// let guard = ticket.wait().await?;        // granted in arrival order
/// guard.release().await?;
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping a ticket leaves the line"]
#[clippy::has_significant_drop]
pub struct AsyncTicket {
    state: TicketState,
}

/// What a ticket owns; dropped unspent, it leaves the line.
struct TicketState {
    name: String,
    owner: String,
    place: u64,
    backend: SharedBackend,
    options: LockOptions,
    slot: LocalSlot,
    /// When the place in line was asked for.
    asked: std::time::Instant,
    renewal: Option<JoinHandle<()>>,
    runtime: Option<tokio::runtime::Handle>,
    /// The lock was granted: the database removed the ticket itself.
    spent: bool,
    /// For a fair semaphore: the lock above is its gate, and a grant of the
    /// gate is followed by this permit.
    permit: Option<PermitStep>,
}

impl std::fmt::Debug for AsyncTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncTicket")
            .field("name", &self.state.name)
            .field("place", &self.state.place)
            .finish()
    }
}

impl AsyncTicket {
    /// Takes a place in line: one bounded round trip. If the caller stops
    /// waiting for it, a ticket it may have taken is given up at once.
    pub(crate) async fn enqueue(
        name: String,
        backend: SharedBackend,
        options: LockOptions,
    ) -> Result<AsyncTicket> {
        // A backend without lines fails here, before anything is sent.
        queues(&backend)?;
        let owner = crate::owner::token(options.owner_label.as_deref());
        // In the process's line, and subscribed to the backend's turn
        // signal, before the place is asked for: a turn signalled between
        // the answer and the first wait is kept.
        let slot = LocalSlot::join(&backend, &name, &owner);
        let asked = std::time::Instant::now();
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<Taken>>();
        {
            let (backend, name, owner) = (backend.clone(), name.clone(), owner.clone());
            let (ttl, timeout) = (options.ttl, options.operation_timeout);
            tokio::spawn(async move {
                let deadline = Deadline::after(timeout);
                let result = deadline
                    .bound("enqueue", async {
                        queues(&backend)?
                            .enqueue(&name, &owner, ttl, deadline)
                            .await
                    })
                    .await;
                match result {
                    // Whoever drops the place unclaimed (this task, if the
                    // caller is gone; the channel, if the caller went away
                    // before reading it) leaves the line.
                    Ok(place) => {
                        let _ = tx.send(Ok(Taken {
                            place,
                            leave: Some((backend, name, owner, timeout)),
                            runtime: tokio::runtime::Handle::current(),
                        }));
                    }
                    // It is unknown whether the ticket was taken: leave the
                    // line rather than block it.
                    Err(error) => {
                        let _ = tx.send(Err(error));
                        leave(&backend, &name, &owner, timeout).await;
                    }
                }
            });
        }
        let place = match rx.await {
            Ok(result) => result?.keep(),
            Err(_) => {
                return Err(Error::Panicked {
                    operation: "enqueue",
                })
            }
        };
        let renewal = tokio::spawn(keep_ticket(
            backend.clone(),
            name.clone(),
            owner.clone(),
            options.clone(),
        ));
        tracing::debug!(lock = %name, place, "joined the line");
        Ok(AsyncTicket {
            state: TicketState {
                name,
                owner,
                place,
                backend,
                options,
                slot,
                asked,
                renewal: Some(renewal),
                runtime: tokio::runtime::Handle::try_current().ok(),
                spent: false,
                permit: None,
            },
        })
    }

    /// This ticket leads to a permit of a fair semaphore: the lock it was
    /// taken for is that semaphore's gate.
    pub(crate) fn for_permit(mut self, step: PermitStep) -> AsyncTicket {
        self.state.permit = Some(step);
        self
    }

    /// The lock name (for a fair semaphore's ticket, the semaphore name).
    pub fn name(&self) -> &str {
        match &self.state.permit {
            Some(step) => &step.semaphore,
            None => &self.state.name,
        }
    }

    /// How many live tickets were ahead of this one when it joined the
    /// line (0: first).
    pub fn place(&self) -> u64 {
        self.state.place
    }

    /// Waits for this ticket's turn and returns the lock's guard (for a
    /// fair semaphore, a permit's guard); waits at most the options' wait
    /// timeout, if any.
    ///
    /// A ticket first in line tries at once. One behind others, whose
    /// backend signals turns and already watched releases when the place
    /// was asked for (MongoDB's change stream, SQLite's file watcher),
    /// makes no attempt until its turn comes; otherwise it tries at once
    /// and then whenever a release may have made it first.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the wait timeout passed (the ticket then left
    /// the line); [`Error::Backend`] when an attempt failed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future leaves the line, and a lock won by
    /// an attempt in flight is released.
    pub async fn wait(self) -> Result<AsyncLockGuard> {
        let started = Instant::now();
        let timeout = self.state.options.wait_timeout;
        let name = self.name().to_owned();
        let wait = match timeout {
            Some(t) => Wait::Until(started + t),
            None => Wait::Forever,
        };
        match self.wait_for(wait).await? {
            Some(guard) => Ok(guard),
            None => Err(Error::Timeout {
                name,
                waited: started.elapsed(),
            }),
        }
    }

    /// Waits at most `timeout` for this ticket's turn; `None` when the time
    /// ran out (the ticket then left the line).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`wait`](Self::wait).
    pub async fn wait_timeout(self, timeout: Duration) -> Result<Option<AsyncLockGuard>> {
        self.wait_for(Wait::Until(Instant::now() + timeout)).await
    }

    /// Takes a place in line with `enqueue` and waits for its turn, both
    /// until `until`; `None` when the time ran out (nothing is left in line).
    pub(crate) async fn enqueue_and_wait_until(
        enqueue: impl std::future::Future<Output = Result<AsyncTicket>>,
        until: Instant,
    ) -> Result<Option<AsyncLockGuard>> {
        let ticket = match tokio::time::timeout_at(until, enqueue).await {
            Ok(ticket) => ticket?,
            Err(_) => return Ok(None),
        };
        ticket.wait_for(Wait::Until(until)).await
    }

    /// Leaves the line now (one round trip) instead of in the background on
    /// drop; whether the ticket was still there.
    pub async fn leave(mut self) -> Result<bool> {
        let state = &mut self.state;
        state.stop();
        state.spent = true;
        state.slot.leave(true);
        let deadline = Deadline::after(state.options.operation_timeout);
        deadline
            .bound("leave_queue", async {
                queues(&state.backend)?
                    .leave_queue(&state.name, &state.owner, deadline)
                    .await
            })
            .await
    }

    async fn wait_for(mut self, wait: Wait) -> Result<Option<AsyncLockGuard>> {
        let state = &mut self.state;
        // Not first in line, and every release since the place was asked
        // for reaches this ticket's turn signal: no attempt before the turn.
        state.slot.turn_watched = state.place > 0
            && state.slot.backend_turn
            && state
                .backend
                .releases_watched_since(&state.name)
                .is_some_and(|since| since <= state.asked);
        let result = wait::acquire(
            &state.name,
            Target::Fair,
            state.backend.clone(),
            state.options.clone(),
            wait,
            Owner::Given(state.owner.clone()),
            Some(&state.slot),
        )
        .await;
        if let Ok(Some(_)) = result {
            // The grant removed the ticket from the line.
            state.stop();
            state.spent = true;
            state.slot.leave(false);
        }
        // Otherwise dropping `self` leaves the line.
        match (result, state.permit.take()) {
            (Ok(Some(gate)), Some(step)) => {
                let (backend, options) = (state.backend.clone(), state.options.clone());
                step.through_gate(gate, backend, options, wait).await
            }
            (result, _) => result,
        }
    }
}

impl TicketState {
    fn stop(&mut self) {
        if let Some(task) = self.renewal.take() {
            task.abort();
        }
    }
}

impl Drop for TicketState {
    fn drop(&mut self) {
        self.stop();
        if self.spent {
            return;
        }
        self.slot.leave(true);
        let (backend, name, owner) = (
            self.backend.clone(),
            std::mem::take(&mut self.name),
            std::mem::take(&mut self.owner),
        );
        let timeout = self.options.operation_timeout;
        match &self.runtime {
            Some(runtime) => {
                runtime.spawn(async move { leave(&backend, &name, &owner, timeout).await });
            }
            None => {
                tracing::debug!(lock = %name, "ticket dropped outside a runtime; it expires by its ttl")
            }
        }
    }
}

/// A place in line that the database gave and nobody has kept yet: dropped
/// unkept, it leaves the line in the background.
struct Taken {
    place: u64,
    leave: Option<(SharedBackend, String, String, Duration)>,
    /// Where the leaving runs, wherever the place is dropped.
    runtime: tokio::runtime::Handle,
}

impl Taken {
    /// The place, now owned by a ticket.
    fn keep(mut self) -> u64 {
        self.leave = None;
        self.place
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        if let Some((backend, name, owner, timeout)) = self.leave.take() {
            self.runtime
                .spawn(async move { leave(&backend, &name, &owner, timeout).await });
        }
    }
}

/// Leaves the line in the background, logging a failure.
async fn leave(backend: &SharedBackend, name: &str, owner: &str, timeout: Duration) {
    let deadline = Deadline::after(timeout);
    match deadline
        .bound("leave_queue", async {
            queues(backend)?.leave_queue(name, owner, deadline).await
        })
        .await
    {
        Ok(_) => tracing::debug!(lock = %name, "left the line"),
        Err(error) => {
            tracing::warn!(lock = %name, %error, "could not leave the line; the ticket expires by its ttl")
        }
    }
}

/// Keeps a ticket's lease alive; a ticket that expired anyway (a long
/// outage, a paused process) joins the line again, at its end.
async fn keep_ticket(backend: SharedBackend, name: String, owner: String, options: LockOptions) {
    let every = options.renewal_interval().unwrap_or(options.ttl / 3);
    loop {
        tokio::time::sleep(every).await;
        let deadline = Deadline::after(options.operation_timeout);
        let kept = deadline
            .bound("extend_ticket", async {
                queues(&backend)?
                    .extend_ticket(&name, &owner, options.ttl, deadline)
                    .await
            })
            .await;
        match kept {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(lock = %name, "the ticket expired while waiting; joining the line again at its end");
                let deadline = Deadline::after(options.operation_timeout);
                if let Err(error) = deadline
                    .bound("enqueue", async {
                        queues(&backend)?
                            .enqueue(&name, &owner, options.ttl, deadline)
                            .await
                    })
                    .await
                {
                    tracing::warn!(lock = %name, %error, "could not join the line again; retrying");
                }
            }
            Err(error) => {
                tracing::debug!(lock = %name, %error, "ticket renewal failed; retrying");
            }
        }
    }
}
