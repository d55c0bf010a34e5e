//! The cap on a line of fair waiters ([`MAX_WAITERS`]). Filling a line
//! through `enqueue` takes as many round trips as the cap, so each
//! backend's test writes a full line with its own driver (or, where that is
//! cheap, enqueues), then calls [`a_full_line_refuses_new_owners`].

use std::time::Duration;

use super::{op_deadline, owner};
use crate::backend::{SharedBackend, MAX_WAITERS};
use crate::error::{Error, ErrorKind};

/// The owner of the `i`-th ticket of a line written by a test.
pub fn seeded_owner(i: u64) -> String {
    format!("seeded-{i:05}")
}

/// `name`'s line holds [`MAX_WAITERS`] live tickets, the first owned by
/// [`seeded_owner(0)`](seeded_owner): a new owner is refused with
/// [`ErrorKind::LimitReached`] and a message naming the cap; an owner
/// already in line keeps its place; once one leaves, a new owner gets the
/// last place.
pub async fn a_full_line_refuses_new_owners(backend: SharedBackend, name: &str) {
    let line = backend
        .queues()
        .expect("a_full_line_refuses_new_owners needs a backend with fair queues");
    let ttl = Duration::from_secs(60);
    let newcomer = owner();
    match line.enqueue(name, &newcomer, ttl, op_deadline()).await {
        Err(Error::Backend { kind, message, .. }) => {
            assert_eq!(kind, ErrorKind::LimitReached, "{message}");
            assert!(
                message.contains(&MAX_WAITERS.to_string()),
                "the message names the cap: {message}"
            );
        }
        other => panic!("a full line must refuse a new owner, got {other:?}"),
    }
    assert!(
        !line
            .extend_ticket(name, &newcomer, ttl, op_deadline())
            .await
            .unwrap(),
        "the refused owner has no ticket"
    );
    assert_eq!(
        line.enqueue(name, &seeded_owner(0), ttl, op_deadline())
            .await
            .unwrap(),
        0,
        "an owner in line keeps its place in a full line"
    );
    assert!(line
        .leave_queue(name, &seeded_owner(0), op_deadline())
        .await
        .unwrap());
    assert_eq!(
        line.enqueue(name, &newcomer, ttl, op_deadline())
            .await
            .unwrap(),
        MAX_WAITERS - 1,
        "a place freed is taken at the end of the line"
    );
}
