//! Expiry and fencing: leases end by the database clock, tokens only grow.

use std::time::Duration;

use tokio::time::Instant;

use crate::backend::SharedBackend;
use crate::lock::AsyncLock;
use crate::options::Renewal;
use crate::testkit::{claim_or_panic, op_deadline, owner, unique_name, wait_for};

use super::suite_options;

/// A lock expires after its ttl (judged by the backend), not before, and then
/// another owner gets it with a higher fencing token; the old owner can
/// neither extend nor release it any more.
pub async fn expiry_frees_lock(backend: SharedBackend) {
    let name = unique_name("expiry");
    let ttl = Duration::from_millis(400);
    let started = Instant::now();
    let first_owner = owner();
    let first = claim_or_panic(&backend, &name, &first_owner, ttl).await;
    assert!(backend
        .claim(&name, &owner(), ttl, op_deadline())
        .await
        .unwrap()
        .is_none());
    let next_owner = owner();
    let second = wait_for(Duration::from_secs(20), || {
        let (backend, name, next_owner) = (backend.clone(), name.clone(), next_owner.clone());
        async move {
            backend
                .claim(&name, &next_owner, ttl, op_deadline())
                .await
                .unwrap()
        }
    })
    .await
    .expect("lock never expired");
    assert!(
        started.elapsed() >= ttl,
        "lock taken over after {:?}, before its ttl {ttl:?}",
        started.elapsed()
    );
    assert!(second.fencing_token > first.fencing_token);
    assert!(
        backend
            .extend(&name, &first_owner, ttl, op_deadline())
            .await
            .unwrap()
            .is_none(),
        "expired owner extended"
    );
    assert!(
        !backend
            .release(&name, &first_owner, op_deadline())
            .await
            .unwrap(),
        "expired owner released"
    );
    assert!(backend
        .release(&name, &next_owner, op_deadline())
        .await
        .unwrap());
}

/// A lease that expired is gone even when nobody took the lock over: its
/// owner cannot extend it back to life.
pub async fn expired_lease_cannot_be_extended(backend: SharedBackend) {
    let name = unique_name("expired-extend");
    let me = owner();
    claim_or_panic(&backend, &name, &me, Duration::from_millis(50)).await;
    let gone = wait_for(Duration::from_secs(20), || {
        let (backend, name) = (backend.clone(), name.clone());
        async move {
            backend
                .inspect(&name, op_deadline())
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert!(gone.is_some(), "the lease never expired");
    assert!(
        backend
            .extend(&name, &me, Duration::from_secs(30), op_deadline())
            .await
            .unwrap()
            .is_none(),
        "an expired lease was extended"
    );
    assert!(backend
        .inspect(&name, op_deadline())
        .await
        .unwrap()
        .is_none());
}

/// Fencing tokens strictly increase across holders: after release, after
/// expiry and after force_release.
pub async fn fencing_tokens_increase(backend: SharedBackend) {
    let name = unique_name("fence");
    let long = Duration::from_secs(30);
    let mut last = 0u64;
    let mut check = |token: u64| {
        assert!(token > last, "fencing token {token} not above {last}");
        last = token;
    };
    for _ in 0..5 {
        let me = owner();
        check(
            claim_or_panic(&backend, &name, &me, long)
                .await
                .fencing_token,
        );
        assert!(backend.release(&name, &me, op_deadline()).await.unwrap());
    }
    check(
        claim_or_panic(&backend, &name, &owner(), long)
            .await
            .fencing_token,
    );
    assert!(backend.force_release(&name, op_deadline()).await.unwrap());
    let short = Duration::from_millis(50);
    check(
        claim_or_panic(&backend, &name, &owner(), short)
            .await
            .fencing_token,
    );
    let last_owner = owner();
    let after_expiry = wait_for(Duration::from_secs(20), || {
        let (backend, name, last_owner) = (backend.clone(), name.clone(), last_owner.clone());
        async move {
            backend
                .claim(&name, &last_owner, long, op_deadline())
                .await
                .unwrap()
        }
    })
    .await
    .expect("lock never expired");
    check(after_expiry.fencing_token);
    assert!(backend
        .release(&name, &last_owner, op_deadline())
        .await
        .unwrap());
}

/// Renewal keeps a lock held past several ttls; release stops it.
///
/// The ttl leaves room for a slow server under the load of the other cases:
/// an extend that cannot be confirmed within the lease rightly loses it.
pub async fn renewal_keeps_lock(backend: SharedBackend) {
    let ttl = Duration::from_millis(1200);
    let lock = AsyncLock::with_backend(unique_name("renew"), backend).with_options(
        suite_options()
            .ttl(ttl)
            .renewal(Renewal::Every(Duration::from_millis(200))),
    );
    let guard = lock.acquire().await.unwrap();
    let first_expiry = guard.expires_at();
    let until = Instant::now() + ttl * 3;
    while Instant::now() < until {
        assert!(
            lock.try_acquire().await.unwrap().is_none(),
            "renewed lock was taken"
        );
        assert!(!guard.is_lost());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        guard.expires_at() > first_expiry,
        "expires_at not kept current"
    );
    guard.release().await.unwrap();
    assert!(!lock.is_locked().await.unwrap());
}
