//! Fair semaphores: a line of waiters in front of a semaphore.
//!
//! The permits of a fair semaphore are taken through a gate, the fair lock
//! named [`gate_name`]: a waiter takes a place in the gate's line (a
//! ticket), holds the gate when its turn comes, waits for a permit while it
//! holds the gate, and lets go of the gate as soon as it has the permit (or
//! gave up). Only the holder of the gate asks for a permit, so permits go to
//! waiters in the order they joined the gate's line, across processes.
//!
//! Nothing beyond the existing contract is asked of a backend: the gate is
//! a fair lock (its line, its tickets' leases, its turn signals) and the
//! permits are the semaphore's own atomic claims, which alone decide how
//! many holders there are. The gate only orders the claims: if it is lost
//! (a holder stalled past its ttl), two waiters may ask for a permit at
//! once, and the semaphore still grants at most its count.

use crate::backend::{SharedBackend, MAX_NAME_LEN};
use crate::error::{Error, Result};
use crate::guard::AsyncLockGuard;
use crate::options::LockOptions;
use crate::target::Target;
use crate::wait::{self, Owner, Wait};

/// What comes before a fair semaphore's name in the name of its gate (a
/// lock). `shylock list` shows a fair semaphore's waiters as the line of
/// this lock.
pub(crate) const GATE_PREFIX: &str = "shylock/semaphore-line/";

/// The name of the fair lock in front of semaphore `semaphore`.
///
/// # Errors
///
/// [`Error::InvalidName`] when the gate's name would pass
/// [`MAX_NAME_LEN`].
pub(crate) fn gate_name(semaphore: &str) -> Result<String> {
    let longest = MAX_NAME_LEN - GATE_PREFIX.len();
    if semaphore.len() > longest {
        return Err(Error::InvalidName {
            reason: format!(
                "a fair semaphore's name may be at most {longest} bytes (its line is the lock \
                 {GATE_PREFIX:?} + name); this one is {} bytes: use a shorter name, e.g. a hash \
                 of the resource identifier",
                semaphore.len()
            ),
        });
    }
    Ok(format!("{GATE_PREFIX}{semaphore}"))
}

/// The semaphore a ticket of a gate's line leads to.
#[derive(Debug, Clone)]
pub(crate) struct PermitStep {
    /// The semaphore name.
    pub(crate) semaphore: String,
    /// Its permit count.
    pub(crate) permits: u32,
}

impl PermitStep {
    /// Waits for a permit while holding `gate`, until `wait` ends, then lets
    /// go of the gate (whatever the outcome) and returns the permit.
    pub(crate) async fn through_gate(
        &self,
        gate: AsyncLockGuard,
        backend: SharedBackend,
        options: LockOptions,
        wait: Wait,
    ) -> Result<Option<AsyncLockGuard>> {
        let permit = wait::acquire(
            &self.semaphore,
            Target::Permit {
                permits: self.permits,
            },
            backend,
            options,
            wait,
            Owner::New,
            None,
        )
        .await;
        // Dropping the gate's guard lets go of it in the background (see
        // `AsyncLockGuard`'s drop): the next in line gets its turn when that
        // release lands, whether or not this caller is still there, and the
        // caller does not wait for it.
        drop(gate);
        permit
    }

    /// One attempt: the gate if nobody waits ahead, then one attempt at a
    /// permit. `None` when someone waits in line or holds the gate, or when
    /// every permit is held.
    pub(crate) async fn try_once(
        &self,
        backend: SharedBackend,
        options: LockOptions,
    ) -> Result<Option<AsyncLockGuard>> {
        let gate = gate_name(&self.semaphore)?;
        let Some(gate) = wait::acquire(
            &gate,
            Target::Fair,
            backend.clone(),
            options.clone(),
            Wait::Once,
            Owner::New,
            None,
        )
        .await?
        else {
            return Ok(None);
        };
        self.through_gate(gate, backend, options, Wait::Once).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_name_fits_the_name_limit() {
        let longest = "s".repeat(MAX_NAME_LEN - GATE_PREFIX.len());
        let gate = gate_name(&longest).unwrap();
        assert_eq!(gate.len(), MAX_NAME_LEN);
        assert!(gate.starts_with(GATE_PREFIX) && gate.ends_with(&longest));
        let err = gate_name(&format!("{longest}s")).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidName { reason } if reason.contains("at most")),
            "{err:?}"
        );
        assert_eq!(gate_name("gpu").unwrap(), "shylock/semaphore-line/gpu");
    }
}
