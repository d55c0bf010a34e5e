//! When a fair ticket makes its first attempt, on a backend that signals a
//! ticket's turn and watches every release (as MongoDB's change stream and
//! SQLite's file watcher do): first in line, at once; behind others, not
//! before its turn. Runs on tokio's paused clock.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shylock_core::backend::{Backend, Deadline, Grant, QueueBackend};
use shylock_core::testkit::{unique_name, CountingBackend};
use shylock_core::{
    AsyncLock, LockInfo, LockOptions, MemoryBackend, QueueInfo, Result, SharedBackend,
};

/// The memory backend, saying that it signals turns and has watched every
/// release for an hour. Its turn signals are never notified: these tests
/// end before any turn would come.
#[derive(Debug)]
struct Turns {
    inner: MemoryBackend,
}

#[async_trait::async_trait]
impl Backend for Turns {
    fn releases_watched_since(&self, _name: &str) -> Option<std::time::Instant> {
        Some(std::time::Instant::now() - Duration::from_secs(3600))
    }
    fn release_signal(&self, name: &str) -> Option<Arc<tokio::sync::Notify>> {
        self.inner.release_signal(name)
    }
    fn queues(&self) -> Option<&dyn QueueBackend> {
        Some(self)
    }
    async fn claim(&self, n: &str, o: &str, t: Duration, d: Deadline) -> Result<Option<Grant>> {
        self.inner.claim(n, o, t, d).await
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
impl QueueBackend for Turns {
    async fn enqueue(&self, n: &str, o: &str, t: Duration, d: Deadline) -> Result<u64> {
        self.inner.enqueue(n, o, t, d).await
    }
    async fn claim_fair(
        &self,
        n: &str,
        o: &str,
        t: Duration,
        d: Deadline,
    ) -> Result<Option<Grant>> {
        self.inner.claim_fair(n, o, t, d).await
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
    fn turn_signal(&self, _name: &str, _owner: &str) -> Option<Arc<tokio::sync::Notify>> {
        Some(Arc::default())
    }
}

fn fair_lock(name: &str) -> (AsyncLock, Arc<CountingBackend>) {
    let counting = CountingBackend::new(Turns {
        inner: MemoryBackend::new(),
    });
    let lock = AsyncLock::with_backend(name, SharedBackend::from_arc(counting.clone()))
        .with_options(LockOptions::default().fair(true));
    (lock, counting)
}

/// First in line on a free lock: the ticket tries at once and wins, rather
/// than waiting for a turn signal that no release will send.
#[tokio::test(start_paused = true)]
async fn the_first_in_line_tries_at_once() {
    let (lock, _) = fair_lock(&unique_name("turns-first"));
    let ticket = lock.enqueue().await.unwrap();
    assert_eq!(ticket.place(), 0);
    let started = tokio::time::Instant::now();
    let guard = ticket.wait().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "the first in line waited {:?} for a turn",
        started.elapsed()
    );
    guard.release().await.unwrap();
}

/// Behind another ticket, while every release is watched: no attempt before
/// the turn signal (an attempt could only lose).
#[tokio::test(start_paused = true)]
async fn a_ticket_behind_others_makes_no_attempt_before_its_turn() {
    let (lock, counting) = fair_lock(&unique_name("turns-behind"));
    let holder = lock.acquire().await.unwrap();
    let first = lock.enqueue().await.unwrap();
    let second = lock.enqueue().await.unwrap();
    assert_eq!(second.place(), 1);
    let claims = counting.claim_count();
    let waiting = tokio::spawn(second.wait());
    // Less than the shortest pause of a watched waiter (1.5 s).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        counting.claim_count(),
        claims,
        "the second in line tried before its turn"
    );
    waiting.abort();
    drop(first);
    holder.release().await.unwrap();
}
