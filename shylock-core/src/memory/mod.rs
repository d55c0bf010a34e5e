//! An in-process backend for tests and single-process programs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::backend::{
    Backend, Deadline, Grant, LockInfo, QueueBackend, ReleaseSignals, RwLockBackend,
    SemaphoreBackend, SemaphoreInfo,
};
use crate::error::Result;

mod queue;
mod rwlock;
mod semaphore;

/// Locks kept in this process's memory.
///
/// Useful for tests and for programs that run as a single process. Clones
/// share the same store. Waiters are woken as soon as a lock is released.
/// Expiry follows tokio's clock, so tests may use paused time.
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::{AsyncLock, MemoryBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shylock::Result<()> {
/// let backend = MemoryBackend::new();
/// let guard = AsyncLock::with_backend("report", backend.clone()).acquire().await?;
/// assert!(AsyncLock::with_backend("report", backend).try_acquire().await?.is_none());
/// guard.release().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct MemoryBackend {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    signals: ReleaseSignals,
    permit_signals: ReleaseSignals,
    /// Read/write locks: readers may enter, a writer may win.
    read_signals: ReleaseSignals,
    write_signals: ReleaseSignals,
}

#[derive(Default)]
struct State {
    /// Ordered by name, as `list` returns them.
    locks: BTreeMap<String, Entry>,
    /// Semaphores: the permit count and the holders (live or not yet
    /// swept).
    semaphores: HashMap<String, Semaphore>,
    /// Lines of fair waiters, in arrival order (expired tickets are swept
    /// by the next operation on the name).
    queues: HashMap<String, Vec<Ticket>>,
    /// Read/write locks (expired leases are swept by the next operation on
    /// the name).
    rwlocks: HashMap<String, rwlock::RwState>,
    /// One counter for all names: strictly increasing per name as well, and
    /// it survives release and expiry because it is never reset.
    last_fence: u64,
}

struct Ticket {
    owner: String,
    deadline: Instant,
}

impl State {
    /// Whether `owner` holds a live lease on `name`.
    fn holds(&self, name: &str, owner: &str, now: Instant) -> bool {
        self.locks
            .get(name)
            .is_some_and(|e| e.live(now) && e.owner == owner)
    }

    /// One claim of the lock, under the state's mutex.
    fn claim(&mut self, name: &str, owner: &str, ttl: Duration) -> Option<Grant> {
        let now = Instant::now();
        let (deadline, expires_at) = expiry(ttl);
        if let Some(entry) = self.locks.get_mut(name) {
            if entry.live(now) && entry.owner != owner {
                return None;
            }
            if entry.live(now) {
                // Our own retry: same lease, later expiry.
                entry.deadline = deadline;
                entry.expires_at = expires_at;
                return Some(Grant::new(entry.fence, expires_at));
            }
        }
        self.last_fence += 1;
        let fence = self.last_fence;
        self.locks.insert(
            name.to_owned(),
            Entry {
                owner: owner.to_owned(),
                fence,
                deadline,
                expires_at,
            },
        );
        Some(Grant::new(fence, expires_at))
    }
}

struct Semaphore {
    permits: u32,
    holders: Vec<Entry>,
}

impl Semaphore {
    fn info(&self, name: &str, now: Instant) -> SemaphoreInfo {
        let live = self.holders.iter().filter(|e| e.live(now));
        let holders = live.map(|e| LockInfo::new(name, e.owner.clone(), e.fence, e.expires_at));
        SemaphoreInfo::new(name, Some(self.permits), holders.collect())
    }
}

struct Entry {
    owner: String,
    fence: u64,
    deadline: Instant,
    expires_at: SystemTime,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.deadline > now
    }
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.state().locks.len();
        f.debug_struct("MemoryBackend")
            .field("entries", &held)
            .finish()
    }
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this mutex cannot leave the map half-updated
        // (every update is a single insert or remove), so poisoning is ignored.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn expiry(ttl: Duration) -> (Instant, SystemTime) {
    (Instant::now() + ttl, SystemTime::now() + ttl)
}

#[async_trait::async_trait]
impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn claim(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        _deadline: Deadline,
    ) -> Result<Option<Grant>> {
        Ok(self.state().claim(name, owner, ttl))
    }

    async fn extend(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        _deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        let mut state = self.state();
        let now = Instant::now();
        let Some(entry) = state.locks.get_mut(name) else {
            return Ok(None);
        };
        if entry.owner != owner || !entry.live(now) {
            return Ok(None);
        }
        let (deadline, expires_at) = expiry(ttl);
        entry.deadline = deadline;
        entry.expires_at = expires_at;
        Ok(Some(expires_at))
    }

    async fn release(&self, name: &str, owner: &str, _deadline: Deadline) -> Result<bool> {
        let mut state = self.state();
        match state.locks.get(name) {
            Some(entry) if entry.owner == owner => {
                state.locks.remove(name);
                drop(state);
                self.inner.signals.notify(name);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn inspect(&self, name: &str, _deadline: Deadline) -> Result<Option<LockInfo>> {
        let state = self.state();
        let now = Instant::now();
        Ok(state
            .locks
            .get(name)
            .filter(|e| e.live(now))
            .map(|e| LockInfo::new(name, e.owner.clone(), e.fence, e.expires_at)))
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        _deadline: Deadline,
    ) -> Result<Vec<LockInfo>> {
        use std::ops::Bound;
        let state = self.state();
        let now = Instant::now();
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        Ok(state
            .locks
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            .filter(|(_, e)| e.live(now))
            .take(limit.max(1))
            .map(|(name, e)| LockInfo::new(name.clone(), e.owner.clone(), e.fence, e.expires_at))
            .collect())
    }

    async fn force_release(&self, name: &str, _deadline: Deadline) -> Result<bool> {
        let mut state = self.state();
        let now = Instant::now();
        let removed = state.locks.remove(name);
        drop(state);
        self.inner.signals.notify(name);
        Ok(removed.is_some_and(|e| e.live(now)))
    }

    fn release_signal(&self, name: &str) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        Some(self.inner.signals.subscribe(name))
    }

    fn semaphores(&self) -> Option<&dyn SemaphoreBackend> {
        Some(self)
    }

    fn queues(&self) -> Option<&dyn QueueBackend> {
        Some(self)
    }

    fn rwlocks(&self) -> Option<&dyn RwLockBackend> {
        Some(self)
    }
}
