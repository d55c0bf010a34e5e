//! Background renewal of a held lease.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::SharedBackend;
use crate::lease::{LeaseState, Shared};
use crate::observe::renew_span;
use crate::options::{Backoff, LockOptions};
use tracing::Instrument;

/// The pause before the next renewal of a lease whose ttl is `ttl`: the
/// configured interval, or a third of `ttl` when `extend()` set a ttl
/// shorter than the configured one (never a longer pause, which would let
/// the shorter lease run out between renewals).
pub(crate) fn renewal_pause(
    interval: Duration,
    configured_ttl: Duration,
    ttl: Duration,
) -> Duration {
    if ttl >= configured_ttl {
        interval
    } else {
        interval.min(ttl / 3).max(Duration::from_millis(1))
    }
}

/// Keeps a lease alive until the task is aborted or the lease is lost. The
/// first renewal comes one interval after the lease was taken.
pub(crate) async fn renew(
    shared: Arc<Shared>,
    backend: SharedBackend,
    interval: Duration,
    options: LockOptions,
) {
    loop {
        // The next renewal is due one pause after the request that set the
        // current expiry; an extend() meanwhile moves it.
        loop {
            let LeaseState { ttl, set_at, .. } = shared.snapshot();
            let due = set_at + renewal_pause(interval, options.ttl, ttl);
            tokio::select! {
                _ = tokio::time::sleep_until(due) => break,
                _ = shared.extended.notified() => {}
            }
        }
        let mut backoff = Backoff::new(&options);
        loop {
            let LeaseState { ttl, deadline, .. } = shared.snapshot();
            let started = Instant::now();
            if started >= deadline {
                shared.mark_lost("renewal could not extend the lease before it ran out");
                return;
            }
            let span = renew_span(&shared.name, shared.fencing_token());
            let answer = tokio::time::timeout_at(deadline, shared.extend(&backend, ttl))
                .instrument(span.clone())
                .await;
            match answer {
                Ok(Ok(Some(expires_at))) => {
                    span.record("outcome", "renewed");
                    shared.update(expires_at, ttl, started);
                    tracing::trace!(lock = %shared.name, "lease renewed");
                    break;
                }
                Ok(Ok(None)) => {
                    span.record("outcome", "lost");
                    shared.mark_lost("renewal found another owner or no lock");
                    return;
                }
                // Retried whatever its kind: the lease deadline bounds the
                // retries, and giving up early would only lose a lease that
                // may still be ours.
                Ok(Err(error)) => {
                    span.record("outcome", "error");
                    shared.labels.renewal_failed();
                    tracing::debug!(lock = %shared.name, %error, "renewal failed; retrying within the lease");
                    let pause = backoff.next_delay();
                    tokio::time::sleep_until((Instant::now() + pause).min(deadline)).await;
                }
                Err(_) => {
                    span.record("outcome", "no_answer");
                    shared.labels.renewal_failed();
                    shared.mark_lost("renewal did not get an answer before the lease ran out");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_keeps_pace_with_a_shorter_ttl() {
        let s = Duration::from_secs;
        // Configured: ttl 30 s, renewal every 10 s.
        assert_eq!(renewal_pause(s(10), s(30), s(30)), s(10));
        assert_eq!(renewal_pause(s(10), s(30), s(60)), s(10));
        // extend(3 s): renew every second, not every 10 s.
        assert_eq!(renewal_pause(s(10), s(30), s(3)), s(1));
        assert_eq!(renewal_pause(s(10), s(30), s(15)), s(5));
        assert_eq!(
            renewal_pause(s(10), s(30), Duration::from_millis(1)),
            Duration::from_millis(1)
        );
    }
}
