//! Fair queues: arrival order, tickets with leases of their own, leaving
//! the line, cancelled waiters, and what a non-fair acquirer does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::SharedBackend;
use crate::lock::AsyncLock;
use crate::testkit::{op_deadline, owner, unique_name, wait_for};

use super::{lines, offers_queues, suite_options};

fn fair_lock(name: &str, backend: &SharedBackend) -> AsyncLock {
    AsyncLock::with_backend(name, backend.clone()).with_options(suite_options().fair(true))
}

/// Waiters that joined the line one after another are granted the lock in
/// that order, whatever order their `wait()` calls run in.
pub async fn fair_waiters_granted_in_arrival_order(backend: SharedBackend) {
    if !offers_queues(&backend, "fair_waiters_granted_in_arrival_order") {
        return;
    }
    let name = unique_name("fair-order");
    let lock = fair_lock(&name, &backend);
    let holder = lock.acquire().await.unwrap();
    let mut tickets = Vec::new();
    for expected in 0..6u64 {
        let ticket = lock.enqueue().await.unwrap();
        assert_eq!(ticket.place(), expected, "place counts the tickets ahead");
        tickets.push(ticket);
    }
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    // Started in reverse, so a scheduler that favoured the first caller
    // would show.
    for (i, ticket) in tickets.into_iter().enumerate().rev() {
        let order = order.clone();
        waiters.push(tokio::spawn(async move {
            let guard = ticket.wait().await.unwrap();
            order.lock().unwrap().push((i, guard.fencing_token()));
            tokio::time::sleep(Duration::from_millis(2)).await;
            guard.release().await.unwrap();
        }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    holder.release().await.unwrap();
    for waiter in waiters {
        tokio::time::timeout(Duration::from_secs(60), waiter)
            .await
            .expect("every waiter is served")
            .unwrap();
    }
    let order = order.lock().unwrap().clone();
    let served: Vec<usize> = order.iter().map(|(i, _)| *i).collect();
    assert_eq!(
        served,
        (0..6).collect::<Vec<_>>(),
        "granted in arrival order"
    );
    assert!(order.windows(2).all(|w| w[0].1 < w[1].1), "tokens increase");
}

/// A ticket whose lease ran out (its waiter crashed) is skipped, but not
/// before it ran out.
pub async fn expired_ticket_is_skipped(backend: SharedBackend) {
    if !offers_queues(&backend, "expired_ticket_is_skipped") {
        return;
    }
    let name = unique_name("fair-expired");
    let ghost = owner();
    let ttl = Duration::from_millis(800);
    let joined = Instant::now();
    assert_eq!(
        lines(&backend)
            .enqueue(&name, &ghost, ttl, op_deadline())
            .await
            .unwrap(),
        0
    );
    let next = owner();
    assert_eq!(
        lines(&backend)
            .enqueue(&name, &next, Duration::from_secs(30), op_deadline())
            .await
            .unwrap(),
        1
    );
    // The lock is free, but the first ticket is not ours.
    let early = lines(&backend)
        .claim_fair(&name, &next, Duration::from_secs(30), op_deadline())
        .await
        .unwrap();
    if joined.elapsed() < ttl {
        assert!(
            early.is_none(),
            "the second in line took the lock ahead of a live ticket"
        );
    }
    let won = wait_for(Duration::from_secs(20), || {
        let (backend, name, next) = (backend.clone(), name.clone(), next.clone());
        async move {
            lines(&backend)
                .claim_fair(&name, &next, Duration::from_secs(30), op_deadline())
                .await
                .unwrap()
        }
    })
    .await;
    assert!(won.is_some(), "the expired ticket was never skipped");
    assert!(joined.elapsed() >= ttl - Duration::from_millis(50));
    assert!(
        !lines(&backend)
            .extend_ticket(&name, &ghost, ttl, op_deadline())
            .await
            .unwrap(),
        "an expired ticket cannot be extended"
    );
    assert!(
        !lines(&backend)
            .leave_queue(&name, &next, op_deadline())
            .await
            .unwrap(),
        "the grant removed the winner's ticket"
    );
}

/// Tickets are owner-checked, a second `enqueue` by one owner keeps its
/// place, and leaving the line lets the next one in.
pub async fn tickets_are_owner_checked_and_idempotent(backend: SharedBackend) {
    if !offers_queues(&backend, "tickets_are_owner_checked_and_idempotent") {
        return;
    }
    let name = unique_name("fair-tickets");
    let ttl = Duration::from_secs(30);
    let (a, b) = (owner(), owner());
    assert_eq!(
        lines(&backend)
            .enqueue(&name, &a, ttl, op_deadline())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        lines(&backend)
            .enqueue(&name, &b, ttl, op_deadline())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        lines(&backend)
            .enqueue(&name, &a, ttl, op_deadline())
            .await
            .unwrap(),
        0,
        "a retry keeps its place"
    );
    assert!(lines(&backend)
        .extend_ticket(&name, &a, ttl, op_deadline())
        .await
        .unwrap());
    assert!(!lines(&backend)
        .extend_ticket(&name, &owner(), ttl, op_deadline())
        .await
        .unwrap());
    assert!(!lines(&backend)
        .leave_queue(&name, &owner(), op_deadline())
        .await
        .unwrap());
    assert!(lines(&backend)
        .claim_fair(&name, &b, ttl, op_deadline())
        .await
        .unwrap()
        .is_none());
    assert!(lines(&backend)
        .leave_queue(&name, &a, op_deadline())
        .await
        .unwrap());
    assert!(!lines(&backend)
        .leave_queue(&name, &a, op_deadline())
        .await
        .unwrap());
    let grant = lines(&backend)
        .claim_fair(&name, &b, ttl, op_deadline())
        .await
        .unwrap();
    assert!(grant.is_some(), "first in line after the other left");
    // The holder is a plain lock holder now.
    assert!(backend.release(&name, &b, op_deadline()).await.unwrap());
}

/// A fair `try_acquire` waits for nobody, but does not jump the line; a
/// lock used without `fair` barges in whenever the lock is free.
pub async fn fair_try_acquire_respects_the_line_and_others_barge(backend: SharedBackend) {
    if !offers_queues(
        &backend,
        "fair_try_acquire_respects_the_line_and_others_barge",
    ) {
        return;
    }
    let name = unique_name("fair-barge");
    let queued = owner();
    lines(&backend)
        .enqueue(&name, &queued, Duration::from_secs(30), op_deadline())
        .await
        .unwrap();
    let fair = fair_lock(&name, &backend);
    assert!(
        fair.try_acquire().await.unwrap().is_none(),
        "a fair try_acquire jumped the line"
    );
    let plain =
        AsyncLock::with_backend(name.clone(), backend.clone()).with_options(suite_options());
    let barged = plain.try_acquire().await.unwrap();
    assert!(barged.is_some(), "a non-fair acquirer takes a free lock");
    barged.unwrap().release().await.unwrap();
    assert!(lines(&backend)
        .leave_queue(&name, &queued, op_deadline())
        .await
        .unwrap());
    let guard = fair.try_acquire().await.unwrap();
    assert!(guard.is_some(), "an empty line and a free lock");
    guard.unwrap().release().await.unwrap();
}

/// Cancelled `enqueue` and `wait` calls, and dropped tickets, leave no
/// ticket behind: afterwards the line is empty.
pub async fn cancelled_tickets_leave_the_line(backend: SharedBackend) {
    if !offers_queues(&backend, "cancelled_tickets_leave_the_line") {
        return;
    }
    let name = unique_name("fair-cancel");
    let lock = fair_lock(&name, &backend);
    let holder = lock.acquire().await.unwrap();
    for i in 0..60u64 {
        let cut = Duration::from_micros(50 + (i * 97) % 2_000);
        match i % 3 {
            // Cut while the enqueue is on its way.
            0 => {
                let _ = tokio::time::timeout(cut, lock.enqueue()).await;
            }
            // Cut while waiting.
            1 => {
                let _ =
                    tokio::time::timeout(cut, async { lock.enqueue().await.unwrap().wait().await })
                        .await;
            }
            // A ticket dropped unused.
            _ => drop(lock.enqueue().await.unwrap()),
        }
    }
    holder.release().await.unwrap();
    // Tickets are left in the background: wait (bounded, far below the
    // 30 s ticket ttl) until the line is empty, which a fair try sees.
    let free = wait_for(Duration::from_secs(15), || {
        let lock = lock.clone();
        async move { lock.try_acquire().await.unwrap() }
    })
    .await;
    let guard = free.expect("a ticket was left in line");
    guard.release().await.unwrap();
}

/// `acquire()` with `fair(true)` waits in line, and a wait timeout leaves
/// the line.
pub async fn fair_acquire_and_timeout_leave_no_ticket(backend: SharedBackend) {
    if !offers_queues(&backend, "fair_acquire_and_timeout_leave_no_ticket") {
        return;
    }
    let name = unique_name("fair-timeout");
    let lock = fair_lock(&name, &backend);
    let holder = lock.acquire().await.unwrap();
    let timed_out = lock
        .acquire_timeout(Duration::from_millis(100))
        .await
        .unwrap();
    assert!(timed_out.is_none());
    let waiter = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.acquire().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    holder.release().await.unwrap();
    let guard = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the fair waiter is served")
        .unwrap()
        .unwrap();
    guard.release().await.unwrap();
    let free = wait_for(Duration::from_secs(15), || {
        let lock = lock.clone();
        async move { lock.try_acquire().await.unwrap() }
    })
    .await;
    free.expect("the timed-out waiter left a ticket")
        .release()
        .await
        .unwrap();
}

/// Waiters that join a new line at the same moment (the first writers of
/// its record race) all get a place, each a different one.
pub async fn concurrent_first_enqueues_all_get_a_place(backend: SharedBackend) {
    if !offers_queues(&backend, "concurrent_first_enqueues_all_get_a_place") {
        return;
    }
    let name = unique_name("fair-first");
    let joins: Vec<_> = (0..8)
        .map(|_| {
            let (backend, name) = (backend.clone(), name.clone());
            tokio::spawn(async move {
                lines(&backend)
                    .enqueue(&name, &owner(), Duration::from_secs(30), op_deadline())
                    .await
            })
        })
        .collect();
    let mut places = Vec::new();
    for join in joins {
        places.push(join.await.unwrap().expect("a racing enqueue failed"));
    }
    places.sort_unstable();
    assert_eq!(places, (0..8).collect::<Vec<u64>>(), "one place each");
}

/// For backends that answer [`QueueBackend::turn_signal`](crate::backend::QueueBackend::turn_signal)
/// and see releases made elsewhere: a release made through `holder_side`
/// (another process, or a handle standing in for one) wakes only the fair
/// waiter first in line on `waiter_side`, not the second nor a non-fair
/// waiter of the name; the next release wakes the second.
pub async fn a_release_wakes_only_the_first_in_line(
    holder_side: SharedBackend,
    waiter_side: SharedBackend,
) {
    if !offers_queues(&waiter_side, "a_release_wakes_only_the_first_in_line") {
        return;
    }
    let name = unique_name("turns");
    let ttl = Duration::from_secs(30);
    assert!(holder_side
        .claim(&name, "holder", ttl, op_deadline())
        .await
        .unwrap()
        .is_some());
    let first = lines(&waiter_side)
        .turn_signal(&name, "first")
        .expect("the backend answers turn_signal");
    let second = lines(&waiter_side).turn_signal(&name, "second").unwrap();
    // A waiter of the default kind (this also starts the watcher), which a
    // line keeps asleep.
    let plain = waiter_side.release_signal(&name).unwrap();
    for (owner, place) in [("first", 0), ("second", 1)] {
        let got = lines(&waiter_side)
            .enqueue(&name, owner, ttl, op_deadline())
            .await
            .unwrap();
        assert_eq!(got, place);
    }
    let watched = wait_for(Duration::from_secs(10), || {
        let (backend, name) = (waiter_side.clone(), name.clone());
        async move { backend.releases_watched_since(&name) }
    })
    .await;
    assert!(watched.is_some(), "releases elsewhere were never watched");
    let (first_woken, second_woken, plain_woken) =
        (first.notified(), second.notified(), plain.notified());
    tokio::pin!(first_woken, second_woken, plain_woken);
    for signal in [&mut first_woken, &mut second_woken, &mut plain_woken] {
        signal.as_mut().enable();
    }
    assert!(holder_side
        .release(&name, "holder", op_deadline())
        .await
        .unwrap());
    tokio::time::timeout(Duration::from_secs(15), &mut first_woken)
        .await
        .expect("the release did not wake the waiter first in line");
    // Releases are handled in order: this one is done, and woke nobody
    // else.
    let idle = |f: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>| {
        use std::future::Future;
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        f.poll(&mut cx).is_pending()
    };
    assert!(idle(second_woken.as_mut()), "the second in line was woken");
    assert!(idle(plain_woken.as_mut()), "a non-fair waiter was woken");
    // The first in line wins; its release wakes the second.
    assert!(lines(&waiter_side)
        .claim_fair(&name, "first", ttl, op_deadline())
        .await
        .unwrap()
        .is_some());
    assert!(holder_side
        .release(&name, "first", op_deadline())
        .await
        .unwrap());
    tokio::time::timeout(Duration::from_secs(15), &mut second_woken)
        .await
        .expect("the release did not wake the next in line");
    assert!(idle(plain_woken.as_mut()), "a non-fair waiter was woken");
    assert!(lines(&waiter_side)
        .leave_queue(&name, "second", op_deadline())
        .await
        .unwrap());
}

/// For backends that answer [`QueueBackend::turn_signal`](crate::backend::QueueBackend::turn_signal)
/// and watch releases: a fair waiter that joined the line behind another,
/// while releases were watched, makes no attempt before its turn (each
/// such attempt could only lose, and on MongoDB it is a write the server
/// serializes with the claim that can win); it is granted right after the
/// one ahead of it.
pub async fn a_waiter_behind_others_tries_only_at_its_turn(
    holder_side: SharedBackend,
    waiter_side: SharedBackend,
) {
    if !offers_queues(
        &waiter_side,
        "a_waiter_behind_others_tries_only_at_its_turn",
    ) {
        return;
    }
    let name = unique_name("turn-first");
    let ttl = Duration::from_secs(30);
    let counting = crate::testkit::CountingBackend::new(waiter_side);
    let waiter = SharedBackend::from_arc(counting.clone());
    assert!(holder_side
        .claim(&name, "holder", ttl, op_deadline())
        .await
        .unwrap()
        .is_some());
    let lock = fair_lock(&name, &waiter);
    let first = lock.enqueue().await.unwrap();
    assert_eq!(first.place(), 0);
    let first = tokio::spawn(first.wait());
    // The first waiter's failed attempt starts the backend's watch.
    let watched = wait_for(Duration::from_secs(10), || {
        let (backend, name) = (waiter.clone(), name.clone());
        async move { backend.releases_watched_since(&name) }
    })
    .await;
    assert!(watched.is_some(), "releases were never watched");
    let second = lock.enqueue().await.unwrap();
    assert_eq!(second.place(), 1);
    let second = tokio::spawn(second.wait());
    assert!(holder_side
        .release(&name, "holder", op_deadline())
        .await
        .unwrap());
    let limit = Duration::from_secs(15);
    let first = tokio::time::timeout(limit, first)
        .await
        .expect("the release did not reach the first in line")
        .unwrap()
        .unwrap();
    let first_owner = first.owner().to_owned();
    first.release().await.unwrap();
    let second = tokio::time::timeout(limit, second)
        .await
        .expect("the first one's release did not reach the second in line")
        .unwrap()
        .unwrap();
    let log = counting.fair_claim_log();
    let first_won = log
        .iter()
        .position(|(owner, won)| *owner == first_owner && *won)
        .expect("the first one's winning claim is logged");
    let second_tried = log
        .iter()
        .position(|(owner, _)| owner == second.owner())
        .expect("the second one's claims are logged");
    assert!(
        second_tried > first_won,
        "the second in line tried before its turn: {log:?}"
    );
    assert!(
        log[second_tried].1,
        "the second in line lost its first try after its turn: {log:?}"
    );
    second.release().await.unwrap();
}

/// The lock's live holder is treated as the holder by the line: its retry
/// of a fair claim (a win whose answer was lost) wins again with the same
/// token though another ticket is now first, and an `enqueue` by it (a
/// ticket renewal that raced its own win) puts no ticket in the line that
/// would block the others until it expired.
pub async fn the_holder_wins_again_and_takes_no_ticket(backend: SharedBackend) {
    if !offers_queues(&backend, "the_holder_wins_again_and_takes_no_ticket") {
        return;
    }
    let name = unique_name("fair-holder");
    let ttl = Duration::from_secs(30);
    let (a, b) = (owner(), owner());
    let line = lines(&backend);
    assert_eq!(
        line.enqueue(&name, &a, ttl, op_deadline()).await.unwrap(),
        0
    );
    let won = line
        .claim_fair(&name, &a, ttl, op_deadline())
        .await
        .unwrap()
        .expect("first in line, lock free");
    assert_eq!(
        line.enqueue(&name, &b, ttl, op_deadline()).await.unwrap(),
        0,
        "the winner's ticket left the line"
    );
    let again = line
        .claim_fair(&name, &a, ttl, op_deadline())
        .await
        .unwrap()
        .expect("a retry by the live holder wins whatever the line");
    assert_eq!(
        again.fencing_token, won.fencing_token,
        "a retry keeps the token"
    );
    // A late renewal of the holder's ticket finds it gone and enqueues.
    line.enqueue(&name, &a, ttl, op_deadline()).await.unwrap();
    assert!(
        !line
            .extend_ticket(&name, &a, ttl, op_deadline())
            .await
            .unwrap(),
        "the live holder took no ticket"
    );
    assert!(backend.release(&name, &a, op_deadline()).await.unwrap());
    let next = line
        .claim_fair(&name, &b, ttl, op_deadline())
        .await
        .unwrap()
        .expect("the next in line is first once the holder released");
    assert!(next.fencing_token > won.fencing_token);
    assert!(backend.release(&name, &b, op_deadline()).await.unwrap());
}

/// For backends that answer [`QueueBackend::turn_signal`](crate::backend::QueueBackend::turn_signal)
/// and watch releases: when the first in line leaves while the lock is
/// free (its wait timed out, it was cancelled), the next in line is woken
/// in whichever process it waits, not at its next poll. `first_side` and
/// `waiter_side` act as two processes.
pub async fn a_first_waiter_leaving_wakes_the_next(
    first_side: SharedBackend,
    waiter_side: SharedBackend,
) {
    let case = "a_first_waiter_leaving_wakes_the_next";
    if !offers_queues(&waiter_side, case) {
        return;
    }
    let name = unique_name("leaving-first");
    let ttl = Duration::from_secs(30);
    let (first, next) = (owner(), owner());
    let Some(turn) = lines(&waiter_side).turn_signal(&name, &next) else {
        eprintln!("{case}: not run, the backend signals no turns");
        return;
    };
    // The waiter side watches releases, as it does while a waiter waits.
    let _watching = waiter_side.release_signal(&name);
    let watched = wait_for(Duration::from_secs(10), || {
        let (backend, name) = (waiter_side.clone(), name.clone());
        async move { backend.releases_watched_since(&name) }
    })
    .await;
    assert!(watched.is_some(), "releases were never watched");
    assert_eq!(
        lines(&first_side)
            .enqueue(&name, &first, ttl, op_deadline())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        lines(&waiter_side)
            .enqueue(&name, &next, ttl, op_deadline())
            .await
            .unwrap(),
        1
    );
    let woken = turn.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    assert!(lines(&first_side)
        .leave_queue(&name, &first, op_deadline())
        .await
        .unwrap());
    tokio::time::timeout(Duration::from_secs(15), woken)
        .await
        .expect("the first in line left a free lock, and the next in line was not woken");
    assert!(lines(&waiter_side)
        .claim_fair(&name, &next, ttl, op_deadline())
        .await
        .unwrap()
        .is_some());
    assert!(waiter_side
        .release(&name, &next, op_deadline())
        .await
        .unwrap());
}

/// `list_queues` shows the lines with live tickets under a prefix, in name
/// order, with their lengths; emptied lines, locks without a line and other
/// prefixes are left out; `limit` cuts the list; a long name (stored under
/// a digest by some backends) is listed by its full name.
pub async fn queue_list_by_prefix(backend: SharedBackend) {
    if !offers_queues(&backend, "queue_list_by_prefix") {
        return;
    }
    let prefix = format!("{}/", unique_name("queue-list"));
    let (a, b, emptied) = (
        format!("{prefix}a"),
        format!("{prefix}b"),
        format!("{prefix}c"),
    );
    let long = format!("{prefix}{}", "z".repeat(1100));
    let ttl = Duration::from_secs(30);
    let line = lines(&backend);
    let (o1, o2, o3) = (owner(), owner(), owner());
    for (name, who) in [
        (&a, &o1),
        (&a, &o2),
        (&a, &o3),
        (&b, &o1),
        (&emptied, &o2),
        (&long, &o3),
    ] {
        line.enqueue(name, who, ttl, op_deadline()).await.unwrap();
    }
    assert!(line
        .leave_queue(&emptied, &o2, op_deadline())
        .await
        .unwrap());
    assert!(backend
        .claim(&format!("{prefix}lock"), &o1, ttl, op_deadline())
        .await
        .unwrap()
        .is_some());
    line.enqueue(&unique_name("queue-list-outside"), &o1, ttl, op_deadline())
        .await
        .unwrap();

    let listed = line.list_queues(&prefix, 100, op_deadline()).await.unwrap();
    let seen: Vec<(&str, u64)> = listed
        .iter()
        .map(|q| (q.name.as_str(), q.waiting))
        .collect();
    assert_eq!(
        seen,
        [(a.as_str(), 3), (b.as_str(), 1), (long.as_str(), 1)],
        "listed lines"
    );
    let first = line.list_queues(&prefix, 1, op_deadline()).await.unwrap();
    assert_eq!(first.len(), 1, "limit 1");
    assert_eq!(first[0].name, a);
}
