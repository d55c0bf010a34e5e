//! The release listener: one `LISTEN` connection per process, database and
//! channel, that wakes this process's waiters when any process releases a
//! lock, a permit or a read/write lease (the release statements call
//! `pg_notify`).
//!
//! A listener counts as working only once a probe it sent itself through
//! the pool (`pg_notify` with a random payload) came back; it probes again
//! every [`PROBE_EVERY`]. Behind a transaction pooler `LISTEN` lands on a
//! server connection that other clients then use, so probes go missing:
//! the listener then stops and waiters poll with backoff, as when the
//! listener cannot connect at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use shylock_core::backend::ReleaseSignals;

use crate::conn::random_u64;
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::watch;

/// How long the listener stays connected without any waiter in this
/// process (it holds a connection while open).
const IDLE_CLOSE: Duration = Duration::from_secs(5);

/// How often a working listener checks itself with a probe.
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(30);

/// How long a probe may take before the listener counts as not working.
const PROBE_LIMIT: Duration = Duration::from_secs(5);

/// One backend handle's view of the listener of its database and channel.
#[derive(Debug, Clone)]
pub(crate) struct Listener {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    signals: ReleaseSignals,
    permit_signals: ReleaseSignals,
    read_signals: ReleaseSignals,
    write_signals: ReleaseSignals,
    enabled: bool,
    pool: PgPool,
    channel: String,
    running: AtomicBool,
    generation: AtomicU64,
    ready: watch::Sender<bool>,
    ready_since: Mutex<Option<Instant>>,
}

fn shared_listeners() -> &'static Mutex<HashMap<String, Weak<Shared>>> {
    static LISTENERS: OnceLock<Mutex<HashMap<String, Weak<Shared>>>> = OnceLock::new();
    LISTENERS.get_or_init(Mutex::default)
}

impl Listener {
    /// The listener of `pool`'s database and `channel` in this process (a
    /// new one if none is alive); with `share` false, or `enabled` false
    /// (one that never runs), one of this handle alone.
    pub(crate) fn new(pool: PgPool, channel: &str, enabled: bool, share: bool) -> Self {
        let fresh = |pool: PgPool| {
            Arc::new(Shared {
                signals: ReleaseSignals::new(),
                permit_signals: ReleaseSignals::new(),
                read_signals: ReleaseSignals::new(),
                write_signals: ReleaseSignals::new(),
                enabled,
                pool,
                channel: channel.to_owned(),
                running: AtomicBool::new(false),
                generation: AtomicU64::new(0),
                ready: watch::channel(false).0,
                ready_since: Mutex::new(None),
            })
        };
        if !enabled || !share {
            return Listener {
                shared: fresh(pool),
            };
        }
        let options = pool.connect_options();
        let key = format!(
            "{}:{}/{}@{}#{channel}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or(""),
            options.get_username(),
        );
        let mut all = shared_listeners().lock().unwrap_or_else(|p| p.into_inner());
        let shared = match all.get(&key).and_then(Weak::upgrade) {
            Some(shared) => shared,
            None => {
                all.retain(|_, w| w.strong_count() > 0);
                let shared = fresh(pool);
                all.insert(key, Arc::downgrade(&shared));
                shared
            }
        };
        Listener { shared }
    }

    pub(crate) fn signals(&self) -> &ReleaseSignals {
        &self.shared.signals
    }

    pub(crate) fn permit_signals(&self) -> &ReleaseSignals {
        &self.shared.permit_signals
    }

    /// The readers waiting for read/write locks.
    pub(crate) fn read_signals(&self) -> &ReleaseSignals {
        &self.shared.read_signals
    }

    /// The writers waiting for read/write locks.
    pub(crate) fn write_signals(&self) -> &ReleaseSignals {
        &self.shared.write_signals
    }

    /// Since when every release reaches the signals.
    pub(crate) fn watched_since(&self) -> Option<Instant> {
        *self
            .shared
            .ready_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the listener once, on shylock's background runtime (so it
    /// outlives the caller's runtime), if listening is on.
    pub(crate) fn ensure_running(&self) {
        let shared = &self.shared;
        if !shared.enabled || shared.running.swap(true, Ordering::SeqCst) {
            return;
        }
        match shylock_core::background_runtime() {
            Ok(runtime) => {
                let generation = shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
                runtime.spawn(run(Arc::downgrade(shared), generation));
            }
            Err(_) => shared.running.store(false, Ordering::SeqCst),
        }
    }

    /// Starts the listener and waits at most `timeout` until its probe came
    /// back.
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

    fn delivered(&self) {
        self.ready.send_replace(true);
        let mut since = self.ready_since.lock().unwrap_or_else(|p| p.into_inner());
        since.get_or_insert_with(Instant::now);
    }

    fn unsure(&self) {
        *self.ready_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.ready.send_replace(false);
    }

    fn stopped(&self) {
        self.unsure();
        self.running.store(false, Ordering::SeqCst);
    }

    /// Wakes whom the release `payload` concerns: `l KEY HEAD` (a lock;
    /// the first live ticket's owner, or nothing), `p KEY` (a permit), `r
    /// KEY` (every reader of a read/write lock: its writer left or stopped
    /// waiting) or `w KEY` (a writer: the read/write lock became free).
    fn wake(&self, payload: &str) {
        let mut parts = payload.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("p"), Some(key), _) => self.permit_signals.notify(key),
            (Some("r"), Some(key), _) => self.read_signals.notify_every(key),
            (Some("w"), Some(key), _) => self.write_signals.notify(key),
            (Some("l"), Some(key), Some(head)) if !head.is_empty() => {
                self.signals.notify_turn(key, head);
            }
            (Some("l"), Some(key), _) => self.signals.notify(key),
            _ => {}
        }
    }

    async fn send_probe(&self, token: &str) -> bool {
        // The channel is checked to be a plain identifier and the token is
        // hex, so both are safe as literals; the simple protocol keeps the
        // probe one round trip with nothing prepared, behind a pooler too.
        let sql = format!(
            "SELECT count(*) FROM (SELECT pg_notify('{}', 'probe {token}')) AS n",
            self.channel
        );
        sqlx::raw_sql(&sql).execute(&self.pool).await.is_ok()
    }
}

/// Follows notifications and wakes waiters. Ends when the backend is
/// dropped, nobody waited for a few seconds, a probe went missing or the
/// connection failed for good (then waiters poll with backoff until the
/// next waiter starts a new listener).
async fn run(shared: Weak<Shared>, generation: u64) {
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
    let Some(s) = shared.upgrade() else { return };
    let (pool, channel) = (s.pool.clone(), s.channel.clone());
    drop(s);
    let mut listener = match PgListener::connect_with(&pool).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::debug!(%error, "LISTEN unavailable; waiters poll with backoff only");
            return;
        }
    };
    if let Err(error) = listener.listen(&channel).await {
        tracing::debug!(%error, "LISTEN refused; waiters poll with backoff only");
        return;
    }
    let token = format!("{:016x}", random_u64());
    // (when the pending probe was sent), None when none is pending
    let mut probe: Option<Instant> = None;
    let mut last_probe_answer = Instant::now() - PROBE_EVERY;
    let mut idle_since: Option<Instant> = None;
    loop {
        let Some(s) = shared.upgrade() else { return };
        if s.has_waiters() {
            idle_since = None;
        } else if idle_since.get_or_insert_with(Instant::now).elapsed() >= IDLE_CLOSE {
            s.stopped();
            if s.has_waiters() && !s.running.swap(true, Ordering::SeqCst) {
                idle_since = None;
                continue;
            }
            return;
        }
        match probe {
            Some(sent) if sent.elapsed() >= PROBE_LIMIT => {
                tracing::debug!(
                    "the listener's probe did not come back (a transaction pooler?); waiters \
                     poll with backoff only"
                );
                return;
            }
            None if last_probe_answer.elapsed() >= PROBE_EVERY => {
                if !s.send_probe(&token).await {
                    return;
                }
                probe = Some(Instant::now());
            }
            _ => {}
        }
        drop(s);
        let next = tokio::time::timeout(Duration::from_secs(1), listener.try_recv()).await;
        let Some(s) = shared.upgrade() else { return };
        match next {
            Ok(Ok(Some(notification))) => {
                let payload = notification.payload();
                if let Some(answer) = payload.strip_prefix("probe ") {
                    if answer == token && probe.take().is_some() {
                        last_probe_answer = Instant::now();
                        s.delivered();
                    }
                } else {
                    s.wake(payload);
                }
            }
            Ok(Ok(None)) => {
                // The connection was lost and opened again: releases in
                // between went unseen, so count as unsure until a probe
                // comes back, and wake every waiter once to look.
                s.unsure();
                s.signals.notify_all();
                s.permit_signals.notify_all();
                s.read_signals.notify_all_waiters();
                s.write_signals.notify_all();
                probe = None;
                last_probe_answer = Instant::now() - PROBE_EVERY;
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "the listener stopped; waiters poll with backoff only");
                return;
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn payloads_split_into_kind_key_and_head() {
        let mut parts = "l 00ab owner with spaces".splitn(3, ' ');
        assert_eq!(parts.next(), Some("l"));
        assert_eq!(parts.next(), Some("00ab"));
        assert_eq!(parts.next(), Some("owner with spaces"));
    }
}
