//! The state of one held lease, shared by its guard, its renewal task and
//! [`release_all`](crate::release_all): expiry, the lost signal, and the
//! bounded extend and release of the lease.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use crate::backend::{Deadline, Grant, SharedBackend};
use crate::error::{Error, Result};
use crate::observe::Labels;
use crate::options::LockOptions;
use crate::target::Target;

/// State shared by a guard and its renewal task.
pub(crate) struct Shared {
    pub(crate) name: String,
    target: Target,
    pub(crate) owner: String,
    pub(crate) fencing_token: u64,
    operation_timeout: Duration,
    clock_drift_ppm: u32,
    state: Mutex<LeaseState>,
    pub(crate) lost: watch::Sender<bool>,
    /// Notified when `extend()` changed the lease, so renewal can pick up a
    /// shorter ttl at once.
    pub(crate) extended: tokio::sync::Notify,
    /// Metric labels of this lease.
    pub(crate) labels: Labels,
    /// When the lease was granted (start of the winning request).
    acquired_at: Instant,
    /// Whether the time held was recorded (once: at release, drop or loss).
    held_recorded: AtomicBool,
}

#[derive(Clone, Copy)]
pub(crate) struct LeaseState {
    pub(crate) expires_at: SystemTime,
    pub(crate) ttl: Duration,
    /// Start of the request that set the current expiry.
    pub(crate) set_at: Instant,
    /// Local instant from which the lease counts as over: the start of the
    /// request that set it plus its ttl, less the clock drift margin. The
    /// database cannot have ended it earlier (see
    /// `LockOptions::clock_drift_ppm`).
    pub(crate) deadline: Instant,
}

impl Shared {
    pub(crate) fn new(
        target: Target,
        name: String,
        owner: String,
        grant: Grant,
        options: &LockOptions,
        request_started: Instant,
        labels: Labels,
    ) -> Self {
        Shared {
            name,
            target,
            owner,
            fencing_token: grant.fencing_token,
            operation_timeout: options.operation_timeout,
            clock_drift_ppm: options.clock_drift_ppm,
            state: Mutex::new(LeaseState {
                expires_at: grant.expires_at,
                ttl: options.ttl,
                set_at: request_started,
                deadline: options.lease_deadline(request_started, options.ttl),
            }),
            lost: watch::channel(false).0,
            extended: tokio::sync::Notify::new(),
            labels,
            acquired_at: request_started,
            held_recorded: AtomicBool::new(false),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, LeaseState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn snapshot(&self) -> LeaseState {
        *self.state()
    }

    pub(crate) fn update(&self, expires_at: SystemTime, ttl: Duration, request_started: Instant) {
        let mut s = self.state();
        s.expires_at = expires_at;
        s.ttl = ttl;
        s.set_at = request_started;
        s.deadline = crate::options::lease_deadline(request_started, ttl, self.clock_drift_ppm);
    }

    pub(crate) fn is_lost(&self) -> bool {
        if *self.lost.borrow() {
            return true;
        }
        if Instant::now() >= self.state().deadline {
            self.mark_lost("its lease ran out before it was extended");
            return true;
        }
        false
    }

    pub(crate) fn lost_error(&self) -> Error {
        Error::LockLost {
            name: self.name.clone(),
        }
    }

    pub(crate) fn mark_lost(&self, why: &str) {
        // The metrics are recorded before the waiters of `lost()` wake, so
        // whoever reacts to the loss sees it counted.
        let newly = self.lost.send_if_modified(|lost| {
            if std::mem::replace(lost, true) {
                return false;
            }
            self.labels.lost();
            self.record_held();
            true
        });
        if newly {
            tracing::warn!(
                lock = %self.name,
                fencing_token = self.fencing_token,
                "lock lost: {why}"
            );
        }
    }

    /// Records the time held, the first time it is called.
    fn record_held(&self) {
        if !self.held_recorded.swap(true, Ordering::Relaxed) {
            self.labels.held(self.acquired_at.elapsed());
        }
    }

    /// The bound of each of this lease's operations.
    pub(crate) fn operation_timeout(&self) -> Duration {
        self.operation_timeout
    }

    pub(crate) fn fencing_token(&self) -> u64 {
        self.fencing_token
    }

    /// One bounded extend; the new expiry, or `None` when no longer ours.
    pub(crate) async fn extend(
        &self,
        backend: &SharedBackend,
        ttl: Duration,
    ) -> Result<Option<SystemTime>> {
        let deadline = Deadline::after(self.operation_timeout);
        deadline
            .bound(
                "extend",
                self.target
                    .extend(backend, &self.name, &self.owner, ttl, deadline),
            )
            .await
    }

    /// One bounded release; whether the lock was still ours.
    pub(crate) async fn release(&self, backend: &SharedBackend) -> Result<bool> {
        self.record_held();
        let span = crate::observe::release_span(&self.name, self.fencing_token);
        let deadline = Deadline::after(self.operation_timeout);
        let result = deadline
            .bound(
                "release",
                self.target
                    .release(backend, &self.name, &self.owner, deadline),
            )
            .instrument(span.clone())
            .await;
        span.record(
            "outcome",
            match result {
                Ok(true) => "released",
                Ok(false) => "not_ours",
                Err(_) => "error",
            },
        );
        result
    }
}
