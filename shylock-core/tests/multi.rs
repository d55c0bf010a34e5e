//! How an [`AsyncMultiLock`] waits for a set held in part by someone else:
//! up to its bound, woken by the release, pausing between passes; and what
//! its guard says while it holds.

use std::time::Duration;

use shylock_core::testkit::{unique_name, CountingBackend};
use shylock_core::{AsyncLock, AsyncMultiLock, LockOptions, MemoryBackend, SharedBackend};

/// Two names, and a handle on the second through `backend`.
async fn two_names(backend: &SharedBackend, tag: &str) -> ([String; 2], AsyncLock) {
    let base = unique_name(tag);
    let names = [format!("{base}/a"), format!("{base}/b")];
    let other = AsyncLock::with_backend(&names[1], backend.clone());
    (names, other)
}

/// The set is taken once the other holder lets go halfway through the
/// wait, through `acquire_timeout` and through `acquire` with the options'
/// wait timeout.
#[tokio::test(start_paused = true)]
async fn a_multi_acquire_waits_up_to_its_bound_for_the_release() {
    let backend: SharedBackend = MemoryBackend::new().into();
    for through_options in [false, true] {
        let (names, other) = two_names(&backend, "multi-bound").await;
        let held = other.acquire().await.unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            held.release().await.unwrap();
        });
        let started = tokio::time::Instant::now();
        let guard = if through_options {
            AsyncMultiLock::with_backend(names.clone(), backend.clone())
                .with_options(LockOptions::default().wait_timeout(Some(Duration::from_secs(2))))
                .acquire()
                .await
                .expect("taken within the options' wait timeout")
        } else {
            AsyncMultiLock::with_backend(names.clone(), backend.clone())
                .acquire_timeout(Duration::from_secs(2))
                .await
                .unwrap()
                .expect("taken within acquire_timeout's bound")
        };
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(500) && waited < Duration::from_secs(2),
            "taken after {waited:?}, the release came at 500 ms"
        );
        guard.release().await.unwrap();
    }
}

/// Between passes over a set that stays held, the waiter pauses (its
/// backoff): a pass every 50 ms at most, not one after another.
#[tokio::test]
async fn a_waiting_multi_acquire_pauses_between_passes() {
    let counting = CountingBackend::new(MemoryBackend::new());
    let backend: SharedBackend = counting.clone().into();
    let base = unique_name("multi-pause");
    // The held name sorts first: one claim per pass.
    let names = [format!("{base}/a"), format!("{base}/b")];
    let held = AsyncLock::with_backend(&names[0], backend.clone())
        .acquire()
        .await
        .unwrap();
    let before = counting.claim_count();
    let set = AsyncMultiLock::with_backend(names.clone(), backend.clone()).with_options(
        LockOptions::default().backoff(Duration::from_millis(50), Duration::from_millis(100)),
    );
    let got = set
        .acquire_timeout(Duration::from_millis(500))
        .await
        .unwrap();
    assert!(got.is_none(), "the first name stayed held");
    let passes = counting.claim_count() - before;
    assert!(
        (1..=12).contains(&passes),
        "{passes} passes in 500 ms with pauses of at least 50 ms"
    );
    held.release().await.unwrap();
}

/// The guard names what it holds, in the order taken, and `lost()` waits
/// while every lock of the set is held.
#[tokio::test(start_paused = true)]
async fn a_multi_guard_names_its_locks_and_is_not_lost_while_held() {
    let backend: SharedBackend = MemoryBackend::new().into();
    let (names, _) = two_names(&backend, "multi-names").await;
    let guard = AsyncMultiLock::with_backend([&names[1], &names[0]], backend.clone())
        .acquire()
        .await
        .unwrap();
    assert_eq!(guard.names(), [names[0].as_str(), names[1].as_str()]);
    assert!(
        tokio::time::timeout(Duration::from_secs(60), guard.lost())
            .await
            .is_err(),
        "lost() resolved while every lock was held"
    );
    guard.release().await.unwrap();
}
