//! The process's line of fair waiters: one [`LocalSlot`] per waiter, in
//! the order they joined the database's line, so a release wakes only the
//! waiter of this process that can be first there.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::backend::SharedBackend;

/// The fair waiters of one lock in this process, in the order they joined
/// the line. Only the first is woken by the backend's release signal: it
/// is the only one of them that can be first in the database's line.
#[derive(Default)]
struct Line {
    waiters: VecDeque<(u64, Arc<Notify>)>,
    /// Forwards the backend's release signal to the first waiter.
    forward: Option<JoinHandle<()>>,
}

type Key = (usize, String);

fn lines() -> &'static Mutex<HashMap<Key, Line>> {
    static LINES: OnceLock<Mutex<HashMap<Key, Line>>> = OnceLock::new();
    LINES.get_or_init(Mutex::default)
}

fn lock_lines() -> std::sync::MutexGuard<'static, HashMap<Key, Line>> {
    lines().lock().unwrap_or_else(|p| p.into_inner())
}

/// One waiter's place in its process's [`Line`].
pub(crate) struct LocalSlot {
    key: Key,
    id: u64,
    notify: Arc<Notify>,
    backend: SharedBackend,
    left: bool,
    /// `notify` is the backend's turn signal for this waiter's ticket.
    pub(crate) backend_turn: bool,
    /// The backend signals this waiter's turn, and has watched every
    /// release since the ticket was asked for: its first attempt waits for
    /// the signal.
    pub(crate) turn_watched: bool,
}

impl LocalSlot {
    pub(crate) fn join(backend: &SharedBackend, name: &str, owner: &str) -> LocalSlot {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = (backend.id(), name.to_owned());
        // The backend may wake this waiter itself when its ticket is first
        // in line (whichever process released); the process's line wakes
        // it too, for releases made here.
        let turn = backend.queues().and_then(|q| q.turn_signal(name, owner));
        let backend_turn = turn.is_some();
        let notify = turn.unwrap_or_default();
        lock_lines()
            .entry(key.clone())
            .or_default()
            .waiters
            .push_back((id, notify.clone()));
        LocalSlot {
            key,
            id,
            notify,
            backend: backend.clone(),
            left: false,
            backend_turn,
            turn_watched: false,
        }
    }

    /// Whether the first attempt waits for this waiter's turn signal.
    pub(crate) fn turn_is_watched(&self) -> bool {
        self.turn_watched
    }

    /// The signal this waiter waits on; starts forwarding the backend's
    /// release signal to the first waiter of the line (only once someone
    /// has to wait, so an uncontended acquire starts no watcher).
    pub(crate) fn subscribe(&self) -> Arc<Notify> {
        let mut lines = lock_lines();
        if let Some(line) = lines.get_mut(&self.key) {
            if line.forward.is_none() {
                if let Some(signal) = self.backend.release_signal(&self.key.1) {
                    let key = self.key.clone();
                    line.forward = Some(tokio::spawn(async move {
                        loop {
                            signal.notified().await;
                            let first = lock_lines()
                                .get(&key)
                                .and_then(|line| line.waiters.front().map(|(_, n)| n.clone()));
                            match first {
                                Some(first) => first.notify_one(),
                                None => return,
                            }
                        }
                    }));
                }
            }
        }
        self.notify.clone()
    }

    /// Leaves the process's line. `wake_next`: the next waiter may now be
    /// first in the database's line, so it tries at once.
    pub(crate) fn leave(&mut self, wake_next: bool) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        let mut lines = lock_lines();
        let Some(line) = lines.get_mut(&self.key) else {
            return;
        };
        let was_first = line.waiters.front().is_some_and(|(id, _)| *id == self.id);
        line.waiters.retain(|(id, _)| *id != self.id);
        if line.waiters.is_empty() {
            if let Some(task) = line.forward.take() {
                task.abort();
            }
            lines.remove(&self.key);
        } else if was_first && wake_next {
            if let Some((_, next)) = line.waiters.front() {
                next.notify_one();
            }
        }
    }
}

impl Drop for LocalSlot {
    fn drop(&mut self) {
        self.leave(true);
    }
}
