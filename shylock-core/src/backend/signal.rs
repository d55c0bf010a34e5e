//! Release signals for waiters in the same process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

/// Per-name release signals, for backends that see releases made through
/// themselves (all of them, for the waiters of their own process).
///
/// [`subscribe`](Self::subscribe) backs
/// [`Backend::release_signal`](super::Backend::release_signal);
/// [`notify`](Self::notify) is called after a release or force-release and
/// wakes **one** waiter (`Notify::notify_one`): one release frees the lock
/// for one holder, so waking every waiter would only send a burst of
/// attempts that all but one lose. A woken waiter that is cancelled passes
/// the wake-up on to the next one. Entries are held weakly and dropped when
/// no waiter is left.
#[derive(Debug, Default)]
pub struct ReleaseSignals {
    signals: Mutex<HashMap<String, Weak<Notify>>>,
}

impl ReleaseSignals {
    /// An empty set of signals.
    pub fn new() -> Self {
        Self::default()
    }

    /// The signal of `name`, notified once per release.
    pub fn subscribe(&self, name: &str) -> Arc<Notify> {
        let mut signals = self.signals.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(live) = signals.get(name).and_then(Weak::upgrade) {
            return live;
        }
        if signals.len() >= 1024 {
            signals.retain(|_, s| s.strong_count() > 0);
        }
        let signal = Arc::new(Notify::new());
        signals.insert(name.to_owned(), Arc::downgrade(&signal));
        signal
    }

    /// Whether anyone holds the signal of any name.
    pub fn has_subscribers(&self) -> bool {
        let signals = self.signals.lock().unwrap_or_else(|p| p.into_inner());
        signals.values().any(|s| s.strong_count() > 0)
    }

    /// Wakes one waiter of every name that has waiters: for backends that
    /// learn that *something* changed but not what (SQLite's
    /// `PRAGMA data_version`).
    pub fn notify_all(&self) {
        let mut signals = self.signals.lock().unwrap_or_else(|p| p.into_inner());
        signals.retain(|_, signal| match signal.upgrade() {
            Some(signal) => {
                signal.notify_one();
                true
            }
            None => false,
        });
    }

    /// Wakes one waiter of `name`.
    pub fn notify(&self, name: &str) {
        let mut signals = self.signals.lock().unwrap_or_else(|p| p.into_inner());
        match signals.get(name).and_then(Weak::upgrade) {
            Some(signal) => signal.notify_one(),
            None => {
                signals.remove(name);
            }
        }
    }
}
