//! A caller that stops waiting while its claim is on its way to the store:
//! the claim finishes in the background and whatever it won or recorded is
//! released. Until then this process's next attempt at, or look at, the
//! name waits for it, so giving up is never followed by this process
//! finding its own abandoned claim in the way. Runs on tokio's paused
//! clock against the memory backend with slow claims. Also: what
//! `leave()` answers for a ticket someone else took out of the line.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shylock_core::backend::{Backend, Deadline, Grant, QueueBackend, RwLockBackend};
use shylock_core::testkit::unique_name;
use shylock_core::{
    AsyncLock, AsyncRwLock, LockInfo, LockOptions, MemoryBackend, QueueInfo, Result, RwLockInfo,
    SharedBackend,
};

/// How long a slow claim takes to reach the store, and its answer to come
/// back.
const LEG: Duration = Duration::from_millis(200);

/// The memory backend whose claims and enqueues, from the `fast`-th on,
/// take [`LEG`] to reach it and [`LEG`] to answer.
#[derive(Debug)]
struct SlowClaims {
    inner: MemoryBackend,
    fast: u32,
    claims: AtomicU32,
    /// The owner of the last place asked for.
    enqueued: std::sync::Mutex<String>,
}

impl SlowClaims {
    fn shared(fast: u32) -> SharedBackend {
        Self::new(fast).into()
    }

    fn new(fast: u32) -> Arc<Self> {
        Arc::new(SlowClaims {
            inner: MemoryBackend::new(),
            fast,
            claims: AtomicU32::new(0),
            enqueued: std::sync::Mutex::default(),
        })
    }

    async fn slowly<T>(&self, claim: impl std::future::Future<Output = T>) -> T {
        let slow = self.claims.fetch_add(1, Ordering::SeqCst) >= self.fast;
        if slow {
            tokio::time::sleep(LEG).await;
        }
        let answer = claim.await;
        if slow {
            tokio::time::sleep(LEG).await;
        }
        answer
    }
}

#[async_trait::async_trait]
impl Backend for SlowClaims {
    fn rwlocks(&self) -> Option<&dyn RwLockBackend> {
        Some(self)
    }
    fn queues(&self) -> Option<&dyn QueueBackend> {
        Some(self)
    }
    async fn claim(&self, n: &str, o: &str, t: Duration, d: Deadline) -> Result<Option<Grant>> {
        self.slowly(self.inner.claim(n, o, t, d)).await
    }
    async fn extend(
        &self,
        n: &str,
        o: &str,
        t: Duration,
        d: Deadline,
    ) -> Result<Option<SystemTime>> {
        self.inner.extend(n, o, t, d).await
    }
    async fn release(&self, n: &str, o: &str, d: Deadline) -> Result<bool> {
        self.inner.release(n, o, d).await
    }
    async fn inspect(&self, n: &str, d: Deadline) -> Result<Option<LockInfo>> {
        self.inner.inspect(n, d).await
    }
    async fn list(&self, p: &str, a: Option<&str>, l: usize, d: Deadline) -> Result<Vec<LockInfo>> {
        self.inner.list(p, a, l, d).await
    }
    async fn force_release(&self, n: &str, d: Deadline) -> Result<bool> {
        self.inner.force_release(n, d).await
    }
}

#[async_trait::async_trait]
impl RwLockBackend for SlowClaims {
    async fn claim_read(
        &self,
        n: &str,
        o: &str,
        t: Duration,
        w: bool,
        d: Deadline,
    ) -> Result<Option<Grant>> {
        self.slowly(self.inner.claim_read(n, o, t, w, d)).await
    }
    async fn claim_write(
        &self,
        n: &str,
        o: &str,
        t: Duration,
        i: bool,
        d: Deadline,
    ) -> Result<Option<Grant>> {
        self.slowly(self.inner.claim_write(n, o, t, i, d)).await
    }
    async fn extend_rw(
        &self,
        n: &str,
        o: &str,
        t: Duration,
        d: Deadline,
    ) -> Result<Option<SystemTime>> {
        self.inner.extend_rw(n, o, t, d).await
    }
    async fn release_rw(&self, n: &str, o: &str, d: Deadline) -> Result<bool> {
        self.inner.release_rw(n, o, d).await
    }
    async fn inspect_rwlock(&self, n: &str, d: Deadline) -> Result<RwLockInfo> {
        self.inner.inspect_rwlock(n, d).await
    }
}

#[async_trait::async_trait]
impl QueueBackend for SlowClaims {
    async fn enqueue(&self, n: &str, o: &str, t: Duration, d: Deadline) -> Result<u64> {
        *self.enqueued.lock().unwrap() = o.to_owned();
        self.slowly(self.inner.enqueue(n, o, t, d)).await
    }
    async fn claim_fair(
        &self,
        n: &str,
        o: &str,
        t: Duration,
        d: Deadline,
    ) -> Result<Option<Grant>> {
        self.slowly(self.inner.claim_fair(n, o, t, d)).await
    }
    async fn extend_ticket(&self, n: &str, o: &str, t: Duration, d: Deadline) -> Result<bool> {
        self.inner.extend_ticket(n, o, t, d).await
    }
    async fn leave_queue(&self, n: &str, o: &str, d: Deadline) -> Result<bool> {
        self.inner.leave_queue(n, o, d).await
    }
    async fn list_queues(&self, p: &str, l: usize, d: Deadline) -> Result<Vec<QueueInfo>> {
        self.inner.list_queues(p, l, d).await
    }
}

fn options() -> LockOptions {
    LockOptions::default()
        .ttl(Duration::from_secs(60))
        .operation_timeout(Duration::from_secs(5))
}

/// A writer that timed out while its last claim was on its way: the claim
/// records the intent again after the writer withdrew it, and is then
/// withdrawn in the background. A reader of this process, and a look at
/// the lock, come after that.
#[tokio::test(start_paused = true)]
async fn a_timed_out_writers_late_claim_does_not_hold_readers_back() {
    // The reader's claim and the writer's first are quick; the writer's
    // second (made at once after it subscribed) is slow.
    let backend = SlowClaims::shared(2);
    let rw = AsyncRwLock::with_backend(unique_name("late-write"), backend).with_options(options());
    let reader = rw.read().await.unwrap();
    let started = tokio::time::Instant::now();
    let timed_out = rw.write_timeout(Duration::from_millis(50)).await.unwrap();
    assert!(timed_out.is_none());
    assert!(started.elapsed() < LEG, "gave up at its deadline");
    // The late claim has now reached the store and recorded the intent
    // again; its answer is still on its way.
    tokio::time::sleep_until(started + LEG + LEG / 2).await;
    assert!(
        !rw.inspect().await.unwrap().writer_waiting,
        "a writer that timed out still holds readers back"
    );
    rw.try_read()
        .await
        .unwrap()
        .expect("readers enter after the writer gave up")
        .release()
        .await
        .unwrap();
    reader.release().await.unwrap();
}

/// An acquire that gave up while its claim was on its way, and the claim
/// then won: this process's next `try_acquire` and `inspect` come after
/// the win was released, and find the lock free.
#[tokio::test(start_paused = true)]
async fn a_late_win_of_an_abandoned_acquire_is_released_before_the_next_try() {
    let backend = SlowClaims::shared(0);
    let lock = AsyncLock::with_backend(unique_name("late-win"), backend).with_options(options());
    let started = tokio::time::Instant::now();
    assert!(lock
        .acquire_timeout(Duration::from_millis(50))
        .await
        .unwrap()
        .is_none());
    assert!(started.elapsed() < LEG, "gave up at its deadline");
    // The abandoned claim has won in the store; its answer is on its way.
    tokio::time::sleep_until(started + LEG + LEG / 2).await;
    assert!(
        lock.inspect().await.unwrap().is_none(),
        "the abandoned win shows as held"
    );
    let guard = lock.try_acquire().await.unwrap();
    assert!(
        guard.is_some(),
        "this process's own abandoned win refused it"
    );
}

/// A caller that went away while its place in line was being given: the
/// place the store gave anyway leaves the line, so the next ticket is
/// first.
#[tokio::test(start_paused = true)]
async fn a_place_given_after_its_caller_left_leaves_the_line() {
    // The holder's claim is quick; every enqueue is slow.
    let backend = SlowClaims::shared(1);
    let lock = AsyncLock::with_backend(unique_name("late-place"), backend)
        .with_options(options().fair(true));
    let holder = lock.acquire().await.unwrap();
    let gave_up = tokio::time::timeout(LEG + LEG / 2, lock.enqueue()).await;
    assert!(gave_up.is_err(), "the enqueue answered within one leg");
    // The place was given at one leg; its answer reached nobody.
    tokio::time::sleep(LEG).await;
    let next = lock.enqueue().await.unwrap();
    assert_eq!(next.place(), 0, "the abandoned place still stands in line");
    drop(next);
    holder.release().await.unwrap();
}

/// `leave()` answers whether the ticket was still in line: not when
/// someone else took it out first.
#[tokio::test(start_paused = true)]
async fn leaving_says_when_the_ticket_was_no_longer_in_line() {
    let slow = SlowClaims::new(u32::MAX);
    let backend: SharedBackend = slow.clone().into();
    let name = unique_name("left-already");
    let lock = AsyncLock::with_backend(&name, backend).with_options(options().fair(true));
    let holder = lock.acquire().await.unwrap();
    let ticket = lock.enqueue().await.unwrap();
    let owner = slow.enqueued.lock().unwrap().clone();
    let deadline = Deadline::after(Duration::from_secs(5));
    assert!(slow
        .inner
        .leave_queue(&name, &owner, deadline)
        .await
        .unwrap());
    assert!(
        !ticket.leave().await.unwrap(),
        "the ticket was still in line"
    );
    holder.release().await.unwrap();
}
