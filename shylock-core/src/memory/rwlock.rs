//! The memory backend's read/write locks: readers, a writer and a waiting
//! writer's intent per name.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{expiry, Entry, MemoryBackend};
use crate::backend::{Access, Deadline, Grant, LockInfo, RwLockBackend, RwLockInfo};
use crate::error::Result;

/// One read/write lock.
#[derive(Default)]
pub(super) struct RwState {
    readers: Vec<Entry>,
    writer: Option<Entry>,
    /// The waiting writer's owner token and when its intent lapses.
    intent: Option<(String, Instant)>,
}

impl RwState {
    /// Drops expired leases and a lapsed intent.
    fn sweep(&mut self, now: Instant) {
        self.readers.retain(|e| e.live(now));
        if self.writer.as_ref().is_some_and(|e| !e.live(now)) {
            self.writer = None;
        }
        if self.intent.as_ref().is_some_and(|(_, until)| *until <= now) {
            self.intent = None;
        }
    }

    fn is_empty(&self) -> bool {
        self.readers.is_empty() && self.writer.is_none() && self.intent.is_none()
    }

    /// The live lease of `owner`, reader or writer.
    fn lease_of(&mut self, owner: &str) -> Option<&mut Entry> {
        self.writer
            .iter_mut()
            .chain(self.readers.iter_mut())
            .find(|e| e.owner == owner)
    }
}

/// Pushes `entry`'s expiry to now + `ttl` and answers its grant.
fn refresh(entry: &mut Entry, ttl: Duration) -> Grant {
    (entry.deadline, entry.expires_at) = expiry(ttl);
    Grant::new(entry.fence, entry.expires_at)
}

impl MemoryBackend {
    /// Runs `op` on the swept state of `name` (created if missing), and
    /// forgets the name once nothing is left in it.
    fn with_rwlock<T>(&self, name: &str, op: impl FnOnce(&mut RwState, &mut u64) -> T) -> T {
        let now = Instant::now();
        let mut state = self.state();
        let state = &mut *state;
        let rw = state.rwlocks.entry(name.to_owned()).or_default();
        rw.sweep(now);
        let answer = op(rw, &mut state.last_fence);
        if rw.is_empty() {
            state.rwlocks.remove(name);
        }
        answer
    }
}

fn grant(owner: &str, ttl: Duration, last_fence: &mut u64) -> (Entry, Grant) {
    *last_fence += 1;
    let (deadline, expires_at) = expiry(ttl);
    let entry = Entry {
        owner: owner.to_owned(),
        fence: *last_fence,
        deadline,
        expires_at,
    };
    (entry, Grant::new(*last_fence, expires_at))
}

#[async_trait::async_trait]
impl RwLockBackend for MemoryBackend {
    async fn claim_read(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        writers_first: bool,
        _deadline: Deadline,
    ) -> Result<Option<Grant>> {
        Ok(self.with_rwlock(name, |rw, last_fence| {
            if let Some(entry) = rw.readers.iter_mut().find(|e| e.owner == owner) {
                return Some(refresh(entry, ttl));
            }
            if rw.writer.is_some() || (writers_first && rw.intent.is_some()) {
                return None;
            }
            let (entry, grant) = grant(owner, ttl, last_fence);
            rw.readers.push(entry);
            Some(grant)
        }))
    }

    async fn claim_write(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        intent: bool,
        _deadline: Deadline,
    ) -> Result<Option<Grant>> {
        Ok(self.with_rwlock(name, |rw, last_fence| {
            if let Some(entry) = rw.writer.as_mut().filter(|e| e.owner == owner) {
                return Some(refresh(entry, ttl));
            }
            if rw.writer.is_some() || !rw.readers.is_empty() {
                if intent && rw.intent.as_ref().is_none_or(|(o, _)| o == owner) {
                    rw.intent = Some((owner.to_owned(), Instant::now() + ttl));
                }
                return None;
            }
            if rw.intent.as_ref().is_some_and(|(o, _)| o == owner) {
                rw.intent = None;
            }
            let (entry, grant) = grant(owner, ttl, last_fence);
            rw.writer = Some(entry);
            Some(grant)
        }))
    }

    async fn extend_rw(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        _deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        Ok(self.with_rwlock(name, |rw, _| {
            rw.lease_of(owner).map(|e| refresh(e, ttl).expires_at)
        }))
    }

    async fn release_rw(&self, name: &str, owner: &str, _deadline: Deadline) -> Result<bool> {
        let (writer_left, reader_left, now_free, intent_withdrawn) =
            self.with_rwlock(name, |rw, _| {
                let writer_left = rw.writer.as_ref().is_some_and(|e| e.owner == owner);
                if writer_left {
                    rw.writer = None;
                }
                let readers = rw.readers.len();
                rw.readers.retain(|e| e.owner != owner);
                let reader_left = rw.readers.len() < readers;
                let intent_withdrawn = rw.intent.as_ref().is_some_and(|(o, _)| o == owner);
                if intent_withdrawn {
                    rw.intent = None;
                }
                let now_free = rw.readers.is_empty() && rw.writer.is_none();
                (writer_left, reader_left, now_free, intent_withdrawn)
            });
        // Wake those who can win now: every reader when the writer left or
        // stopped waiting, one writer when the lock became free.
        if writer_left || intent_withdrawn {
            self.inner.read_signals.notify_every(name);
        }
        if (writer_left || reader_left || intent_withdrawn) && now_free {
            self.inner.write_signals.notify(name);
        }
        Ok(writer_left || reader_left)
    }

    async fn inspect_rwlock(&self, name: &str, _deadline: Deadline) -> Result<RwLockInfo> {
        Ok(self.with_rwlock(name, |rw, _| {
            let info = |e: &Entry| LockInfo::new(name, e.owner.clone(), e.fence, e.expires_at);
            RwLockInfo::new(
                name,
                rw.readers.iter().map(info).collect(),
                rw.writer.as_ref().map(info),
                rw.intent.is_some(),
            )
        }))
    }

    fn release_signal(
        &self,
        name: &str,
        access: Access,
    ) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        Some(match access {
            Access::Read => self.inner.read_signals.subscribe(name),
            Access::Write => self.inner.write_signals.subscribe(name),
        })
    }
}
