//! Whom a release event wakes: pure decisions on the event's `_id`, the
//! looked-up document and the server's clock, kept apart from the change
//! stream that delivers them. A leaf: it uses nothing else of this crate.

use std::time::Duration;

use bson::{Bson, Document};

/// What a release event freed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Released {
    /// A lock, or a fair line of one.
    Lock,
    /// A permit of a semaphore.
    Permit,
    /// A read or write lease of a read/write lock (`{rwlock: name}`).
    RwLock,
}

/// The lock or semaphore an event is about, from its `_id` (the name, or
/// `{semaphore: name}`), or for long names, whose `_id` holds a digest,
/// from the `name` field of the looked-up document (absent for deletes:
/// those waiters poll).
pub(crate) fn released_name<'a>(
    id: Option<&'a Bson>,
    full: Option<&'a Document>,
) -> Option<(Released, &'a str)> {
    let stored_name = || full.and_then(|doc| doc.get_str("name").ok());
    match id? {
        Bson::Document(id) => {
            let (kind, stored) = match (id.get("semaphore"), id.get("rwlock")) {
                (Some(stored), _) => (Released::Permit, stored),
                (None, Some(stored)) => (Released::RwLock, stored),
                (None, None) => return None,
            };
            let name = match stored {
                Bson::String(name) => name.as_str(),
                _ => stored_name()?,
            };
            Some((kind, name))
        }
        Bson::String(name) => Some((Released::Lock, name.as_str())),
        _ => Some((Released::Lock, stored_name()?)),
    }
}

/// The server's clock at an event: its `wallTime` (sent from MongoDB 6.0
/// on), or else its cluster time, whole seconds of the primary's clock
/// (4.4 and 5.0), which is up to a second behind: tickets that ended in
/// that second still count as live.
pub(crate) fn server_now(
    wall_time: Option<bson::DateTime>,
    cluster_time: Option<bson::Timestamp>,
) -> Option<bson::DateTime> {
    wall_time
        .or_else(|| cluster_time.map(|t| bson::DateTime::from_millis(i64::from(t.time) * 1000)))
}

/// Whom a release event wakes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake<'a> {
    /// The fair waiter holding the `head` owner's ticket, the first live one
    /// in line; and the next one, once the head's ticket has ended (known
    /// only with the server's clock).
    Turn {
        head: &'a str,
        next: Option<(&'a str, Duration)>,
    },
    /// Nobody: the lock is held again (its holder's release will tell).
    Nobody,
    /// One waiter of the name.
    One,
}

/// Decides [`Wake`] from the looked-up document (`None`: deleted) and the
/// server's clock at the event, which alone judges ticket expiry.
pub(crate) fn wake_target(full: Option<&Document>, server_now: Option<bson::DateTime>) -> Wake<'_> {
    let Some(doc) = full else { return Wake::One };
    // Taken again before the document was read (by the head of the line,
    // say, woken by an earlier event): nobody can win until that holder's
    // release, which comes as an event of its own.
    if matches!(doc.get("owner"), Some(Bson::String(_))) {
        return Wake::Nobody;
    }
    let now = server_now.map(|t| t.timestamp_millis());
    let live = |ticket: &&Document| match (now, ticket.get("e")) {
        (Some(now), Some(Bson::DateTime(e))) => e.timestamp_millis() >= now,
        _ => true,
    };
    if let Ok(queue) = doc.get_array("queue") {
        let mut tickets = queue.iter().filter_map(Bson::as_document).filter(live);
        if let Some(first) = tickets.next() {
            if let Ok(head) = first.get_str("o") {
                // When the head's ticket ends, by the server's clock; 1 ms
                // more, as a ticket counts as live through its last ms.
                let head_ends = match (now, first.get("e")) {
                    (Some(now), Some(Bson::DateTime(e))) => {
                        let ms = e.timestamp_millis().saturating_sub(now).saturating_add(1);
                        Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
                    }
                    _ => None,
                };
                let next = tickets.next().and_then(|t| t.get_str("o").ok());
                return Wake::Turn {
                    head,
                    next: next.zip(head_ends),
                };
            }
        }
    }
    Wake::One
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn at(ms: i64) -> bson::DateTime {
        bson::DateTime::from_millis(ms)
    }

    #[test]
    fn a_release_wakes_the_first_live_ticket_only() {
        let doc = doc! { "queue": [
            { "o": "expired", "e": at(900) },
            { "o": "head", "e": at(2_000) },
            { "o": "second", "e": at(3_000) },
        ]};
        assert_eq!(
            wake_target(Some(&doc), Some(at(1_000))),
            Wake::Turn {
                head: "head",
                next: Some(("second", Duration::from_millis(1_001)))
            }
        );
        // Without the server's clock, the first ticket is taken as live,
        // and when it ends is unknown.
        assert_eq!(
            wake_target(Some(&doc), None),
            Wake::Turn {
                head: "expired",
                next: None
            }
        );
    }

    /// MongoDB 4.4 and 5.0 send no `wallTime`: the cluster time judges
    /// tickets, so a crashed first waiter's ended ticket does not hide the
    /// live one behind it.
    #[test]
    fn without_wall_time_the_cluster_time_judges_tickets() {
        let doc = doc! { "queue": [
            { "o": "crashed", "e": at(5_000) },
            { "o": "live", "e": at(60_000) },
        ]};
        let now = server_now(
            None,
            Some(bson::Timestamp {
                time: 10,
                increment: 3,
            }),
        );
        assert_eq!(now, Some(at(10_000)));
        assert_eq!(
            wake_target(Some(&doc), now),
            Wake::Turn {
                head: "live",
                next: None
            }
        );
        assert_eq!(server_now(Some(at(7)), None), Some(at(7)));
        assert_eq!(server_now(None, None), None);
    }

    /// Semaphores and locks with long names have a digest in `_id`; their
    /// waiters are found by the `name` stored in the document.
    #[test]
    fn long_names_are_read_from_the_document() {
        // A digest `_id`, as key.rs makes for long names.
        let digest = Bson::Binary(bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: vec![7; 32],
        });
        let full = doc! { "name": "s".repeat(2000) };
        let permit = Bson::Document(doc! { "semaphore": digest.clone() });
        assert_eq!(
            released_name(Some(&permit), Some(&full)),
            Some((Released::Permit, "s".repeat(2000).as_str()))
        );
        assert_eq!(released_name(Some(&permit), None), None);
        assert_eq!(
            released_name(Some(&digest), Some(&full)),
            Some((Released::Lock, "s".repeat(2000).as_str()))
        );
        let short = Bson::Document(doc! { "semaphore": "pool" });
        assert_eq!(
            released_name(Some(&short), None),
            Some((Released::Permit, "pool"))
        );
        let lock = Bson::String("orders".into());
        assert_eq!(
            released_name(Some(&lock), None),
            Some((Released::Lock, "orders"))
        );
        let rw = Bson::Document(doc! { "rwlock": "cache" });
        assert_eq!(
            released_name(Some(&rw), None),
            Some((Released::RwLock, "cache"))
        );
        let long_rw = Bson::Document(doc! { "rwlock": digest });
        assert_eq!(
            released_name(Some(&long_rw), Some(&full)),
            Some((Released::RwLock, "s".repeat(2000).as_str()))
        );
    }

    #[test]
    fn a_lock_taken_again_wakes_nobody_and_a_free_one_wakes_one() {
        let taken = doc! { "owner": "someone", "queue": [] };
        assert_eq!(wake_target(Some(&taken), None), Wake::Nobody);
        // Taken by the head of the line before the event was read: the
        // next in line cannot win yet, so it is not woken.
        let taken_by_head = doc! { "owner": "head", "queue": [{ "o": "second", "e": at(3_000) }] };
        assert_eq!(
            wake_target(Some(&taken_by_head), Some(at(1_000))),
            Wake::Nobody
        );
        let all_expired = doc! { "queue": [{ "o": "gone", "e": at(5) }] };
        assert_eq!(wake_target(Some(&all_expired), Some(at(10))), Wake::One);
        assert_eq!(wake_target(Some(&doc! {}), None), Wake::One);
        assert_eq!(wake_target(None, None), Wake::One);
    }
}
