//! A caller that stops waiting while its claim is on its way to the store:
//! the claim finishes in the background and whatever it won or recorded is
//! released. Until then this process's next attempt at, or look at, the
//! name waits for it, so giving up is never followed by this process
//! finding its own abandoned claim in the way. Runs on tokio's paused
//! clock against the memory backend with slow claims. Also: what
//! `leave()` answers for a ticket someone else took out of the line.

use std::sync::Arc;
use std::time::Duration;

use shylock_core::backend::{Deadline, QueueBackend};
use shylock_core::testkit::{assert_readers_enter, unique_name, CountingBackend};
use shylock_core::{AsyncLock, AsyncRwLock, LockOptions, MemoryBackend, SharedBackend};

/// How long a slow claim takes to reach the store, and its answer to come
/// back.
const LEG: Duration = Duration::from_millis(200);

/// The memory backend (kept for looking behind the wrapper's back), and
/// the wrapper whose claims and enqueues from the `fast`-th on take [`LEG`]
/// to reach it and [`LEG`] to answer.
fn slow_claims(fast: u64) -> (MemoryBackend, Arc<CountingBackend>, SharedBackend) {
    let memory = MemoryBackend::new();
    let counting = CountingBackend::new(memory.clone());
    counting.slow_claims(fast, LEG);
    let backend = SharedBackend::from_arc(counting.clone());
    (memory, counting, backend)
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
    let (_, _, backend) = slow_claims(2);
    let rw = AsyncRwLock::with_backend(unique_name("late-write"), backend).with_options(options());
    let reader = rw.read().await.unwrap();
    let started = tokio::time::Instant::now();
    let timed_out = rw.write_timeout(Duration::from_millis(50)).await.unwrap();
    assert!(timed_out.is_none());
    assert!(started.elapsed() < LEG, "gave up at its deadline");
    // The late claim has now reached the store and recorded the intent
    // again; its answer is still on its way.
    tokio::time::sleep_until(started + LEG + LEG / 2).await;
    assert_readers_enter(&rw).await;
    reader.release().await.unwrap();
}

/// An acquire that gave up while its claim was on its way, and the claim
/// then won: this process's next `try_acquire` and `inspect` come after
/// the win was released, and find the lock free.
#[tokio::test(start_paused = true)]
async fn a_late_win_of_an_abandoned_acquire_is_released_before_the_next_try() {
    let (_, _, backend) = slow_claims(0);
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
    let (_, _, backend) = slow_claims(1);
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
    let (memory, counting, backend) = slow_claims(u64::MAX);
    let name = unique_name("left-already");
    let lock = AsyncLock::with_backend(&name, backend).with_options(options().fair(true));
    let holder = lock.acquire().await.unwrap();
    let ticket = lock.enqueue().await.unwrap();
    let owner = counting.enqueued_owners().pop().unwrap();
    let deadline = Deadline::after(Duration::from_secs(5));
    assert!(memory.leave_queue(&name, &owner, deadline).await.unwrap());
    assert!(
        !ticket.leave().await.unwrap(),
        "the ticket was still in line"
    );
    holder.release().await.unwrap();
}
