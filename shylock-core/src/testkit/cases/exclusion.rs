//! Mutual exclusion: one holder at a time, whatever the race.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend::SharedBackend;
use crate::lock::AsyncLock;
use crate::testkit::{op_deadline, owner, unique_name, wait_for};

use super::suite_options;

/// 32 concurrent acquirers × `rounds` each on one name: a counter inside the
/// critical section never sees two holders, every acquisition happens, and
/// fencing tokens strictly increase in the order holders got the lock.
pub async fn mutual_exclusion_rounds(backend: SharedBackend, rounds: usize) {
    const ACQUIRERS: usize = 32;
    let name = unique_name("mutex");
    let inside = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let last_fence = Arc::new(Mutex::new(0u64));
    let mut tasks = Vec::new();
    for _ in 0..ACQUIRERS {
        let lock =
            AsyncLock::with_backend(name.clone(), backend.clone()).with_options(suite_options());
        let (inside, total, last_fence) = (inside.clone(), total.clone(), last_fence.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds {
                let guard = lock.acquire().await.expect("acquire failed");
                let before = inside.fetch_add(1, Ordering::SeqCst);
                assert_eq!(before, 0, "two holders of {:?} at once", lock.name());
                {
                    let mut last = last_fence.lock().unwrap();
                    assert!(
                        guard.fencing_token() > *last,
                        "fencing token {} not above the previous holder's {}",
                        guard.fencing_token(),
                        *last
                    );
                    *last = guard.fencing_token();
                }
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_micros(200)).await;
                let after = inside.fetch_sub(1, Ordering::SeqCst);
                assert_eq!(after, 1, "two holders of {:?} at once", lock.name());
                total.fetch_add(1, Ordering::SeqCst);
                guard
                    .release()
                    .await
                    .expect("release of a held lock failed");
            }
        }));
    }
    for task in tasks {
        if let Err(e) = task.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    assert_eq!(total.load(Ordering::SeqCst), ACQUIRERS * rounds);
}

/// [`mutual_exclusion_rounds`] with 8 rounds (256 acquisitions).
pub async fn mutual_exclusion(backend: SharedBackend) {
    mutual_exclusion_rounds(backend, 8).await
}

/// Many owners calling `Backend::claim` at the same instant on a fresh
/// name (the first-creation race): exactly one wins.
pub async fn first_creation_race(backend: SharedBackend) {
    for _ in 0..5 {
        let name = unique_name("race");
        let start = Arc::new(tokio::sync::Barrier::new(20));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (backend, name, start) = (backend.clone(), name.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                backend
                    .claim(&name, &owner(), Duration::from_secs(30), op_deadline())
                    .await
                    .expect("claim failed")
                    .is_some()
            }));
        }
        let mut winners = 0;
        for task in tasks {
            winners += usize::from(task.await.unwrap());
        }
        assert_eq!(winners, 1, "{winners} owners won the same fresh lock");
    }
}

/// `try_acquire` while the lock is held returns `None` quickly; after
/// release it succeeds.
pub async fn try_acquire_while_held(backend: SharedBackend) {
    let lock = AsyncLock::with_backend(unique_name("try"), backend).with_options(suite_options());
    let guard = lock
        .try_acquire()
        .await
        .unwrap()
        .expect("free lock not taken");
    assert!(
        lock.try_acquire().await.unwrap().is_none(),
        "held lock taken twice"
    );
    assert!(lock
        .acquire_timeout(Duration::from_millis(50))
        .await
        .unwrap()
        .is_none());
    guard.release().await.unwrap();
    // acquire_timeout returned at its bound, and its last attempt may still
    // have been in flight: if that attempt lands after the release, it wins
    // the lock for nobody and releases it as soon as its answer arrives.
    // So the lock must be free again within a few round trips, far below
    // the 30 s ttl (a stranded lock would fail here).
    let again = wait_for(Duration::from_secs(10), || async {
        lock.try_acquire().await.unwrap()
    })
    .await;
    assert!(again.is_some(), "released lock not free");
}

/// Two different names never block each other.
pub async fn distinct_names_independent(backend: SharedBackend) {
    let a =
        AsyncLock::with_backend(unique_name("a"), backend.clone()).with_options(suite_options());
    let b = AsyncLock::with_backend(unique_name("b"), backend).with_options(suite_options());
    let ga = a.try_acquire().await.unwrap().expect("a");
    let gb = b.try_acquire().await.unwrap().expect("b while a is held");
    gb.release().await.unwrap();
    assert!(a.is_locked().await.unwrap());
    ga.release().await.unwrap();
}
