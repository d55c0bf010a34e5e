//! Multi-lock and reentrant lock on the memory backend.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shylock_core::testkit::{unique_name, CountingBackend};
use shylock_core::{
    AsyncLock, AsyncMultiLock, AsyncReentrantLock, Error, LockOptions, MemoryBackend, SharedBackend,
};

fn fast() -> LockOptions {
    LockOptions::default().backoff(Duration::from_millis(1), Duration::from_millis(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_multi_locks_never_deadlock_or_overlap() {
    const NAMES: usize = 6;
    let backend = MemoryBackend::new();
    let base = unique_name("multi");
    let inside: Arc<Vec<AtomicUsize>> = Arc::new((0..NAMES).map(|_| AtomicUsize::new(0)).collect());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (backend, base, inside) = (backend.clone(), base.clone(), inside.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..300 {
                let mut picked: Vec<usize> = (0..NAMES).filter(|_| fastrand::bool()).collect();
                if picked.is_empty() {
                    picked.push(fastrand::usize(..NAMES));
                }
                // Reversed on purpose: the lock sorts the names itself.
                let names: Vec<String> =
                    picked.iter().rev().map(|i| format!("{base}/{i}")).collect();
                let set = AsyncMultiLock::with_backend(names, backend.clone()).with_options(fast());
                let guard = set.acquire().await.unwrap();
                for i in &picked {
                    assert_eq!(
                        inside[*i].fetch_add(1, Ordering::SeqCst),
                        0,
                        "two holders of name {i}"
                    );
                }
                tokio::task::yield_now().await;
                for i in &picked {
                    inside[*i].fetch_sub(1, Ordering::SeqCst);
                }
                guard.release().await.unwrap();
            }
        }));
    }
    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("the multi-lock tasks did not finish: deadlock or livelock");
}

#[tokio::test]
async fn a_failed_multi_attempt_holds_nothing() {
    let backend = MemoryBackend::new();
    let base = unique_name("multi-partial");
    let (a, b, c) = (
        format!("{base}/a"),
        format!("{base}/b"),
        format!("{base}/c"),
    );
    let held_c = AsyncLock::with_backend(&c, backend.clone())
        .acquire()
        .await
        .unwrap();
    let set = AsyncMultiLock::with_backend([&a, &b, &c, &a], backend.clone());
    assert_eq!(set.names(), [a.clone(), b.clone(), c.clone()]);
    assert!(set.try_acquire().await.unwrap().is_none());
    for name in [&a, &b] {
        let free = AsyncLock::with_backend(name, backend.clone())
            .is_locked()
            .await
            .unwrap();
        assert!(!free, "a failed attempt left {name} held");
    }
    assert!(set
        .acquire_timeout(Duration::from_millis(50))
        .await
        .unwrap()
        .is_none());
    held_c.release().await.unwrap();
    let all = set
        .acquire_timeout(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("free set not taken");
    assert!(all.fencing_token(&b).is_some());
    assert!(all.fencing_token("other").is_none());
    all.release().await.unwrap();
    let empty: [&str; 0] = [];
    assert!(matches!(
        AsyncMultiLock::with_backend(empty, backend)
            .try_acquire()
            .await,
        Err(Error::InvalidName { .. })
    ));
}

#[tokio::test]
async fn a_multi_guard_is_lost_when_any_lock_is() {
    let backend = MemoryBackend::new();
    let base = unique_name("multi-lost");
    let names = [format!("{base}/a"), format!("{base}/b")];
    let guard = AsyncMultiLock::with_backend(names.clone(), backend.clone())
        .acquire()
        .await
        .unwrap();
    assert!(!guard.is_lost());
    AsyncLock::with_backend(&names[1], backend.clone())
        .force_release()
        .await
        .unwrap();
    guard.guards()[1]
        .extend(Duration::from_secs(30))
        .await
        .unwrap_err();
    tokio::time::timeout(Duration::from_secs(5), guard.lost())
        .await
        .unwrap();
    assert!(guard.is_lost());
    assert!(matches!(guard.release().await, Err(Error::LockLost { .. })));
    assert!(!AsyncLock::with_backend(&names[0], backend)
        .is_locked()
        .await
        .unwrap());
}

#[tokio::test]
async fn a_cancelled_multi_acquire_leaves_nothing_held() {
    let backend = MemoryBackend::new();
    let base = unique_name("multi-cancel");
    let names: Vec<String> = (0..5).map(|i| format!("{base}/{i}")).collect();
    let blocker = AsyncLock::with_backend(&names[4], backend.clone())
        .acquire()
        .await
        .unwrap();
    let set = AsyncMultiLock::with_backend(names.clone(), backend.clone()).with_options(fast());
    for _ in 0..50 {
        let _ = tokio::time::timeout(
            Duration::from_micros(fastrand::u64(50..2000)),
            set.acquire(),
        )
        .await;
    }
    blocker.release().await.unwrap();
    let freed = shylock_core::testkit::wait_for(Duration::from_secs(5), || async {
        for name in &names {
            if AsyncLock::with_backend(name, backend.clone())
                .is_locked()
                .await
                .unwrap()
            {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(freed.is_some(), "a cancelled multi-lock left locks held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reentrant_holds_share_one_lease_and_other_owners_wait() {
    let counting = CountingBackend::new(MemoryBackend::new());
    let backend = SharedBackend::from(counting.clone());
    let name = unique_name("reentrant");
    let owner = AsyncReentrantLock::with_backend(&name, backend.clone()).with_options(fast());
    let outer = owner.acquire().await.unwrap();
    let claims = counting.claim_count();
    let clone = owner.clone();
    let inner = clone.acquire().await.unwrap();
    let innermost = owner
        .try_acquire()
        .await
        .unwrap()
        .expect("the owner was refused");
    assert_eq!(
        counting.claim_count(),
        claims,
        "a nested acquire went to the database"
    );
    assert_eq!(inner.fencing_token(), outer.fencing_token());
    assert_eq!(outer.holds(), 3);
    let other = AsyncReentrantLock::with_backend(&name, backend.clone());
    assert!(other.try_acquire().await.unwrap().is_none());
    // Concurrent acquires through one owner share one lease.
    let (x, y) = tokio::join!(owner.acquire(), owner.acquire());
    assert_eq!(x.unwrap().fencing_token(), y.unwrap().fencing_token());
    inner.release().await.unwrap();
    drop(innermost);
    assert!(
        other.try_acquire().await.unwrap().is_none(),
        "released while a hold remained"
    );
    outer.release().await.unwrap();
    let taken = other
        .acquire_timeout(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("never freed");
    assert!(taken.fencing_token() > 0);
    taken.release().await.unwrap();
}

#[tokio::test]
async fn reentrant_holds_share_loss_and_a_lost_lease_is_not_handed_out() {
    let backend = MemoryBackend::new();
    let name = unique_name("reentrant-lost");
    let owner = AsyncReentrantLock::with_backend(&name, backend.clone());
    let outer = owner.acquire().await.unwrap();
    let inner = owner.acquire().await.unwrap();
    AsyncLock::with_backend(&name, backend.clone())
        .force_release()
        .await
        .unwrap();
    outer.extend(Duration::from_secs(30)).await.unwrap_err();
    assert!(
        outer.is_lost() && inner.is_lost(),
        "holds do not share the lease"
    );
    let fresh = owner.acquire().await.unwrap();
    assert!(!fresh.is_lost());
    assert!(fresh.fencing_token() > outer.fencing_token());
    // Ending a hold that is not the last reports nothing; the last hold's
    // release reports the lost lease, as a plain guard's would.
    inner.release().await.unwrap();
    assert!(
        matches!(outer.release().await, Err(Error::LockLost { .. })),
        "the last hold of a lost lease released without an error"
    );
    fresh.release().await.unwrap();
}

#[test]
fn blocking_multi_and_reentrant_locks_work_without_a_runtime() {
    use shylock_core::blocking::{MultiLock, ReentrantLock, Semaphore};

    let backend = MemoryBackend::new();
    let name = unique_name("blocking-shapes");
    let set = MultiLock::with_backend([format!("{name}/b"), format!("{name}/a")], backend.clone());
    assert_eq!(set.names(), set.as_async().names());
    let held = set.acquire().unwrap();
    assert_eq!(held.names(), [format!("{name}/a"), format!("{name}/b")]);
    assert!(held.expires_at() > std::time::SystemTime::now());
    assert!(set.try_acquire().unwrap().is_none());
    assert!(set
        .acquire_timeout(Duration::from_millis(20))
        .unwrap()
        .is_none());
    held.release().unwrap();

    let lock = ReentrantLock::with_backend(&name, backend.clone());
    assert_eq!(lock.name(), name);
    assert!(!lock.is_locked().unwrap());
    let outer = lock.acquire().unwrap();
    let inner = lock
        .acquire_timeout(Duration::from_millis(20))
        .unwrap()
        .expect("the same owner gets it at once");
    assert_eq!(outer.holds(), 2);
    assert_eq!(inner.name(), name);
    let other = ReentrantLock::with_backend(&name, backend.clone());
    assert!(other.is_locked().unwrap());
    assert!(other.try_acquire().unwrap().is_none());
    drop(inner);
    outer.release().unwrap();
    assert!(!lock.is_locked().unwrap());

    let pool = Semaphore::with_backend(&name, 2, backend);
    assert_eq!(pool.permits(), 2);
    let permit = pool.acquire().unwrap();
    assert_eq!(pool.available().unwrap(), 1);
    assert!(pool.force_release(permit.owner()).unwrap());
    assert_eq!(pool.available().unwrap(), 2);
}
