//! Semaphores: at most N holders, reclaimed permits, owner checks, one
//! permit count, fencing across permits, wake-ups.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::SharedBackend;
use crate::error::Error;
use crate::options::{LockOptions, Renewal};
use crate::semaphore::AsyncSemaphore;
use crate::testkit::{op_deadline, owner, unique_name, wait_for};

use super::{offers_semaphores, sems, suite_options};

/// One acquisition in a semaphore history: the sequence number taken just
/// before `acquire()` was called, the one taken just after `release()`
/// returned, and the permit's fencing token.
#[derive(Debug, Clone, Copy)]
struct Held {
    asked: u64,
    released: u64,
    token: u64,
}

/// Every permit's token is greater than the token of every permit released
/// before it was asked for, and no two permits share a token.
fn check_history(mut history: Vec<Held>) {
    let mut tokens: Vec<u64> = history.iter().map(|h| h.token).collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(
        tokens.len(),
        history.len(),
        "two permits got one fencing token"
    );
    history.sort_by_key(|h| h.released);
    let mut running_max = Vec::with_capacity(history.len());
    let mut max = 0;
    for h in &history {
        max = max.max(h.token);
        running_max.push(max);
    }
    for h in &history {
        let before = history.partition_point(|r| r.released < h.asked);
        if before > 0 {
            assert!(
                h.token > running_max[before - 1],
                "a permit got token {} after a permit with token {} was released",
                h.token,
                running_max[before - 1]
            );
        }
    }
}

/// `tasks` concurrent tasks × `rounds` each on a `permits`-permit
/// semaphore: never more than `permits` inside at once, every acquisition
/// happens, and each permit's fencing token is greater than every token
/// released before it was asked for.
pub async fn semaphore_limits_holders_rounds(
    backend: SharedBackend,
    tasks: usize,
    permits: u32,
    rounds: usize,
) {
    if !offers_semaphores(&backend, "semaphore_limits_holders_rounds") {
        return;
    }
    let sem = AsyncSemaphore::with_backend(unique_name("sem"), permits, backend)
        .with_options(suite_options());
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let seq = Arc::new(AtomicU64::new(0));
    let history = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (sem, inside, most, seq, history) = (
            sem.clone(),
            inside.clone(),
            most.clone(),
            seq.clone(),
            history.clone(),
        );
        handles.push(tokio::spawn(async move {
            for _ in 0..rounds {
                let asked = seq.fetch_add(1, Ordering::SeqCst);
                let permit = sem.acquire().await.unwrap();
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
                let token = permit.fencing_token();
                permit.release().await.unwrap();
                let released = seq.fetch_add(1, Ordering::SeqCst);
                history.lock().unwrap().push(Held {
                    asked,
                    released,
                    token,
                });
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let most = most.load(Ordering::SeqCst);
    assert!(
        most <= permits as usize,
        "{most} holders at once on a {permits}-permit semaphore"
    );
    let history = std::mem::take(&mut *history.lock().unwrap());
    assert_eq!(history.len(), tasks * rounds);
    check_history(history);
}

/// [`semaphore_limits_holders_rounds`] with 32 tasks × 3 permits × 200
/// rounds (or `SHYLOCK_SEMAPHORE_ROUNDS` rounds, for slow test servers).
pub async fn semaphore_limits_holders(backend: SharedBackend) {
    if !offers_semaphores(&backend, "semaphore_limits_holders") {
        return;
    }
    let rounds = std::env::var("SHYLOCK_SEMAPHORE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200);
    semaphore_limits_holders_rounds(backend, 32, 3, rounds).await;
}

/// Permits of holders whose leases expired are taken by the next attempt,
/// not before their ttl, with no cleanup in between; the expired holders
/// can neither extend nor release them any more.
pub async fn semaphore_expired_permits_are_reclaimed(backend: SharedBackend) {
    if !offers_semaphores(&backend, "semaphore_expired_permits_are_reclaimed") {
        return;
    }
    let name = unique_name("sem-expiry");
    let ttl = Duration::from_millis(400);
    let (a, b, c) = (owner(), owner(), owner());
    let started = Instant::now();
    let ga = sems(&backend)
        .claim_permit(&name, &a, 2, ttl, op_deadline())
        .await
        .unwrap()
        .expect("first permit refused");
    let gb = sems(&backend)
        .claim_permit(&name, &b, 2, ttl, op_deadline())
        .await
        .unwrap()
        .expect("second permit refused");
    assert!(gb.fencing_token > ga.fencing_token);
    let early = sems(&backend)
        .claim_permit(&name, &c, 2, ttl, op_deadline())
        .await
        .unwrap();
    if started.elapsed() < ttl {
        assert!(early.is_none(), "a third permit of two was granted");
    }
    let gc = wait_for(Duration::from_secs(10), || {
        let (backend, name, c) = (backend.clone(), name.clone(), c.clone());
        async move {
            sems(&backend)
                .claim_permit(&name, &c, 2, ttl, op_deadline())
                .await
                .unwrap()
        }
    })
    .await
    .expect("expired permits were never reclaimed");
    assert!(
        started.elapsed() >= ttl,
        "a permit was reclaimed before its ttl"
    );
    assert!(gc.fencing_token > gb.fencing_token);
    assert!(sems(&backend)
        .extend_permit(&name, &a, ttl, op_deadline())
        .await
        .unwrap()
        .is_none());
    assert!(!sems(&backend)
        .release_permit(&name, &a, op_deadline())
        .await
        .unwrap());
    assert!(sems(&backend)
        .release_permit(&name, &c, op_deadline())
        .await
        .unwrap());
}

/// Another owner can neither release nor extend a permit; the holder can,
/// once.
pub async fn semaphore_owner_checked(backend: SharedBackend) {
    if !offers_semaphores(&backend, "semaphore_owner_checked") {
        return;
    }
    let name = unique_name("sem-owner");
    let ttl = Duration::from_secs(30);
    let (a, other) = (owner(), owner());
    sems(&backend)
        .claim_permit(&name, &a, 2, ttl, op_deadline())
        .await
        .unwrap()
        .expect("free permit refused");
    assert!(!sems(&backend)
        .release_permit(&name, &other, op_deadline())
        .await
        .unwrap());
    assert!(sems(&backend)
        .extend_permit(&name, &other, ttl, op_deadline())
        .await
        .unwrap()
        .is_none());
    assert!(sems(&backend)
        .extend_permit(&name, &a, ttl, op_deadline())
        .await
        .unwrap()
        .is_some());
    assert!(sems(&backend)
        .release_permit(&name, &a, op_deadline())
        .await
        .unwrap());
    assert!(!sems(&backend)
        .release_permit(&name, &a, op_deadline())
        .await
        .unwrap());
}

/// A claim by an owner that already holds a permit (a retried request)
/// returns that permit with its token instead of taking a second one.
pub async fn semaphore_reclaim_is_idempotent(backend: SharedBackend) {
    if !offers_semaphores(&backend, "semaphore_reclaim_is_idempotent") {
        return;
    }
    let name = unique_name("sem-retry");
    let ttl = Duration::from_secs(30);
    let a = owner();
    let first = sems(&backend)
        .claim_permit(&name, &a, 2, ttl, op_deadline())
        .await
        .unwrap()
        .expect("free permit refused");
    let again = sems(&backend)
        .claim_permit(&name, &a, 2, ttl, op_deadline())
        .await
        .unwrap()
        .expect("a retry by the holder was refused");
    assert_eq!(again.fencing_token, first.fencing_token);
    let info = sems(&backend)
        .inspect_semaphore(&name, op_deadline())
        .await
        .unwrap();
    assert_eq!(
        info.holders.len(),
        1,
        "a retry took a second permit: {info:?}"
    );
    assert!(sems(&backend)
        .release_permit(&name, &a, op_deadline())
        .await
        .unwrap());
}

/// While a semaphore has live holders, a claim with another permit count
/// is `InvalidOptions` naming both counts; once it has none, the new count
/// applies.
pub async fn semaphore_permit_count_mismatch(backend: SharedBackend) {
    if !offers_semaphores(&backend, "semaphore_permit_count_mismatch") {
        return;
    }
    let name = unique_name("sem-count");
    let ttl = Duration::from_secs(30);
    let (a, b) = (owner(), owner());
    sems(&backend)
        .claim_permit(&name, &a, 3, ttl, op_deadline())
        .await
        .unwrap()
        .expect("free permit refused");
    let err = sems(&backend)
        .claim_permit(&name, &b, 5, ttl, op_deadline())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidOptions { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains('3') && text.contains('5'), "{text}");
    let info = sems(&backend)
        .inspect_semaphore(&name, op_deadline())
        .await
        .unwrap();
    assert_eq!(info.permits, Some(3));
    assert!(sems(&backend)
        .release_permit(&name, &a, op_deadline())
        .await
        .unwrap());
    sems(&backend)
        .claim_permit(&name, &b, 5, ttl, op_deadline())
        .await
        .unwrap()
        .expect("the new count did not apply once the semaphore was free");
    let info = sems(&backend)
        .inspect_semaphore(&name, op_deadline())
        .await
        .unwrap();
    assert_eq!(info.permits, Some(5));
    assert!(sems(&backend)
        .release_permit(&name, &b, op_deadline())
        .await
        .unwrap());
}

/// `inspect` lists live holders in grant order with the stored count;
/// `available` counts free permits; bad permit counts are `InvalidOptions`.
pub async fn semaphore_inspect_and_bad_input(backend: SharedBackend) {
    if !offers_semaphores(&backend, "semaphore_inspect_and_bad_input") {
        return;
    }
    let name = unique_name("sem-inspect");
    let sem = AsyncSemaphore::with_backend(&name, 3, backend.clone()).with_options(suite_options());
    assert_eq!(sem.available().await.unwrap(), 3);
    let a = sem.acquire().await.unwrap();
    let b = sem.acquire().await.unwrap();
    assert_eq!(sem.available().await.unwrap(), 1);
    let info = sem.inspect().await.unwrap();
    assert_eq!(info.permits, Some(3));
    let owners: Vec<&str> = info.holders.iter().map(|h| h.owner.as_str()).collect();
    assert_eq!(owners, [a.owner(), b.owner()]);
    assert!(info.holders.iter().all(|h| h.name == name));
    // An operator frees b's permit; b learns it lost it.
    assert!(sem.force_release(b.owner()).await.unwrap());
    assert!(matches!(b.release().await, Err(Error::LockLost { .. })));
    a.release().await.unwrap();
    let info = sem.inspect().await.unwrap();
    assert!(
        info.holders.is_empty() && info.permits.is_none(),
        "{info:?}"
    );
    for permits in [0, crate::backend::MAX_PERMITS + 1] {
        let bad = AsyncSemaphore::with_backend(&name, permits, backend.clone());
        assert!(matches!(
            bad.try_acquire().await,
            Err(Error::InvalidOptions { .. })
        ));
    }
    let bad_name = AsyncSemaphore::with_backend("", 2, backend.clone());
    assert!(matches!(
        bad_name.try_acquire().await,
        Err(Error::InvalidName { .. })
    ));
}

/// A released permit wakes a waiter at once: with a 60 s minimum backoff,
/// only the backend's permit release signal explains a handoff within a
/// few seconds.
pub async fn semaphore_release_wakes_waiter(backend: SharedBackend) {
    if !offers_semaphores(&backend, "semaphore_release_wakes_waiter") {
        return;
    }
    let name = unique_name("sem-wake");
    let slow = LockOptions::default()
        .ttl(Duration::from_secs(120))
        .backoff(Duration::from_secs(60), Duration::from_secs(60))
        .renewal(Renewal::Off);
    let sem = AsyncSemaphore::with_backend(&name, 1, backend).with_options(slow);
    let held = sem.acquire().await.unwrap();
    let waiter = {
        let sem = sem.clone();
        tokio::spawn(async move { sem.acquire().await })
    };
    // Let the waiter make its first attempt and start its long pause.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let released_at = Instant::now();
    held.release().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter was not woken by the release")
        .unwrap()
        .unwrap();
    assert!(released_at.elapsed() < Duration::from_secs(10));
    got.release().await.unwrap();
}

/// `list_semaphores` shows the semaphores with live holders under a
/// prefix, in name order, with their counts and holders; freed ones, locks
/// and other prefixes are left out; `limit` cuts the list; a long name
/// (stored under a digest by some backends) is listed by its full name.
pub async fn semaphore_list_by_prefix(backend: SharedBackend) {
    if !offers_semaphores(&backend, "semaphore_list_by_prefix") {
        return;
    }
    let prefix = format!("{}/", unique_name("sem-list"));
    let (a, b, freed) = (
        format!("{prefix}a"),
        format!("{prefix}b"),
        format!("{prefix}c"),
    );
    let long = format!("{prefix}{}", "z".repeat(1100));
    let ttl = Duration::from_secs(30);
    let (o1, o2, o3, o4) = (owner(), owner(), owner(), owner());
    let sem = sems(&backend);
    for (name, who, permits) in [
        (&a, &o1, 3),
        (&a, &o2, 3),
        (&b, &o3, 1),
        (&freed, &o4, 2),
        (&long, &o1, 2),
    ] {
        let grant = sem
            .claim_permit(name, who, permits, ttl, op_deadline())
            .await
            .unwrap();
        assert!(grant.is_some(), "permit of {name} not granted");
    }
    assert!(sem
        .release_permit(&freed, &o4, op_deadline())
        .await
        .unwrap());
    // A lock and a semaphore outside the prefix are not listed.
    assert!(backend
        .claim(&format!("{prefix}lock"), &o1, ttl, op_deadline())
        .await
        .unwrap()
        .is_some());
    let outside = unique_name("sem-list-outside");
    assert!(sem
        .claim_permit(&outside, &o1, 1, ttl, op_deadline())
        .await
        .unwrap()
        .is_some());

    let listed = sem
        .list_semaphores(&prefix, 100, op_deadline())
        .await
        .unwrap();
    let names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [a.as_str(), b.as_str(), long.as_str()],
        "listed semaphores"
    );
    assert_eq!(listed[0].permits, Some(3));
    let owners: Vec<&str> = listed[0].holders.iter().map(|h| h.owner.as_str()).collect();
    assert_eq!(owners, [o1.as_str(), o2.as_str()], "holders in fence order");
    assert!(listed[0].holders.iter().all(|h| h.name == a));
    assert_eq!(listed[1].permits, Some(1));
    assert_eq!(listed[1].holders.len(), 1);
    assert_eq!(listed[2].holders.len(), 1);
    let first = sem
        .list_semaphores(&prefix, 1, op_deadline())
        .await
        .unwrap();
    assert_eq!(first.len(), 1, "limit 1");
    assert_eq!(first[0].name, a);
}
