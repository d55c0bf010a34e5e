//! Release signals for waiters in the same process.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// Per-name release signals, for backends that see releases made through
/// themselves (all of them, for the waiters of their own process).
///
/// [`subscribe`](Self::subscribe) backs
/// [`Backend::release_signal`](crate::Backend::release_signal);
/// [`notify`](Self::notify) is called after a release or force-release.
/// Entries without subscribers are dropped on the next notify, so the map
/// does not grow with every name ever used.
#[derive(Debug, Default)]
pub struct ReleaseSignals {
    senders: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl ReleaseSignals {
    /// An empty set of signals.
    pub fn new() -> Self {
        Self::default()
    }

    /// A receiver that changes after the next [`notify`](Self::notify) of
    /// `name`.
    pub fn subscribe(&self, name: &str) -> watch::Receiver<u64> {
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        senders
            .entry(name.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes the waiters of `name`.
    pub fn notify(&self, name: &str) {
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = senders.get(name) {
            if tx.receiver_count() == 0 {
                senders.remove(name);
            } else {
                tx.send_modify(|v| *v = v.wrapping_add(1));
            }
        }
    }
}
