//! The release watcher: a change stream on the lock collection that wakes
//! this process's waiters when another process releases a lock or a
//! semaphore permit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use bson::{Bson, Document};
use mongodb::change_stream::event::ChangeStreamEvent;
use mongodb::options::FullDocumentType;
use mongodb::Collection;
use shylock_core::backend::ReleaseSignals;
use tokio::sync::watch;

use crate::queries;

/// How long the stream stays open without any waiter in this process (it
/// holds a pooled connection while open).
const IDLE_CLOSE: Duration = Duration::from_secs(5);

/// How long the server holds an idle `getMore` before answering with an
/// empty batch: while nothing changes, the stream costs one command per
/// this interval and process.
const AWAIT: Duration = Duration::from_secs(3);

/// One backend handle's view of a watcher; the backend only asks it to run
/// and to wake. Handles on the same collection of the same deployment in
/// one process share the watcher (one change stream, one set of signals).
#[derive(Debug)]
pub(crate) struct ReleaseWatcher {
    shared: Arc<Shared>,
    /// This handle's collection: a stream this handle starts uses its
    /// client.
    collection: Collection<Document>,
}

/// The watchers of this process that handles may share, by deployment and
/// namespace.
fn shared_watchers() -> &'static Mutex<HashMap<String, Weak<Shared>>> {
    static WATCHERS: OnceLock<Mutex<HashMap<String, Weak<Shared>>>> = OnceLock::new();
    WATCHERS.get_or_init(Mutex::default)
}

#[derive(Debug)]
struct Shared {
    signals: ReleaseSignals,
    permit_signals: ReleaseSignals,
    /// Read/write locks: readers may enter, a writer may win.
    read_signals: ReleaseSignals,
    write_signals: ReleaseSignals,
    enabled: bool,
    running: AtomicBool,
    /// Which started task is the current one.
    generation: AtomicU64,
    /// True while a change stream is open.
    ready: watch::Sender<bool>,
    /// When the current stream opened: every release after this instant
    /// reaches the signals.
    ready_since: Mutex<Option<Instant>>,
}

impl ReleaseWatcher {
    /// A watcher for `collection`; with `enabled` false it never runs.
    /// With a `share` key (the deployment's identity and the namespace),
    /// the watcher of an earlier handle with the same key is joined if it
    /// is still alive.
    pub(crate) fn new(
        collection: Collection<Document>,
        enabled: bool,
        share: Option<String>,
    ) -> Self {
        let fresh = || {
            Arc::new(Shared {
                signals: ReleaseSignals::new(),
                permit_signals: ReleaseSignals::new(),
                read_signals: ReleaseSignals::new(),
                write_signals: ReleaseSignals::new(),
                enabled,
                running: AtomicBool::new(false),
                generation: AtomicU64::new(0),
                ready: watch::channel(false).0,
                ready_since: Mutex::new(None),
            })
        };
        let shared = match share.filter(|_| enabled) {
            Some(key) => {
                let mut watchers = shared_watchers().lock().unwrap_or_else(|p| p.into_inner());
                match watchers.get(&key).and_then(Weak::upgrade) {
                    Some(shared) => shared,
                    None => {
                        watchers.retain(|_, w| w.strong_count() > 0);
                        let shared = fresh();
                        watchers.insert(key, Arc::downgrade(&shared));
                        shared
                    }
                }
            }
            None => fresh(),
        };
        ReleaseWatcher { shared, collection }
    }

    /// Since when every release in the collection, by any process, reaches
    /// the signals: the stream is open and has delivered since then.
    pub(crate) fn watched_since(&self) -> Option<Instant> {
        *self
            .shared
            .ready_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The per-name signals (also notified by this process's own releases).
    pub(crate) fn signals(&self) -> &ReleaseSignals {
        &self.shared.signals
    }

    /// The per-semaphore signals for permit waiters.
    pub(crate) fn permit_signals(&self) -> &ReleaseSignals {
        &self.shared.permit_signals
    }

    /// The per-name signals for readers of read/write locks.
    pub(crate) fn read_signals(&self) -> &ReleaseSignals {
        &self.shared.read_signals
    }

    /// The per-name signals for writers of read/write locks.
    pub(crate) fn write_signals(&self) -> &ReleaseSignals {
        &self.shared.write_signals
    }

    /// Starts the stream once, on the current runtime, if watching is on.
    pub(crate) fn ensure_running(&self) {
        let shared = &self.shared;
        if !shared.enabled || shared.running.swap(true, Ordering::SeqCst) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let generation = shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
                handle.spawn(run(
                    Arc::downgrade(shared),
                    self.collection.clone(),
                    generation,
                ));
            }
            Err(_) => shared.running.store(false, Ordering::SeqCst),
        }
    }

    /// Starts the stream and waits at most `timeout` until it delivers.
    pub(crate) async fn ready(&self, timeout: Duration) -> bool {
        self.ensure_running();
        let mut ready = self.shared.ready.subscribe();
        tokio::time::timeout(timeout, ready.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Shared {
    fn has_waiters(&self) -> bool {
        self.signals.has_subscribers()
            || self.permit_signals.has_subscribers()
            || self.read_signals.has_subscribers()
            || self.write_signals.has_subscribers()
    }

    /// Wakes the waiter that can win after the release `event`: for a
    /// semaphore (`_id: {semaphore: name}`), one permit waiter; for a lock,
    /// nobody if it was taken again meanwhile, else the fair waiter first
    /// in line if there is a line (only where that waiter is in this
    /// process), or else one waiter of the name.
    fn wake(self: &Arc<Self>, event: &ChangeStreamEvent<Document>) {
        let id = event.document_key.as_ref().and_then(|key| key.get("_id"));
        let full = event.full_document.as_ref();
        let Some((kind, name)) = released_name(id, full) else {
            return;
        };
        if kind == Released::Permit {
            self.permit_signals.notify(name);
            return;
        }
        if kind == Released::RwLock {
            // Every reader and one writer try again: the document's state
            // decides who wins.
            self.read_signals.notify_every(name);
            self.write_signals.notify(name);
            return;
        }
        match wake_target(full, server_now(event.wall_time, event.cluster_time)) {
            Wake::Turn { head, next } => {
                self.signals.notify_turn(name, head);
                // If the first in line has crashed, the next one may go
                // when that ticket ends (by the server's clock), not at
                // its next poll.
                if let Some((next, after)) = next {
                    if self.signals.has_turn(name, next) {
                        let (name, next) = (name.to_owned(), next.to_owned());
                        let shared = Arc::downgrade(self);
                        tokio::spawn(async move {
                            tokio::time::sleep(after).await;
                            if let Some(s) = shared.upgrade() {
                                s.signals.notify_turn(&name, &next);
                            }
                        });
                    }
                }
            }
            Wake::Nobody => {}
            Wake::One => self.signals.notify(name),
        }
    }

    /// The stream is open and answering (opened, an event, an empty batch).
    fn delivered(&self) {
        self.ready.send_replace(true);
        let mut since = self.ready_since.lock().unwrap_or_else(|p| p.into_inner());
        since.get_or_insert_with(Instant::now);
    }

    fn stopped(&self) {
        *self.ready_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.ready.send_replace(false);
        self.running.store(false, Ordering::SeqCst);
    }
}

/// Follows releases and wakes waiters. Ends when the backend is dropped,
/// nobody waited for a few seconds, or the stream fails or is invalidated
/// (then waiters poll with backoff until the next waiter starts a new one).
async fn run(shared: Weak<Shared>, collection: Collection<Document>, generation: u64) {
    // Marks the watcher stopped however the task ends, also when its
    // runtime shuts down and drops it: otherwise waiters would count on a
    // stream that no longer runs. Only while this task is the current one.
    struct Stopped(Weak<Shared>, u64);
    impl Drop for Stopped {
        fn drop(&mut self) {
            if let Some(s) = self.0.upgrade() {
                if s.generation.load(Ordering::SeqCst) == self.1 {
                    s.stopped();
                }
            }
        }
    }
    let _stopped = Stopped(shared.clone(), generation);
    let opened = collection
        .watch()
        .pipeline([queries::released_events()])
        // The document as it is when the event is read: who is first in
        // line, or whether someone took the lock again meanwhile.
        .full_document(FullDocumentType::UpdateLookup)
        .max_await_time(AWAIT)
        .await;
    let mut stream = match opened {
        Ok(stream) => stream,
        Err(error) => {
            tracing::debug!(%error, "change streams unavailable; waiters poll with backoff only");
            if let Some(s) = shared.upgrade() {
                s.stopped();
            }
            return;
        }
    };
    // Open: the stream reports every change after the server's answer to
    // the `aggregate`, so releases from now on reach the signals.
    match shared.upgrade() {
        Some(s) => s.delivered(),
        None => return,
    }
    // Time, not events: every write to the collection ends a `getMore`, so
    // counting returns would close a busy stream at once.
    let mut idle_since: Option<std::time::Instant> = None;
    loop {
        let Some(s) = shared.upgrade() else { return };
        if s.has_waiters() {
            idle_since = None;
        } else if idle_since
            .get_or_insert_with(std::time::Instant::now)
            .elapsed()
            >= IDLE_CLOSE
        {
            s.stopped();
            // A waiter that arrived meanwhile may have seen us running.
            if s.has_waiters() && !s.running.swap(true, Ordering::SeqCst) {
                idle_since = None;
                continue;
            }
            return;
        }
        drop(s);
        let event = stream.next_if_any().await;
        let Some(s) = shared.upgrade() else { return };
        match event {
            Ok(Some(event)) => {
                s.delivered();
                s.wake(&event);
            }
            Ok(None) if stream.is_alive() => {
                // An empty batch: the stream works.
                s.delivered();
            }
            Ok(None) => {
                // Invalidated (collection or database dropped or renamed):
                // the cursor is closed and would answer at once forever.
                tracing::debug!(
                    "release watcher's stream was invalidated; waiters poll with backoff only"
                );
                s.stopped();
                return;
            }
            Err(error) => {
                tracing::debug!(%error, "release watcher stopped; waiters poll with backoff only");
                s.stopped();
                return;
            }
        }
    }
}

/// What a release event freed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Released {
    Lock,
    Permit,
    RwLock,
}

/// The lock or semaphore an event is about, from its `_id` (the name, or
/// `{semaphore: name}`), or for long names, whose `_id` holds a digest,
/// from the `name` field of the looked-up document (absent for deletes:
/// those waiters poll).
fn released_name<'a>(
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
fn server_now(
    wall_time: Option<bson::DateTime>,
    cluster_time: Option<bson::Timestamp>,
) -> Option<bson::DateTime> {
    wall_time
        .or_else(|| cluster_time.map(|t| bson::DateTime::from_millis(i64::from(t.time) * 1000)))
}

/// Whom a release event wakes.
#[derive(Debug, PartialEq, Eq)]
enum Wake<'a> {
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
fn wake_target(full: Option<&Document>, server_now: Option<bson::DateTime>) -> Wake<'_> {
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
        let digest = crate::key::document_id(&"s".repeat(2000));
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
