//! The conformance cases: one async function per rule of the contract.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{claim_or_panic, op_deadline, owner, unique_name, wait_for, CountingBackend};
use crate::backend::{list_all, SharedBackend, MAX_NAME_LEN};
use crate::error::Error;
use crate::lock::AsyncLock;
use crate::options::{LockOptions, Renewal};

/// Options for suite locks: long ttl so only the cases about expiry see it,
/// and a backoff starting at 1 ms; releases wake waiters through the
/// backend's signal, so the 200 ms cap only bounds idle polling.
fn suite_options() -> LockOptions {
    LockOptions::default()
        .ttl(Duration::from_secs(30))
        .backoff(Duration::from_millis(1), Duration::from_millis(200))
}

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
    let again = lock.try_acquire().await.unwrap();
    assert!(again.is_some(), "released lock not free");
}

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

/// `list` returns exactly the live holders under a prefix, in byte order of
/// their names, page by page; released, expired and other-prefix locks
/// are left out.
pub async fn list_live_holders(backend: SharedBackend) {
    let base = unique_name("list");
    let prefix = format!("{base}/");
    let long = Duration::from_secs(30);
    // Byte order, not insertion order; "é" sorts after every ASCII letter.
    let suffixes = ["é", "b", "a/1", "a", "c\0", "a/2", "B"];
    let mut expected = Vec::new();
    for suffix in suffixes {
        let name = format!("{prefix}{suffix}");
        let me = owner();
        let grant = claim_or_panic(&backend, &name, &me, long).await;
        expected.push((name, me, grant.fencing_token));
    }
    expected.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    // Not listed: a released lock, an expired one, and names just outside
    // the prefix on both sides.
    let released = format!("{prefix}released");
    let me = owner();
    claim_or_panic(&backend, &released, &me, long).await;
    assert!(backend
        .release(&released, &me, op_deadline())
        .await
        .unwrap());
    let expired = format!("{prefix}expired");
    claim_or_panic(&backend, &expired, &owner(), Duration::from_millis(1)).await;
    for outside in [base.clone(), format!("{base}0"), format!("{base}.")] {
        claim_or_panic(&backend, &outside, &owner(), long).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;

    for page in [1, 2, 3, 100] {
        let all = list_all(&*backend, &prefix, page, Duration::from_secs(30))
            .await
            .unwrap();
        let got: Vec<(String, String, u64)> = all
            .iter()
            .map(|i| (i.name.clone(), i.owner.clone(), i.fencing_token))
            .collect();
        assert_eq!(got, expected, "list with pages of {page}");
        assert!(all
            .iter()
            .all(|i| i.expires_at > std::time::SystemTime::UNIX_EPOCH));
    }
    // One page starting after a given name.
    let page = backend
        .list(&prefix, Some(&expected[2].0), 2, op_deadline())
        .await
        .unwrap();
    let names: Vec<&str> = page.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, [expected[3].0.as_str(), expected[4].0.as_str()]);
    // A prefix nobody uses.
    assert!(backend
        .list(&format!("{base}/none/"), None, 10, op_deadline())
        .await
        .unwrap()
        .is_empty());
}

/// Names with slashes, dots, `$`, spaces, emoji, NUL, and names up to 64 KiB
/// are valid and distinct; empty and oversize names are `InvalidName`.
pub async fn name_edge_cases(backend: SharedBackend) {
    let base = unique_name("names");
    let suffixes = [
        "/a/b",
        ".dots.",
        "$dollar",
        "with space",
        "emoji-🔒",
        "nul\0byte",
        "nul\0bytf",
        "UPPER",
        "upper",
        "a.b",
        "a_b",
        "a%2Fb",
        "a/b",
        "tab\t",
        "quote\"'",
        "\\back",
    ];
    let locks: Vec<AsyncLock> = suffixes
        .iter()
        .map(|s| {
            AsyncLock::with_backend(format!("{base}{s}"), backend.clone())
                .with_options(suite_options())
        })
        .collect();
    let mut guards = Vec::new();
    for lock in &locks {
        let guard = lock.try_acquire().await.unwrap();
        assert!(
            guard.is_some(),
            "name {:?} clashed with another name",
            lock.name()
        );
        guards.push(guard.unwrap());
    }
    for (lock, guard) in locks.iter().zip(&guards) {
        let info = lock.inspect().await.unwrap().expect("held");
        assert_eq!(info.name, lock.name());
        assert_eq!(info.fencing_token, guard.fencing_token());
        assert!(lock.try_acquire().await.unwrap().is_none());
    }
    for guard in guards {
        guard.release().await.unwrap();
    }
    // The longest valid name, and names differing only in their last byte.
    let prefix_len = MAX_NAME_LEN - 1;
    let mut long = "x".repeat(prefix_len - base.len());
    long.insert_str(0, &base);
    let long_a = AsyncLock::with_backend(format!("{long}a"), backend.clone());
    let long_b = AsyncLock::with_backend(format!("{long}b"), backend.clone());
    assert_eq!(long_a.name().len(), MAX_NAME_LEN);
    let ga = long_a
        .try_acquire()
        .await
        .unwrap()
        .expect("64 KiB name rejected");
    let gb = long_b
        .try_acquire()
        .await
        .unwrap()
        .expect("long names clashed");
    ga.release().await.unwrap();
    gb.release().await.unwrap();
    for bad in [String::new(), format!("{long}ab")] {
        let result = AsyncLock::with_backend(bad, backend.clone())
            .try_acquire()
            .await;
        assert!(
            matches!(result, Err(Error::InvalidName { .. })),
            "{result:?}"
        );
    }
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

/// A waiter in `acquire()` gets the lock soon after the holder releases it.
pub async fn waiter_gets_released_lock(backend: SharedBackend) {
    let lock =
        AsyncLock::with_backend(unique_name("handoff"), backend).with_options(suite_options());
    let holder = lock.acquire().await.unwrap();
    let holder_token = holder.fencing_token();
    let waiter = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.acquire().await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!waiter.is_finished(), "waiter got a held lock");
    holder.release().await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("waiter never got the released lock")
        .unwrap()
        .unwrap();
    assert!(next.fencing_token() > holder_token);
    next.release().await.unwrap();
}

/// A release made through a backend handle wakes a waiter on the same
/// handle at once: with a 60 s minimum backoff, only the backend's release
/// signal can explain a handoff within a second.
pub async fn release_wakes_waiter_at_once(backend: SharedBackend) {
    let name = unique_name("wake");
    let holder = AsyncLock::with_backend(name.clone(), backend.clone())
        .with_options(suite_options())
        .acquire()
        .await
        .unwrap();
    let counting = CountingBackend::new(backend);
    let waiter = AsyncLock::with_backend(name, SharedBackend::from_arc(counting.clone()))
        .with_options(suite_options().backoff(Duration::from_secs(60), Duration::from_secs(60)));
    let task = tokio::spawn(async move { waiter.acquire().await });
    // Release only once the waiter's first attempt failed and it waits.
    let tried = wait_for(Duration::from_secs(20), || {
        let counting = counting.clone();
        async move { (counting.claim_count() >= 1).then_some(()) }
    })
    .await;
    assert!(tried.is_some(), "the waiter never tried");
    tokio::time::sleep(Duration::from_millis(20)).await;
    holder.release().await.unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(1), task).await;
    let guard = woke
        .expect("a release through the same handle did not wake the waiter within 1 s")
        .unwrap()
        .unwrap();
    guard.release().await.unwrap();
}

/// With a wait timeout, `acquire()` fails with `Error::Timeout` in bounded
/// time while the lock stays held.
pub async fn wait_timeout(backend: SharedBackend) {
    let name = unique_name("timeout");
    let holder = AsyncLock::with_backend(name.clone(), backend.clone())
        .acquire()
        .await
        .unwrap();
    let lock = AsyncLock::with_backend(name, backend)
        .with_options(suite_options().wait_timeout(Some(Duration::from_millis(100))));
    let started = Instant::now();
    let result = lock.acquire().await;
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(started.elapsed() < Duration::from_secs(20));
    holder.release().await.unwrap();
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
