//! Tracing spans, and (feature `metrics`) metrics, for acquires, releases
//! and renewals. The names and fields are documented on the crate's
//! `metrics` module and in GUIDE.md, "Operating shylock".

use std::time::Duration;

use tokio::time::Instant;
use tracing::field::Empty;
use tracing::Span;

use crate::backend::SharedBackend;
use crate::options::LockOptions;
use crate::target::Target;

/// Who a measurement is about: the labels every metric of a lease carries.
#[derive(Debug, Clone)]
pub(crate) struct Labels {
    /// [`Backend::kind`](crate::backend::Backend::kind).
    pub(crate) backend: &'static str,
    /// `"lock"`, `"permit"`, `"read"` or `"write"`.
    pub(crate) kind: &'static str,
    /// The lock name, when [`LockOptions::name_in_metrics`] is on.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    name: Option<String>,
}

impl Labels {
    pub(crate) fn new(
        name: &str,
        target: Target,
        backend: &SharedBackend,
        options: &LockOptions,
    ) -> Self {
        Labels {
            backend: backend.kind(),
            kind: target.kind(),
            name: options.name_in_metrics.then(|| name.to_owned()),
        }
    }

    #[cfg(feature = "metrics")]
    fn to_vec(&self, outcome: Option<&'static str>) -> Vec<metrics::Label> {
        let mut labels = vec![
            metrics::Label::new("backend", self.backend),
            metrics::Label::new("kind", self.kind),
        ];
        if let Some(outcome) = outcome {
            labels.push(metrics::Label::new("outcome", outcome));
        }
        if let Some(name) = &self.name {
            labels.push(metrics::Label::new("name", name.clone()));
        }
        labels
    }

    /// A lease was held for `held` (recorded when it is released, dropped
    /// or lost).
    pub(crate) fn held(&self, held: Duration) {
        #[cfg(feature = "metrics")]
        metrics::histogram!(crate::metrics::HELD_SECONDS, self.to_vec(None))
            .record(held.as_secs_f64());
        #[cfg(not(feature = "metrics"))]
        let _ = held;
    }

    /// A held lease was lost.
    pub(crate) fn lost(&self) {
        #[cfg(feature = "metrics")]
        metrics::counter!(crate::metrics::LEASES_LOST, self.to_vec(None)).increment(1);
    }

    /// One renewal attempt failed (an error or no answer in time).
    pub(crate) fn renewal_failed(&self) {
        #[cfg(feature = "metrics")]
        metrics::counter!(crate::metrics::RENEWAL_FAILURES, self.to_vec(None)).increment(1);
    }
}

/// How an acquire ended, as the `outcome` field and label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The lease is ours.
    Acquired,
    /// One attempt (`try_acquire`) found it held.
    Busy,
    /// The wait ended before it was ours.
    TimedOut,
    /// An error ended it.
    Error,
    /// The caller dropped the acquire before it finished.
    Cancelled,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Acquired => "acquired",
            Outcome::Busy => "busy",
            Outcome::TimedOut => "timed_out",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// One acquire, from its first attempt to its outcome: owns the
/// `shylock.acquire` span, counts attempts, and keeps the waiters gauge.
/// Dropped unfinished (the caller cancelled), it records `cancelled`.
pub(crate) struct Acquire {
    pub(crate) span: Span,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    labels: Labels,
    started: Instant,
    attempts: u32,
    waiting: bool,
    finished: bool,
}

impl Acquire {
    pub(crate) fn start(name: &str, labels: Labels) -> Self {
        let span = tracing::info_span!(
            "shylock.acquire",
            lock = %name,
            kind = labels.kind,
            backend = labels.backend,
            attempts = Empty,
            waited_ms = Empty,
            fencing_token = Empty,
            outcome = Empty,
        );
        Acquire {
            span,
            labels,
            started: Instant::now(),
            attempts: 0,
            waiting: false,
            finished: false,
        }
    }

    /// One more attempt was sent.
    pub(crate) fn attempt(&mut self) {
        self.attempts += 1;
    }

    /// The acquire has to wait: it now counts in the waiters gauge.
    pub(crate) fn waiting(&mut self) {
        if !self.waiting {
            self.waiting = true;
            #[cfg(feature = "metrics")]
            metrics::gauge!(crate::metrics::WAITERS, self.labels.to_vec(None)).increment(1.0);
        }
    }

    /// Records how the acquire ended.
    pub(crate) fn finish(&mut self, outcome: Outcome, fencing_token: Option<u64>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let waited = self.started.elapsed();
        self.span.record("attempts", self.attempts);
        self.span.record("waited_ms", waited.as_secs_f64() * 1000.0);
        self.span.record("outcome", outcome.as_str());
        if let Some(token) = fencing_token {
            self.span.record("fencing_token", token);
        }
        if self.waiting {
            #[cfg(feature = "metrics")]
            metrics::gauge!(crate::metrics::WAITERS, self.labels.to_vec(None)).decrement(1.0);
        }
        #[cfg(feature = "metrics")]
        {
            let labels = self.labels.to_vec(Some(outcome.as_str()));
            metrics::histogram!(crate::metrics::ACQUIRE_WAIT_SECONDS, labels.clone())
                .record(waited.as_secs_f64());
            metrics::histogram!(crate::metrics::ACQUIRE_ATTEMPTS, labels)
                .record(f64::from(self.attempts));
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled, None);
    }
}

/// The `shylock.release` span of one release.
pub(crate) fn release_span(name: &str, fencing_token: u64) -> Span {
    tracing::info_span!(
        "shylock.release",
        lock = %name,
        fencing_token,
        outcome = Empty,
    )
}

/// The `shylock.renew` span of one renewal attempt.
pub(crate) fn renew_span(name: &str, fencing_token: u64) -> Span {
    tracing::debug_span!(
        "shylock.renew",
        lock = %name,
        fencing_token,
        outcome = Empty,
    )
}
