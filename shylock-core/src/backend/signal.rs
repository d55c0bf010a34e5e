//! Release signals for waiters in the same process.

use std::collections::HashMap;
use std::hash::Hash;
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
/// [`QueueBackend::turn_signal`](super::QueueBackend::turn_signal), and
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
        subscribe_in(&self.signals, name.to_owned())
    }

    /// The signal of the fair waiter holding `owner`'s ticket for `name`,
    /// notified by [`notify_turn`](Self::notify_turn).
    pub fn subscribe_turn(&self, name: &str, owner: &str) -> Arc<Notify> {
        subscribe_in(&self.turns, (name.to_owned(), owner.to_owned()))
    }

    /// Wakes the fair waiter holding `owner`'s ticket for `name`, if it is
    /// in this process; whether there was one.
    pub fn notify_turn(&self, name: &str, owner: &str) -> bool {
        notify_in(&self.turns, &(name.to_owned(), owner.to_owned()))
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
        notify_in(&self.signals, name);
    }

    /// Wakes every waiter of every name that is waiting now: for
    /// backends that learn that something changed but not what, where
    /// every waiter of a name may win (the readers of read/write locks).
    pub fn notify_all_waiters(&self) {
        let mut signals = self.signals.lock().unwrap_or_else(|p| p.into_inner());
        signals.retain(|_, signal| match signal.upgrade() {
            Some(signal) => {
                signal.notify_waiters();
                true
            }
            None => false,
        });
    }

    /// Wakes every waiter of `name` that is waiting now
    /// (`Notify::notify_waiters`): for a release after which all of them
    /// may win, such as the readers of a read/write lock whose writer left.
    pub fn notify_every(&self, name: &str) {
        let mut map = self.signals.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(name).and_then(Weak::upgrade) {
            Some(signal) => signal.notify_waiters(),
            None => {
                map.remove(name);
            }
        }
    }
}

/// The live signal under `key`, or a new one (dead entries are swept once
/// the map grows large).
fn subscribe_in<K: Hash + Eq>(map: &Mutex<HashMap<K, Weak<Notify>>>, key: K) -> Arc<Notify> {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(live) = map.get(&key).and_then(Weak::upgrade) {
        return live;
    }
    if map.len() >= 1024 {
        map.retain(|_, s| s.strong_count() > 0);
    }
    let signal = Arc::new(Notify::new());
    map.insert(key, Arc::downgrade(&signal));
    signal
}

/// Wakes one waiter of the signal under `key`, dropping the entry if
/// nobody holds it any more; whether somebody did.
fn notify_in<K, Q>(map: &Mutex<HashMap<K, Weak<Notify>>>, key: &Q) -> bool
where
    K: Hash + Eq + std::borrow::Borrow<Q>,
    Q: Hash + Eq + ?Sized,
{
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    match map.get(key).and_then(Weak::upgrade) {
        Some(signal) => {
            signal.notify_one();
            true
        }
        None => {
            map.remove(key);
            false
        }
    }
}
