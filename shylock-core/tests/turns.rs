//! When a fair ticket makes its first attempt, on a backend that signals a
//! ticket's turn and watches every release (as MongoDB's change stream and
//! SQLite's file watcher do): first in line, at once; behind others, not
//! before its turn. Runs on tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use shylock_core::testkit::{unique_name, CountingBackend};
use shylock_core::{AsyncLock, LockOptions, MemoryBackend, SharedBackend};

fn fair_lock(name: &str) -> (AsyncLock, Arc<CountingBackend>) {
    // Says that it signals turns and has watched every release for an
    // hour. Its turn signals are never notified: these tests end before any
    // turn would come.
    let counting = CountingBackend::new(MemoryBackend::new());
    counting.watch_releases();
    counting.signal_turns();
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
