//! Waiters pause longer while the backend watches releases
//! (`Backend::releases_watched_since`): the release signal wakes them, so
//! polling is only for leases that expire without a release. Runs on
//! tokio's paused clock, so attempts are counted, not timed.

use std::time::Duration;

use shylock_core::testkit::CountingBackend;
use shylock_core::{AsyncLock, LockOptions, MemoryBackend, SharedBackend};

/// The claims one waiter makes during `wait` while another holds the lock
/// (the holder's own claim not counted), with pauses between `min_pause`
/// and `max_pause` while releases are not watched; then checks that the
/// release wakes the waiter at once, however long its pause.
async fn claims_while_held(
    watched: bool,
    min_pause: Duration,
    max_pause: Duration,
    wait: Duration,
) -> u64 {
    let counting = CountingBackend::new(MemoryBackend::new());
    if watched {
        counting.watch_releases();
    }
    let backend = SharedBackend::from_arc(counting.clone());
    let options = LockOptions::default()
        .ttl(Duration::from_secs(600))
        .backoff(min_pause, max_pause);
    let lock = AsyncLock::with_backend("watched", backend).with_options(options);
    let holder = lock.acquire().await.unwrap();
    let waiter = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.acquire().await.unwrap() })
    };
    tokio::time::sleep(wait).await;
    let claims = counting.claim_count() - 1;
    holder.release().await.unwrap();
    let guard = tokio::time::timeout(Duration::from_millis(5), waiter)
        .await
        .expect("a release wakes the waiter at once")
        .unwrap();
    guard.release().await.unwrap();
    claims
}

/// Attempts one waiter makes in 60 s while another holds the lock.
async fn attempts_in_a_minute(watched: bool) -> u64 {
    let (min, max) = (Duration::from_millis(1), Duration::from_millis(20));
    claims_while_held(watched, min, max, Duration::from_secs(60)).await
}

#[tokio::test(start_paused = true)]
async fn watched_releases_let_waiters_pause_longer() {
    let polling = attempts_in_a_minute(false).await;
    let watched = attempts_in_a_minute(true).await;
    // Unwatched: pauses of at most 20 ms, thousands of attempts. Watched:
    // pauses up to WATCHED_MAX_BACKOFF (3 s), tens of attempts.
    assert!(polling > 2_000, "{polling} attempts while polling");
    assert!(
        (10..=200).contains(&watched),
        "{watched} attempts while watched (polling: {polling})"
    );
}

/// A waiter in a process that already watches releases subscribes before
/// its first attempt: a held lock costs it one claim before it pauses, not
/// a try, a subscription and a second try.
#[tokio::test(start_paused = true)]
async fn a_watched_waiter_claims_once_before_its_pause() {
    for (watched, expected) in [(true, 1), (false, 2)] {
        // Less than the shortest pause (50 ms) on the paused clock: only the
        // attempts made before the first pause.
        let (min, max) = (Duration::from_millis(50), Duration::from_millis(100));
        let claims = claims_while_held(watched, min, max, Duration::from_millis(10)).await;
        assert_eq!(
            claims, expected,
            "claims before the first pause (releases watched: {watched})"
        );
    }
}
