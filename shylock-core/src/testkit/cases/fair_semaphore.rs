//! Fair semaphores: permits in arrival order, a line that a fair
//! `try_acquire` respects, crashed and cancelled waiters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{SharedBackend, MAX_NAME_LEN};
use crate::error::Error;
use crate::fair_permits::gate_name;
use crate::lock::AsyncLock;
use crate::semaphore::AsyncSemaphore;
use crate::testkit::{op_deadline, owner, unique_name, wait_for};

use super::{lines, offers_queues, offers_semaphores, suite_options};

fn fair_semaphore(name: &str, permits: u32, backend: &SharedBackend) -> AsyncSemaphore {
    AsyncSemaphore::with_backend(name, permits, backend.clone())
        .with_options(suite_options().fair(true))
}

fn offers_fair_semaphores(backend: &SharedBackend, case: &str) -> bool {
    offers_semaphores(backend, case) && offers_queues(backend, case)
}

/// Nothing of a fair semaphore is left in the store: no permit held, no
/// ticket in its line, its gate free (waits for background releases).
async fn nothing_left(backend: &SharedBackend, semaphore: &AsyncSemaphore) {
    let gate = AsyncLock::with_backend(gate_name(semaphore.name()).unwrap(), backend.clone());
    let clean = wait_for(Duration::from_secs(15), || {
        let (backend, semaphore, gate) = (backend.clone(), semaphore.clone(), gate.clone());
        async move {
            let queued = lines(&backend)
                .list_queues(gate.name(), 10, op_deadline())
                .await
                .unwrap();
            let held = semaphore.inspect().await.unwrap().holders.len();
            (queued.is_empty() && held == 0 && !gate.is_locked().await.unwrap()).then_some(())
        }
    })
    .await;
    assert!(
        clean.is_some(),
        "a permit, a ticket or the gate of {:?} was left behind",
        semaphore.name()
    );
}

/// Waiters that joined a fair semaphore's line one after another get
/// permits in that order, whatever order their `wait()` calls run in, and
/// never more holders than permits.
pub async fn fair_semaphore_grants_permits_in_arrival_order(backend: SharedBackend) {
    if !offers_fair_semaphores(&backend, "fair_semaphore_grants_permits_in_arrival_order") {
        return;
    }
    let name = unique_name("fair-sem-order");
    let semaphore = fair_semaphore(&name, 2, &backend);
    let held = [
        semaphore.acquire().await.unwrap(),
        semaphore.acquire().await.unwrap(),
    ];
    let mut tickets = Vec::new();
    for expected in 0..6u64 {
        let ticket = semaphore.enqueue().await.unwrap();
        assert_eq!(ticket.place(), expected, "place counts the tickets ahead");
        assert_eq!(ticket.name(), name);
        tickets.push(ticket);
    }
    let grants = Arc::new(Mutex::new(Vec::new()));
    let (inside, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut waiters = Vec::new();
    // Started in reverse, so a scheduler that favoured the first caller
    // would show.
    for (i, ticket) in tickets.into_iter().enumerate().rev() {
        let (grants, inside, most) = (grants.clone(), inside.clone(), most.clone());
        waiters.push(tokio::spawn(async move {
            let guard = ticket.wait().await.unwrap();
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            grants.lock().unwrap().push((guard.fencing_token(), i));
            tokio::time::sleep(Duration::from_millis(5)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            guard.release().await.unwrap();
        }));
    }
    for guard in held {
        guard.release().await.unwrap();
    }
    for waiter in waiters {
        tokio::time::timeout(Duration::from_secs(60), waiter)
            .await
            .expect("every waiter is served")
            .unwrap();
    }
    let mut grants = grants.lock().unwrap().clone();
    grants.sort_unstable();
    let served: Vec<usize> = grants.iter().map(|(_, i)| *i).collect();
    assert_eq!(
        served,
        (0..6).collect::<Vec<_>>(),
        "permits granted in arrival order"
    );
    assert!(
        most.load(Ordering::SeqCst) <= 2,
        "more holders than permits"
    );
    nothing_left(&backend, &semaphore).await;
}

/// A fair `try_acquire` takes a free permit when nobody waits, and is
/// refused while a ticket is in line even with a permit free; a non-fair
/// acquirer of the same semaphore does not queue. Bad input gets a clear
/// error.
pub async fn fair_semaphore_try_acquire_respects_the_line(backend: SharedBackend) {
    if !offers_fair_semaphores(&backend, "fair_semaphore_try_acquire_respects_the_line") {
        return;
    }
    let name = unique_name("fair-sem-try");
    let semaphore = fair_semaphore(&name, 1, &backend);
    let first = semaphore.try_acquire().await.unwrap();
    first
        .expect("a free permit, nobody in line")
        .release()
        .await
        .unwrap();
    let ticket = semaphore.enqueue().await.unwrap();
    assert_eq!(ticket.place(), 0);
    assert_eq!(semaphore.available().await.unwrap(), 1);
    assert!(
        semaphore.try_acquire().await.unwrap().is_none(),
        "a fair try_acquire passed a ticket in line"
    );
    let barging = AsyncSemaphore::with_backend(&name, 1, backend.clone())
        .with_options(suite_options())
        .try_acquire()
        .await
        .unwrap()
        .expect("a non-fair acquirer does not queue");
    barging.release().await.unwrap();
    let turn = tokio::time::timeout(Duration::from_secs(30), ticket.wait())
        .await
        .expect("the ticket in line is served")
        .unwrap();
    assert!(semaphore.try_acquire().await.unwrap().is_none(), "all held");
    turn.release().await.unwrap();
    nothing_left(&backend, &semaphore).await;

    let long = "s".repeat(MAX_NAME_LEN);
    let err = fair_semaphore(&long, 1, &backend).try_acquire().await;
    assert!(
        matches!(err, Err(Error::InvalidName { .. })),
        "a name too long for the line: {err:?}"
    );
    let err = fair_semaphore(&name, 0, &backend).enqueue().await;
    assert!(matches!(err, Err(Error::InvalidOptions { .. })), "{err:?}");
}

/// A timed-out, a cancelled and a dropped waiter leave nothing behind: the
/// next waiter is served at once when a permit is freed.
pub async fn fair_semaphore_timeouts_and_cancels_leave_nothing(backend: SharedBackend) {
    if !offers_fair_semaphores(
        &backend,
        "fair_semaphore_timeouts_and_cancels_leave_nothing",
    ) {
        return;
    }
    let name = unique_name("fair-sem-cancel");
    let semaphore = fair_semaphore(&name, 1, &backend);
    let holder = semaphore.acquire().await.unwrap();
    let started = Instant::now();
    let timed_out = semaphore
        .acquire_timeout(Duration::from_millis(100))
        .await
        .unwrap();
    assert!(timed_out.is_none());
    assert!(started.elapsed() >= Duration::from_millis(100));
    let cancelled = tokio::time::timeout(Duration::from_millis(100), semaphore.acquire()).await;
    assert!(cancelled.is_err(), "the permit is held");
    drop(semaphore.enqueue().await.unwrap());
    let waiter = {
        let semaphore = semaphore.clone();
        tokio::spawn(async move { semaphore.acquire().await })
    };
    holder.release().await.unwrap();
    let guard = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the waiter is served; nobody gone holds up the line")
        .unwrap()
        .unwrap();
    guard.release().await.unwrap();
    nothing_left(&backend, &semaphore).await;
}

/// A waiter that crashed in line (its ticket no longer renewed) holds up
/// the semaphore's line until its ticket expires, and not longer.
pub async fn fair_semaphore_crashed_waiter_holds_the_line_one_ttl(backend: SharedBackend) {
    if !offers_fair_semaphores(
        &backend,
        "fair_semaphore_crashed_waiter_holds_the_line_one_ttl",
    ) {
        return;
    }
    let name = unique_name("fair-sem-crash");
    let semaphore = fair_semaphore(&name, 2, &backend);
    let ttl = Duration::from_millis(800);
    let joined = Instant::now();
    let ghost = lines(&backend)
        .enqueue(&gate_name(&name).unwrap(), &owner(), ttl, op_deadline())
        .await
        .unwrap();
    assert_eq!(ghost, 0);
    let guard = tokio::time::timeout(Duration::from_secs(30), semaphore.acquire())
        .await
        .expect("the crashed waiter's ticket was never skipped")
        .unwrap();
    assert!(
        joined.elapsed() >= ttl - Duration::from_millis(50),
        "served after {:?}, ahead of a live ticket",
        joined.elapsed()
    );
    guard.release().await.unwrap();
    nothing_left(&backend, &semaphore).await;
}
