//! Semaphore limits and waits, and fair tickets (waits, leaving, keeping a
//! place, what a spent ticket leaves behind), on the memory
//! backend.

use std::time::Duration;

use shylock_core::testkit::unique_name;
use shylock_core::{
    AsyncLock, AsyncSemaphore, Error, LockOptions, MemoryBackend, Renewal, MAX_PERMITS,
};

/// From 1 to `MAX_PERMITS` permits are accepted; 0 and one more than the
/// limit are refused before anything is sent.
#[tokio::test]
async fn a_semaphore_takes_from_one_to_max_permits() {
    let backend = MemoryBackend::new();
    for permits in [1, MAX_PERMITS] {
        let semaphore =
            AsyncSemaphore::with_backend(unique_name("limits"), permits, backend.clone());
        let permit = semaphore.try_acquire().await.unwrap();
        assert!(permit.is_some(), "{permits} permits refused");
        permit.unwrap().release().await.unwrap();
    }
    for permits in [0, MAX_PERMITS + 1] {
        let semaphore =
            AsyncSemaphore::with_backend(unique_name("limits"), permits, backend.clone());
        match semaphore.try_acquire().await {
            Err(Error::InvalidOptions { reason }) => {
                assert!(
                    reason.contains(&format!("use 1 to {MAX_PERMITS}")),
                    "{reason}"
                )
            }
            other => panic!("{permits} permits: {other:?}"),
        }
    }
}

/// `acquire()` on a full semaphore waits up to the options' wait timeout: a
/// permit freed within it is granted, and without one it times out at the
/// bound, not before.
#[tokio::test(start_paused = true)]
async fn a_full_semaphore_waits_up_to_its_wait_timeout() {
    let backend = MemoryBackend::new();
    let options = LockOptions::default()
        .ttl(Duration::from_secs(600))
        .wait_timeout(Some(Duration::from_secs(2)));
    let semaphore =
        AsyncSemaphore::with_backend(unique_name("waits"), 1, backend).with_options(options);
    let holder = semaphore.acquire().await.unwrap();
    let waiter = {
        let semaphore = semaphore.clone();
        tokio::spawn(async move { semaphore.acquire().await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    holder.release().await.unwrap();
    let permit = waiter
        .await
        .unwrap()
        .expect("a permit freed within the wait timeout");
    let started = tokio::time::Instant::now();
    match semaphore.acquire().await {
        Err(Error::Timeout { .. }) => {}
        other => panic!("a full semaphore answered {other:?}"),
    }
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "timed out after {:?}, before the 2 s wait timeout",
        started.elapsed()
    );
    permit.release().await.unwrap();
}

/// A ticket's debug output names its lock and its place in line.
#[tokio::test]
async fn a_ticket_debug_names_its_lock_and_place() {
    let name = unique_name("ticket-debug");
    let lock = AsyncLock::with_backend(&name, MemoryBackend::new())
        .with_options(LockOptions::default().fair(true));
    let holder = lock.acquire().await.unwrap();
    let ticket = lock.enqueue().await.unwrap();
    let shown = format!("{ticket:?}");
    assert!(
        shown.contains("AsyncTicket") && shown.contains(&name) && shown.contains("place: 0"),
        "{shown}"
    );
    drop(ticket);
    holder.release().await.unwrap();
}

/// A ticket waits up to its bound, from `wait()` with the options' wait
/// timeout and from `wait_timeout`: a lock freed within it is granted.
#[tokio::test(start_paused = true)]
async fn a_ticket_waits_up_to_its_bound() {
    let name = unique_name("ticket-wait");
    let options = LockOptions::default()
        .ttl(Duration::from_secs(600))
        .fair(true)
        .wait_timeout(Some(Duration::from_secs(2)));
    let lock = AsyncLock::with_backend(&name, MemoryBackend::new()).with_options(options);
    for bounded_by_options in [true, false] {
        let holder = lock.acquire().await.unwrap();
        let ticket = lock.enqueue().await.unwrap();
        let waiter = tokio::spawn(async move {
            if bounded_by_options {
                ticket.wait().await.map(Some)
            } else {
                ticket.wait_timeout(Duration::from_secs(2)).await
            }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        holder.release().await.unwrap();
        let guard = waiter
            .await
            .unwrap()
            .unwrap()
            .expect("a lock freed within the bound");
        guard.release().await.unwrap();
    }
}

/// `leave()` takes the ticket out of the line at once and says it was
/// there: the next ticket is first.
#[tokio::test]
async fn leaving_the_line_says_the_ticket_was_there() {
    let name = unique_name("ticket-leave");
    let lock = AsyncLock::with_backend(&name, MemoryBackend::new())
        .with_options(LockOptions::default().fair(true));
    let holder = lock.acquire().await.unwrap();
    let first = lock.enqueue().await.unwrap();
    assert_eq!(first.place(), 0);
    assert!(first.leave().await.unwrap(), "the ticket was in line");
    let next = lock.enqueue().await.unwrap();
    assert_eq!(next.place(), 0, "the ticket that left still stands in line");
    drop(next);
    holder.release().await.unwrap();
}

/// A ticket that waits longer than its ttl keeps its place: its lease is
/// extended while it waits (every ttl / 3, or at the renewal interval), so
/// a later arrival stays behind it. The holder is another handle with a
/// long ttl.
#[tokio::test(start_paused = true)]
async fn a_waiting_ticket_keeps_its_place_past_its_ttl() {
    for renewal in [Renewal::Auto, Renewal::Off] {
        let name = unique_name("ticket-kept");
        let backend = MemoryBackend::new();
        let options = LockOptions::default()
            .ttl(Duration::from_secs(3))
            .renewal(renewal)
            .fair(true);
        let lock = AsyncLock::with_backend(&name, backend.clone()).with_options(options);
        let holder = AsyncLock::with_backend(&name, backend)
            .with_options(LockOptions::default().ttl(Duration::from_secs(60)))
            .acquire()
            .await
            .unwrap();
        let first = lock.enqueue().await.unwrap();
        let first = tokio::spawn(first.wait());
        tokio::time::sleep(Duration::from_secs(5)).await;
        let second = lock.enqueue().await.unwrap();
        assert_eq!(
            second.place(),
            1,
            "the first ticket lost its place after one ttl ({renewal:?})"
        );
        let second = tokio::spawn(second.wait());
        tokio::time::sleep(Duration::from_secs(5)).await;
        holder.release().await.unwrap();
        let guard = tokio::time::timeout(Duration::from_secs(1), first)
            .await
            .expect("the first in line is served first")
            .unwrap()
            .unwrap();
        guard.release().await.unwrap();
        second.await.unwrap().unwrap().release().await.unwrap();
    }
}

/// A ticket that left the line, or won and released, leaves nothing behind:
/// no renewal of it puts its owner back in line later.
#[tokio::test(start_paused = true)]
async fn a_ticket_that_left_or_won_keeps_nothing_in_line() {
    let name = unique_name("ticket-gone");
    let options = LockOptions::default()
        .ttl(Duration::from_secs(3))
        .fair(true);
    let lock = AsyncLock::with_backend(&name, MemoryBackend::new()).with_options(options);
    let holder = lock.acquire().await.unwrap();
    let left = lock.enqueue().await.unwrap();
    assert!(left.leave().await.unwrap());
    let winner = lock.enqueue().await.unwrap();
    let winner = tokio::spawn(winner.wait());
    holder.release().await.unwrap();
    winner.await.unwrap().unwrap().release().await.unwrap();
    // Several ticket renewal periods (ttl / 3) later, the line is empty.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let next = lock.enqueue().await.unwrap();
    assert_eq!(next.place(), 0, "a spent ticket came back into the line");
}
