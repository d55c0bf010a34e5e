//! Lease lifecycle in the core: renewal, the lost signal, waiting, timeouts
//! and cancel safety. Most cases run on tokio's paused clock, which the
//! memory backend follows, so they take no real time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::time::SystemTime;

use shylock_core::backend::{Backend, Deadline, Grant};
use shylock_core::testkit::{unique_name, wait_for, CountingBackend};
use shylock_core::{
    AsyncLock, Error, ErrorKind, LockInfo, LockOptions, MemoryBackend, Renewal, Result,
    SharedBackend,
};
use tokio::time::Instant;

/// A memory backend whose extends can be made to fail, whose claims can be
/// slowed down before or after they take effect, and whose every operation
/// can be made to hang (a stalled server).
#[derive(Debug, Default)]
struct Faulty {
    inner: MemoryBackend,
    fail_extends: AtomicBool,
    /// The request is in flight this long before the store sees it.
    claim_delay_before_ms: AtomicU64,
    /// The store took the lock; the answer is slow to come back.
    claim_delay_after_ms: AtomicU64,
    stall: AtomicBool,
    hide_signal: bool,
    /// A release takes this long before the store sees it.
    release_delay_ms: AtomicU64,
}

impl Faulty {
    async fn maybe_stall(&self) {
        if self.stall.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait::async_trait]
impl Backend for Faulty {
    async fn claim(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        self.maybe_stall().await;
        let before = self.claim_delay_before_ms.load(Ordering::SeqCst);
        if before > 0 {
            tokio::time::sleep(Duration::from_millis(before)).await;
        }
        let won = self.inner.claim(name, owner, ttl, deadline).await;
        let after = self.claim_delay_after_ms.load(Ordering::SeqCst);
        if after > 0 {
            tokio::time::sleep(Duration::from_millis(after)).await;
        }
        won
    }
    async fn extend(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        self.maybe_stall().await;
        if self.fail_extends.load(Ordering::SeqCst) {
            return Err(Error::backend_msg(
                "faulty",
                ErrorKind::Unavailable,
                "extend refused by the test",
            ));
        }
        self.inner.extend(name, owner, ttl, deadline).await
    }
    async fn release(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        self.maybe_stall().await;
        let delay = self.release_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.inner.release(name, owner, deadline).await
    }
    async fn inspect(&self, name: &str, deadline: Deadline) -> Result<Option<LockInfo>> {
        self.maybe_stall().await;
        self.inner.inspect(name, deadline).await
    }
    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<LockInfo>> {
        self.maybe_stall().await;
        self.inner.list(prefix, after, limit, deadline).await
    }
    async fn force_release(&self, name: &str, deadline: Deadline) -> Result<bool> {
        self.maybe_stall().await;
        self.inner.force_release(name, deadline).await
    }
    fn release_signal(&self, name: &str) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        if self.hide_signal {
            None
        } else {
            self.inner.release_signal(name)
        }
    }
}

fn faulty() -> (Arc<Faulty>, SharedBackend) {
    let f = Arc::new(Faulty::default());
    (f.clone(), SharedBackend::from_arc(f))
}

fn opts(ttl_ms: u64) -> LockOptions {
    LockOptions::default().ttl(Duration::from_millis(ttl_ms))
}

#[tokio::test(start_paused = true)]
async fn renewal_keeps_the_lock_past_many_ttls() {
    let backend = MemoryBackend::new();
    let lock =
        AsyncLock::with_backend(unique_name("renew"), backend.clone()).with_options(opts(1000));
    let guard = lock.acquire().await.unwrap();
    let first_expiry = guard.expires_at();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!guard.is_lost());
    assert!(lock.try_acquire().await.unwrap().is_none());
    assert!(guard.expires_at() >= first_expiry);
    guard.release().await.unwrap();
    assert!(!lock.is_locked().await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn without_renewal_the_lock_expires_and_lost_fires() {
    let backend = MemoryBackend::new();
    let lock = AsyncLock::with_backend(unique_name("norenew"), backend.clone())
        .with_options(opts(1000).renewal(Renewal::Off));
    let guard = lock.acquire().await.unwrap();
    let started = Instant::now();
    guard.lost().await;
    // Lost is reported before the database ends the lease: at ttl less the
    // 1 % clock drift margin, while nobody else can take the lock yet.
    assert_eq!(started.elapsed(), Duration::from_millis(990));
    assert!(guard.is_lost());
    assert!(
        lock.try_acquire().await.unwrap().is_none(),
        "the lock could be taken before its holder knew it was lost"
    );
    tokio::time::sleep(Duration::from_millis(11)).await;
    let thief = lock
        .try_acquire()
        .await
        .unwrap()
        .expect("expired lock not free");
    assert!(matches!(guard.release().await, Err(Error::LockLost { .. })));
    assert!(
        lock.is_locked().await.unwrap(),
        "a lost guard freed the new holder's lock"
    );
    thief.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn failing_renewals_are_retried_then_reported_lost() {
    let (faulty, backend) = faulty();
    let lock = AsyncLock::with_backend(unique_name("blocked"), backend).with_options(opts(900));
    let guard = lock.acquire().await.unwrap();
    faulty.fail_extends.store(true, Ordering::SeqCst);
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), guard.lost())
        .await
        .expect("lost() never fired");
    // Lost no earlier than the lease really ran out.
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert!(guard.is_lost());
    assert!(matches!(
        guard.extend(Duration::from_secs(1)).await,
        Err(Error::LockLost { .. })
    ));
    assert!(matches!(guard.release().await, Err(Error::LockLost { .. })));
}

#[tokio::test(start_paused = true)]
async fn a_transient_renewal_failure_does_not_lose_the_lock() {
    let (faulty, backend) = faulty();
    let lock = AsyncLock::with_backend(unique_name("blip"), backend).with_options(opts(900));
    let guard = lock.acquire().await.unwrap();
    faulty.fail_extends.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await; // one renewal fails
    faulty.fail_extends.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!guard.is_lost());
    guard.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn force_release_is_noticed_by_renewal() {
    let backend = MemoryBackend::new();
    let lock = AsyncLock::with_backend(unique_name("forced"), backend).with_options(opts(3000));
    let guard = lock.acquire().await.unwrap();
    assert!(lock.force_release().await.unwrap());
    tokio::time::timeout(Duration::from_secs(2), guard.lost())
        .await
        .expect("renewal did not notice the force release within one interval");
    assert!(matches!(guard.release().await, Err(Error::LockLost { .. })));
}

#[tokio::test(start_paused = true)]
async fn extend_works_with_renewal_off_and_keeps_expires_at_current() {
    let backend = MemoryBackend::new();
    let lock = AsyncLock::with_backend(unique_name("extend"), backend)
        .with_options(opts(1000).renewal(Renewal::Off));
    let guard = lock.acquire().await.unwrap();
    let before = guard.expires_at();
    tokio::time::sleep(Duration::from_millis(800)).await;
    guard.extend(Duration::from_secs(5)).await.unwrap();
    assert!(guard.expires_at() > before);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!guard.is_lost());
    assert!(lock.try_acquire().await.unwrap().is_none());
    assert!(matches!(
        guard.extend(Duration::ZERO).await,
        Err(Error::InvalidOptions { .. })
    ));
    guard.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn acquire_timeout_and_wait_timeout_return_in_bounded_time() {
    let backend = MemoryBackend::new();
    let name = unique_name("timeout");
    let _holder = AsyncLock::with_backend(name.clone(), backend.clone())
        .acquire()
        .await
        .unwrap();
    let lock = AsyncLock::with_backend(name.clone(), backend.clone());
    let started = Instant::now();
    assert!(lock
        .acquire_timeout(Duration::from_secs(3))
        .await
        .unwrap()
        .is_none());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "{waited:?}"
    );

    let lock = lock.with_options(LockOptions::default().wait_timeout(Some(Duration::from_secs(2))));
    let started = Instant::now();
    match lock.acquire().await {
        Err(Error::Timeout { name: n, waited }) => {
            assert_eq!(n, name);
            assert!(waited >= Duration::from_secs(2));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_release_wakes_a_waiter_at_once() {
    let backend = MemoryBackend::new();
    let name = unique_name("wake");
    // A huge backoff: only the release signal can explain a fast handoff.
    let slow_poll =
        LockOptions::default().backoff(Duration::from_secs(60), Duration::from_secs(60));
    let holder = AsyncLock::with_backend(name.clone(), backend.clone())
        .acquire()
        .await
        .unwrap();
    let waiter = AsyncLock::with_backend(name, backend).with_options(slow_poll);
    let task = tokio::spawn(async move { waiter.acquire().await.map(|g| (Instant::now(), g)) });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let released_at = Instant::now();
    holder.release().await.unwrap();
    let (acquired_at, guard) = task.await.unwrap().unwrap();
    assert!(acquired_at - released_at < Duration::from_millis(10));
    guard.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn waiters_without_a_signal_back_off_and_still_get_the_lock() {
    let f = Arc::new(Faulty {
        hide_signal: true,
        ..Faulty::default()
    });
    let backend = SharedBackend::from_arc(f);
    let counting = CountingBackend::new(backend);
    let backend = SharedBackend::from_arc(counting.clone());
    let name = unique_name("poll");
    let holder = AsyncLock::with_backend(name.clone(), backend.clone())
        .acquire()
        .await
        .unwrap();
    let waiter = AsyncLock::with_backend(name, backend.clone());
    let task = tokio::spawn(async move { waiter.acquire().await });
    tokio::time::sleep(Duration::from_secs(10)).await;
    holder.release().await.unwrap();
    let guard = task.await.unwrap().unwrap();
    // Backoff tops out at 200 ms, so 10 s of waiting is at least 50 attempts
    // and, with the pause doubling from 2 ms, far fewer than one per ms.
    let attempts = counting.claim_count();
    assert!(
        (50..=2000).contains(&attempts),
        "{attempts} attempts in 10 s"
    );
    guard.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_acquire_that_won_is_released_in_the_background() {
    let (faulty, backend) = faulty();
    faulty.claim_delay_after_ms.store(500, Ordering::SeqCst);
    let lock = AsyncLock::with_backend(unique_name("cancel"), backend.clone());
    let outcome = tokio::time::timeout(Duration::from_millis(100), lock.acquire()).await;
    assert!(outcome.is_err(), "the slow acquire should have timed out");
    // The server-side win must not stay held by nobody until its ttl (30 s).
    let freed = wait_for(Duration::from_secs(5), || {
        let lock = lock.clone();
        async move { (!lock.is_locked().await.unwrap()).then_some(()) }
    })
    .await;
    assert!(freed.is_some(), "a cancelled acquire left the lock held");
}

#[tokio::test(start_paused = true)]
async fn dropping_a_guard_releases_in_the_background() {
    let backend = MemoryBackend::new();
    let lock = AsyncLock::with_backend(unique_name("drop"), backend);
    let guard = lock.acquire().await.unwrap();
    drop(guard);
    let freed = wait_for(Duration::from_secs(5), || {
        let lock = lock.clone();
        async move { (!lock.is_locked().await.unwrap()).then_some(()) }
    })
    .await;
    assert!(freed.is_some());
}

/// `drop(guard)` then `try_acquire()` in the same process finds the lock
/// free even when the background release takes a while: the try waits for
/// it, within the release's own operation timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_try_after_a_drop_waits_for_a_slow_background_release() {
    let (faulty, backend) = faulty();
    faulty.release_delay_ms.store(1000, Ordering::SeqCst);
    let options = opts(30_000).operation_timeout(Duration::from_secs(5));
    let lock = AsyncLock::with_backend(unique_name("slow-drop"), backend).with_options(options);
    drop(lock.acquire().await.unwrap());
    // Past the scheduling slack of an in-flight release (250 ms), well
    // within its operation timeout and before it lands.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = lock.try_acquire().await.unwrap();
    assert!(
        again.is_some(),
        "try_acquire did not wait for the dropped guard's release in flight"
    );
}

#[tokio::test]
async fn invalid_input_is_an_error_not_a_panic() {
    let backend = MemoryBackend::new();
    let empty = AsyncLock::with_backend("", backend.clone());
    assert!(matches!(
        empty.acquire().await,
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        empty.is_locked().await,
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        empty.force_release().await,
        Err(Error::InvalidName { .. })
    ));
    let too_long = AsyncLock::with_backend(
        "x".repeat(shylock_core::backend::MAX_NAME_LEN + 1),
        backend.clone(),
    );
    assert!(matches!(
        too_long.try_acquire().await,
        Err(Error::InvalidName { .. })
    ));
    let zero_ttl = AsyncLock::with_backend("ok", backend).with_options(opts(0));
    let err = zero_ttl.acquire().await.unwrap_err();
    assert!(matches!(err, Error::InvalidOptions { .. }));
    assert!(err.to_string().contains("ttl"), "{err}");
}

#[test]
fn public_types_are_send_and_sync() {
    fn bounds<T: Send + Sync>() {}
    bounds::<AsyncLock>();
    bounds::<shylock_core::AsyncLockGuard>();
    bounds::<shylock_core::Lock>();
    bounds::<shylock_core::LockGuard>();
    bounds::<shylock_core::AsyncMultiLockGuard>();
    bounds::<shylock_core::AsyncReentrantGuard>();
    bounds::<shylock_core::blocking::Ticket>();
    bounds::<shylock_core::blocking::Semaphore>();
    bounds::<shylock_core::blocking::MultiLock>();
    bounds::<shylock_core::blocking::MultiLockGuard>();
    bounds::<shylock_core::blocking::ReentrantLock>();
    bounds::<shylock_core::blocking::ReentrantGuard>();
    bounds::<SharedBackend>();
    bounds::<MemoryBackend>();
    bounds::<LockOptions>();
    bounds::<shylock_core::backend::Grant>();
    bounds::<shylock_core::backend::Deadline>();
    bounds::<shylock_core::backend::ReleaseSignals>();
    bounds::<shylock_core::Renewal>();
    bounds::<ErrorKind>();
    bounds::<CountingBackend>();
    fn is_static<T: 'static>() {}
    is_static::<shylock_core::AsyncLockGuard>();
    is_static::<shylock_core::LockGuard>();
    is_static::<SharedBackend>();
    is_static::<Error>();
    bounds::<LockInfo>();
    bounds::<Error>();
}

#[test]
fn error_messages_say_what_to_do_next() {
    assert!(Error::NotConfigured
        .to_string()
        .contains("shylock::configure"));
    assert!(Error::AlreadyConfigured.to_string().contains("only once"));
    let lost = Error::LockLost { name: "x".into() }.to_string();
    assert!(lost.contains("fencing"), "{lost}");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_acquire_whose_request_lands_late_is_released_after_it_lands() {
    // The request is still on its way when the caller gives up; it takes
    // the lock 500 ms later. A release sent at cancellation time would find
    // nothing and leave the late win held by nobody for the whole ttl.
    let (faulty, backend) = faulty();
    faulty.claim_delay_before_ms.store(500, Ordering::SeqCst);
    let lock = AsyncLock::with_backend(unique_name("late"), backend.clone());
    let cancelled_at = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_millis(100), lock.acquire()).await;
    assert!(
        outcome.is_err(),
        "the slow acquire should have been cancelled"
    );
    faulty.claim_delay_before_ms.store(0, Ordering::SeqCst);
    let freed = wait_for(Duration::from_secs(5), || {
        let lock = lock.clone();
        async move {
            (Instant::now() >= cancelled_at + Duration::from_millis(600)
                && !lock.is_locked().await.unwrap())
            .then_some(())
        }
    })
    .await;
    assert!(freed.is_some(), "the late win stayed held by nobody");
    assert!(cancelled_at.elapsed() < Duration::from_secs(2));
    assert!(lock.try_acquire().await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn waits_and_operations_are_bounded_when_the_database_stalls() {
    let (faulty, backend) = faulty();
    let name = unique_name("stall");
    let lock = AsyncLock::with_backend(name.clone(), backend.clone())
        .with_options(LockOptions::default().operation_timeout(Duration::from_secs(5)));
    let guard = lock.acquire().await.unwrap();
    faulty.stall.store(true, Ordering::SeqCst);

    // A wait bound holds even while an attempt hangs mid-request.
    let started = Instant::now();
    let got = lock.acquire_timeout(Duration::from_secs(2)).await.unwrap();
    assert!(got.is_none());
    assert_eq!(started.elapsed(), Duration::from_secs(2));

    let waiting = lock
        .clone()
        .with_options(LockOptions::default().wait_timeout(Some(Duration::from_secs(3))));
    let started = Instant::now();
    assert!(matches!(
        waiting.acquire().await,
        Err(Error::Timeout { .. })
    ));
    assert_eq!(started.elapsed(), Duration::from_secs(3));

    // Single operations fail with TimedOut after the operation timeout.
    for (what, result) in [
        ("try_acquire", lock.try_acquire().await.map(|_| ())),
        ("is_locked", lock.is_locked().await.map(|_| ())),
        ("force_release", lock.force_release().await.map(|_| ())),
        ("extend", guard.extend(Duration::from_secs(30)).await),
    ] {
        let err = result.expect_err(what);
        assert_eq!(err.kind(), Some(ErrorKind::TimedOut), "{what}: {err}");
        assert!(err.is_transient());
        assert!(err.to_string().contains("operation_timeout"), "{err}");
    }
    let started = Instant::now();
    let err = guard.release().await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::TimedOut));
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn renewal_keeps_pace_after_extend_with_a_shorter_ttl() {
    // Configured ttl 30 s (renewal every 10 s); extend(3 s) must bring
    // renewals down to every second, or the 3 s lease runs out.
    let backend = MemoryBackend::new();
    let lock = AsyncLock::with_backend(unique_name("shorter"), backend).with_options(opts(30_000));
    let guard = lock.acquire().await.unwrap();
    guard.extend(Duration::from_secs(3)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert!(
        !guard.is_lost(),
        "the shorter lease ran out between renewals"
    );
    assert!(lock.try_acquire().await.unwrap().is_none());
    guard.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_first_renewal_comes_one_interval_after_acquire_and_release_stops_renewal() {
    let counting = CountingBackend::new(MemoryBackend::new());
    let backend = SharedBackend::from_arc(counting.clone());
    let lock = AsyncLock::with_backend(unique_name("cadence"), backend)
        .with_options(opts(3000).renewal(Renewal::Every(Duration::from_secs(1))));
    let guard = lock.acquire().await.unwrap();
    assert_eq!(guard.name(), lock.name());
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        counting.extends.load(Ordering::SeqCst),
        0,
        "renewed too early"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(counting.extends.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(counting.extends.load(Ordering::SeqCst), 2);
    guard.release().await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        counting.extends.load(Ordering::SeqCst),
        2,
        "renewal went on after release"
    );
    // The same for a dropped guard.
    let guard = lock.acquire().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(counting.extends.load(Ordering::SeqCst), 3);
    drop(guard);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(counting.extends.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn guards_report_their_name_owner_and_token() {
    let backend = MemoryBackend::new();
    let lock = AsyncLock::with_backend(unique_name("accessors"), backend);
    let guard = lock.acquire().await.unwrap();
    let info = lock.inspect().await.unwrap().unwrap();
    assert_eq!(guard.name(), lock.name());
    assert_eq!(guard.owner(), info.owner);
    assert_eq!(guard.fencing_token(), info.fencing_token);
    assert_eq!(guard.expires_at(), info.expires_at);
    assert!(format!("{guard:?}").contains(lock.name()));
    guard.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_grant_that_arrives_after_its_ttl_is_released_and_reported() {
    let (faulty, backend) = faulty();
    // The store takes the lock at once but the answer arrives after the
    // lease counts as over (ttl less the drift margin: 990 ms), though the
    // store still holds it for 5 ms more.
    faulty.claim_delay_after_ms.store(995, Ordering::SeqCst);
    let lock =
        AsyncLock::with_backend(unique_name("late"), backend.clone()).with_options(opts(1000));
    let err = lock.try_acquire().await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::TimedOut), "{err}");
    assert!(err.to_string().contains("longer ttl"), "{err}");
    faulty.claim_delay_after_ms.store(0, Ordering::SeqCst);
    let freed = wait_for(Duration::from_millis(4), || async {
        (!lock.is_locked().await.unwrap()).then_some(())
    })
    .await;
    assert!(freed.is_some(), "the late grant was not released");
}

/// `try_run` runs the work only when the lock was free, hands back its
/// output and leaves the lock free; with the lock held it runs nothing.
#[tokio::test]
async fn try_run_runs_work_only_under_a_free_lock_and_frees_it() {
    let lock = AsyncLock::with_backend(unique_name("try_run"), MemoryBackend::new());
    assert_eq!(lock.try_run(async { 42 }).await.unwrap(), Some(42));
    assert!(
        !lock.is_locked().await.unwrap(),
        "try_run left the lock held"
    );
    let holder = lock.acquire().await.unwrap();
    let ran = AtomicBool::new(false);
    let skipped = lock
        .try_run(async { ran.store(true, Ordering::SeqCst) })
        .await
        .unwrap();
    assert!(skipped.is_none(), "try_run ran under a held lock");
    assert!(
        !ran.load(Ordering::SeqCst),
        "the work ran while another held the lock"
    );
    holder.release().await.unwrap();
}

/// `lost()` returns once the lease's own deadline passed, also when nothing
/// else reported the loss (renewal off). On the real clock, so a `lost()`
/// that kept waiting past the deadline fails here at the bound instead of
/// hanging the paused-clock test above.
#[tokio::test]
async fn lost_returns_at_the_lease_deadline_on_the_real_clock() {
    let lock = AsyncLock::with_backend(unique_name("lost_real"), MemoryBackend::new())
        .with_options(opts(300).renewal(Renewal::Off));
    let guard = lock.acquire().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), guard.lost())
        .await
        .expect("lost() did not return within 10 s of a 300 ms lease");
    assert!(guard.is_lost());
}
