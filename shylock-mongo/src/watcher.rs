//! The release watcher: a change stream on the lock collection that wakes
//! this process's waiters when another process releases a lock or a
//! semaphore permit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bson::Document;
use mongodb::Collection;
use shylock_core::backend::ReleaseSignals;
use tokio::sync::watch;

use crate::queries;

/// How long the stream stays open without any waiter in this process (it
/// holds a pooled connection while open).
const IDLE_CLOSE: Duration = Duration::from_secs(5);

/// Owns the watcher's state; the backend only asks it to run and to wake.
#[derive(Debug)]
pub(crate) struct ReleaseWatcher {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    collection: Collection<Document>,
    signals: ReleaseSignals,
    permit_signals: ReleaseSignals,
    enabled: bool,
    running: AtomicBool,
    /// Which started task is the current one.
    generation: AtomicU64,
    /// True while a change stream is open and delivering.
    ready: watch::Sender<bool>,
    /// When the open stream first delivered: every release after this
    /// instant reaches the signals.
    ready_since: Mutex<Option<Instant>>,
}

impl ReleaseWatcher {
    /// A watcher for `collection`; with `enabled` false it never runs.
    pub(crate) fn new(collection: Collection<Document>, enabled: bool) -> Self {
        ReleaseWatcher {
            shared: Arc::new(Shared {
                collection,
                signals: ReleaseSignals::new(),
                permit_signals: ReleaseSignals::new(),
                enabled,
                running: AtomicBool::new(false),
                generation: AtomicU64::new(0),
                ready: watch::channel(false).0,
                ready_since: Mutex::new(None),
            }),
        }
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

    /// Starts the stream once, on the current runtime, if watching is on.
    pub(crate) fn ensure_running(&self) {
        let shared = &self.shared;
        if !shared.enabled || shared.running.swap(true, Ordering::SeqCst) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let generation = shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
                handle.spawn(run(Arc::downgrade(shared), generation));
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
        self.signals.has_subscribers() || self.permit_signals.has_subscribers()
    }

    /// Wakes a waiter for the document `key` names: a lock (string or
    /// binary `_id`; binary ids carry no name, so those waiters poll) or a
    /// semaphore (`_id: {semaphore: name}`).
    fn wake(&self, key: &Document) {
        match key.get("_id") {
            Some(bson::Bson::String(name)) => self.signals.notify(name),
            Some(bson::Bson::Document(id)) => {
                if let Ok(name) = id.get_str("semaphore") {
                    self.permit_signals.notify(name);
                }
            }
            _ => {}
        }
    }

    /// The stream delivered (an event or an empty batch).
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
async fn run(shared: Weak<Shared>, generation: u64) {
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
    let Some(collection) = shared.upgrade().map(|s| s.collection.clone()) else {
        return;
    };
    let opened = collection
        .watch()
        .pipeline([queries::released_events()])
        .max_await_time(Duration::from_secs(1))
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
                if let Some(key) = &event.document_key {
                    s.wake(key);
                }
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
