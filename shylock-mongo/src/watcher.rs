//! The release watcher: a change stream on the lock collection that wakes
//! this process's waiters when another process releases a lock or a
//! semaphore permit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use bson::Document;
use mongodb::change_stream::event::ChangeStreamEvent;
use mongodb::options::FullDocumentType;
use mongodb::Collection;
use shylock_core::backend::ReleaseSignals;
use tokio::sync::watch;

use crate::queries;
use crate::wake::{released_name, server_now, wake_target, Released, Wake};

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
