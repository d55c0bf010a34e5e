//! Ownership: only the holder releases or extends; force_release and inspection.

use std::time::Duration;

use crate::backend::SharedBackend;
use crate::error::Error;
use crate::lock::AsyncLock;
use crate::options::Renewal;
use crate::testkit::{claim_or_panic, op_deadline, owner, unique_name, wait_for};

use super::suite_options;

/// Another owner can neither release nor extend a held lock.
pub async fn owner_checked_release_and_extend(backend: SharedBackend) {
    let name = unique_name("owner");
    let ttl = Duration::from_secs(30);
    let me = owner();
    let grant = claim_or_panic(&backend, &name, &me, ttl).await;
    let impostor = owner();
    assert!(
        !backend
            .release(&name, &impostor, op_deadline())
            .await
            .unwrap(),
        "impostor released the lock"
    );
    assert!(
        backend
            .extend(&name, &impostor, ttl, op_deadline())
            .await
            .unwrap()
            .is_none(),
        "impostor extended the lock"
    );
    let info = backend
        .inspect(&name, op_deadline())
        .await
        .unwrap()
        .expect("lock vanished");
    assert_eq!(info.owner, me);
    assert_eq!(info.fencing_token, grant.fencing_token);
    assert!(backend
        .claim(&name, &owner(), ttl, op_deadline())
        .await
        .unwrap()
        .is_none());
    // The owner still can.
    let expires = backend
        .extend(&name, &me, ttl, op_deadline())
        .await
        .unwrap()
        .expect("owner could not extend");
    assert!(expires >= grant.expires_at, "extend moved the expiry back");
    let info = backend
        .inspect(&name, op_deadline())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        info.fencing_token, grant.fencing_token,
        "extend changed the token"
    );
    assert!(
        backend.release(&name, &me, op_deadline()).await.unwrap(),
        "owner could not release"
    );
    assert!(
        !backend.release(&name, &me, op_deadline()).await.unwrap(),
        "released twice"
    );
    assert!(backend
        .inspect(&name, op_deadline())
        .await
        .unwrap()
        .is_none());
}

/// Claiming again with the same owner token (a retried request) returns the
/// same fencing token instead of "held".
pub async fn same_owner_reclaim_is_idempotent(backend: SharedBackend) {
    let name = unique_name("retry");
    let me = owner();
    let ttl = Duration::from_secs(30);
    let first = claim_or_panic(&backend, &name, &me, ttl).await;
    let second = backend
        .claim(&name, &me, ttl, op_deadline())
        .await
        .unwrap()
        .expect("retry lost the lock");
    assert_eq!(first.fencing_token, second.fencing_token);
    assert!(backend.release(&name, &me, op_deadline()).await.unwrap());
}

/// `force_release` frees a held lock whoever holds it, reports whether it
/// did, and the old holder's guard then reports the lock lost.
pub async fn force_release(backend: SharedBackend) {
    let lock = AsyncLock::with_backend(unique_name("force"), backend)
        .with_options(suite_options().renewal(Renewal::Off));
    assert!(
        !lock.force_release().await.unwrap(),
        "freed a lock nobody held"
    );
    let guard = lock.acquire().await.unwrap();
    assert!(lock.force_release().await.unwrap());
    assert!(!lock.is_locked().await.unwrap());
    let next = lock
        .try_acquire()
        .await
        .unwrap()
        .expect("force-released lock not free");
    assert!(next.fencing_token() > guard.fencing_token());
    assert!(matches!(
        guard.extend(Duration::from_secs(5)).await,
        Err(Error::LockLost { .. })
    ));
    assert!(guard.is_lost());
    assert!(matches!(guard.release().await, Err(Error::LockLost { .. })));
    assert!(
        lock.is_locked().await.unwrap(),
        "old holder's release freed the new holder"
    );
    next.release().await.unwrap();
}

/// `is_locked` and `inspect` follow acquire, release and expiry.
pub async fn is_locked(backend: SharedBackend) {
    let lock = AsyncLock::with_backend(unique_name("inspect"), backend.clone())
        .with_options(suite_options());
    assert!(!lock.is_locked().await.unwrap());
    assert!(lock.inspect().await.unwrap().is_none());
    let guard = lock.acquire().await.unwrap();
    assert!(lock.is_locked().await.unwrap());
    let info = lock
        .inspect()
        .await
        .unwrap()
        .expect("held lock not reported");
    assert_eq!(info.name, lock.name());
    assert_eq!(info.fencing_token, guard.fencing_token());
    assert_eq!(info.owner, guard.owner());
    guard.release().await.unwrap();
    assert!(!lock.is_locked().await.unwrap());
    // An expired lock is not reported as held.
    claim_or_panic(&backend, lock.name(), &owner(), Duration::from_millis(50)).await;
    let freed = wait_for(Duration::from_secs(20), || {
        let lock = lock.clone();
        async move { (!lock.is_locked().await.unwrap()).then_some(()) }
    })
    .await;
    assert!(freed.is_some(), "expired lock still reported as held");
}

/// A dropped guard frees its lock for this process at once: `drop(guard)`
/// then `try_acquire()` in the same task wins (the acquire waits for the
/// drop's background release), round after round.
pub async fn dropped_guard_frees_lock_for_next_acquire(backend: SharedBackend) {
    let name = unique_name("dropped");
    let lock = AsyncLock::with_backend(name.clone(), backend).with_options(suite_options());
    let mut guard = lock.try_acquire().await.unwrap().expect("lock was free");
    for round in 0..5 {
        drop(guard);
        guard = lock.try_acquire().await.unwrap().unwrap_or_else(|| {
            panic!("round {round}: try_acquire right after drop(guard) found {name} held")
        });
    }
    drop(guard);
    let freed = wait_for(Duration::from_secs(10), || async {
        (!lock.is_locked().await.unwrap()).then_some(())
    })
    .await;
    assert!(freed.is_some(), "the last dropped guard never freed {name}");
}
