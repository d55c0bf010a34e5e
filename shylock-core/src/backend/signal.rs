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
///
/// Fair waiters can also be woken one by one, by their place in the line:
/// [`subscribe_turn`](Self::subscribe_turn) backs
/// [`Backend::turn_signal`](super::Backend::turn_signal), and
/// [`notify_turn`](Self::notify_turn) wakes the waiter holding a given
/// ticket when a backend learns that ticket is first in line.
#[derive(Debug, Default)]
pub struct ReleaseSignals {
    signals: Mutex<HashMap<String, Weak<Notify>>>,
    /// Per (name, ticket owner): the fair waiter holding that ticket.
    turns: Mutex<HashMap<(String, String), Weak<Notify>>>,
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

    /// The signal of the fair waiter holding `owner`'s ticket for `name`,
    /// notified by [`notify_turn`](Self::notify_turn).
    pub fn subscribe_turn(&self, name: &str, owner: &str) -> Arc<Notify> {
        let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        let key = (name.to_owned(), owner.to_owned());
        if let Some(live) = turns.get(&key).and_then(Weak::upgrade) {
            return live;
        }
        if turns.len() >= 1024 {
            turns.retain(|_, s| s.strong_count() > 0);
        }
        let signal = Arc::new(Notify::new());
        turns.insert(key, Arc::downgrade(&signal));
        signal
    }

    /// Wakes the fair waiter holding `owner`'s ticket for `name`, if it is
    /// in this process; whether there was one.
    pub fn notify_turn(&self, name: &str, owner: &str) -> bool {
        let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        let key = (name.to_owned(), owner.to_owned());
        match turns.get(&key).and_then(Weak::upgrade) {
            Some(signal) => {
                signal.notify_one();
                true
            }
            None => {
                turns.remove(&key);
                false
            }
        }
    }

    /// Whether the fair waiter holding `owner`'s ticket for `name` is in
    /// this process (holds its [`subscribe_turn`](Self::subscribe_turn)
    /// signal).
    pub fn has_turn(&self, name: &str, owner: &str) -> bool {
        let turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        turns
            .get(&(name.to_owned(), owner.to_owned()))
            .is_some_and(|s| s.strong_count() > 0)
    }

    /// Whether anyone holds the signal of any name or ticket.
    pub fn has_subscribers(&self) -> bool {
        fn live<K>(map: &Mutex<HashMap<K, Weak<Notify>>>) -> bool {
            map.lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .any(|s| s.strong_count() > 0)
        }
        live(&self.signals) || live(&self.turns)
    }

    /// Wakes one waiter of every name that has waiters: for backends that
    /// learn that *something* changed but not what (SQLite's
    /// `PRAGMA data_version`).
    pub fn notify_all(&self) {
        self.notify_all_except(|_| false);
    }

    /// [`notify_all`](Self::notify_all), except for the names `skip`
    /// picks (a backend that decided whom to wake for those).
    pub fn notify_all_except(&self, skip: impl Fn(&str) -> bool) {
        let mut signals = self.signals.lock().unwrap_or_else(|p| p.into_inner());
        signals.retain(|name, signal| match signal.upgrade() {
            Some(signal) => {
                if !skip(name) {
                    signal.notify_one();
                }
                true
            }
            None => false,
        });
    }

    /// The names that have fair waiters holding a
    /// [`subscribe_turn`](Self::subscribe_turn) signal.
    pub fn turn_names(&self) -> Vec<String> {
        let turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = turns
            .iter()
            .filter(|(_, s)| s.strong_count() > 0)
            .map(|((name, _), _)| name.clone())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
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
