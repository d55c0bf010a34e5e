//! The blocking `Lock` from plain threads and from inside a tokio runtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shylock_core::testkit::unique_name;
use shylock_core::{Error, Lock, LockOptions, MemoryBackend, Renewal};

#[test]
fn threads_take_turns() {
    let backend = MemoryBackend::new();
    let name = unique_name("threads");
    let inside = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let lock = Lock::with_backend(name.clone(), backend.clone());
            let inside = inside.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let guard = lock.acquire().unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                    std::thread::yield_now();
                    assert_eq!(inside.fetch_sub(1, Ordering::SeqCst), 1);
                    guard.release().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn dropping_a_blocking_guard_releases_before_returning() {
    let lock = Lock::with_backend(unique_name("drop"), MemoryBackend::new());
    let guard = lock.acquire().unwrap();
    assert!(lock.is_locked().unwrap());
    drop(guard);
    assert!(!lock.is_locked().unwrap());
}

#[test]
fn renewal_runs_without_a_runtime_in_the_caller() {
    let ttl = Duration::from_millis(300);
    let lock = Lock::with_backend(unique_name("renew"), MemoryBackend::new()).with_options(
        LockOptions::default()
            .ttl(ttl)
            .renewal(Renewal::Every(Duration::from_millis(75))),
    );
    let guard = lock.acquire().unwrap();
    // Holding the lock is the point here: four ttls of work.
    std::thread::sleep(ttl * 4);
    assert!(!guard.is_lost());
    assert!(lock.try_acquire().unwrap().is_none());
    guard.extend(Duration::from_secs(2)).unwrap();
    guard.release().unwrap();
    assert!(!lock.is_locked().unwrap());
}

#[test]
fn lost_is_observable_from_blocking_code() {
    let lock = Lock::with_backend(unique_name("lost"), MemoryBackend::new())
        .with_options(LockOptions::default().ttl(Duration::from_secs(30)));
    let guard = lock.acquire().unwrap();
    assert!(!guard.wait_lost(Duration::from_millis(20)));
    assert!(lock.force_release().unwrap());
    assert!(matches!(
        guard.extend(Duration::from_secs(1)),
        Err(Error::LockLost { .. })
    ));
    assert!(guard.wait_lost(Duration::from_secs(5)));
    assert!(matches!(guard.release(), Err(Error::LockLost { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_inside_spawn_blocking() {
    let backend = MemoryBackend::new();
    let name = unique_name("spawn-blocking");
    let lock = Lock::with_backend(name.clone(), backend.clone());
    let token = tokio::task::spawn_blocking(move || {
        let guard = lock.acquire().unwrap();
        assert!(lock.try_acquire().unwrap().is_none());
        let t = guard.fencing_token();
        drop(guard);
        t
    })
    .await
    .unwrap();
    assert!(token > 0);
    let again = shylock_core::AsyncLock::with_backend(name, backend)
        .try_acquire()
        .await
        .unwrap();
    assert!(again.is_some());
}

#[tokio::test(flavor = "current_thread")]
async fn works_inside_spawn_blocking_on_a_current_thread_runtime() {
    let lock = Lock::with_backend(unique_name("ct"), MemoryBackend::new());
    let ok = tokio::task::spawn_blocking(move || {
        let g = lock.acquire_timeout(Duration::from_secs(1)).unwrap();
        g.is_some()
    })
    .await
    .unwrap();
    assert!(ok);
}
