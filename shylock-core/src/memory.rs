//! An in-process backend for tests and single-process programs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::backend::{
    permits_mismatch, Backend, Deadline, Grant, LockInfo, QueueBackend, QueueInfo, ReleaseSignals,
    SemaphoreBackend, SemaphoreInfo,
};
use crate::error::Result;

/// Locks kept in this process's memory.
///
/// Useful for tests and for programs that run as a single process. Clones
/// share the same store. Waiters are woken as soon as a lock is released.
/// Expiry follows tokio's clock, so tests may use paused time.
///
/// # Examples
///
/// ```
/// use shylock_core::{AsyncLock, MemoryBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shylock_core::Result<()> {
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
    /// One counter for all names: strictly increasing per name as well, and
    /// it survives release and expiry because it is never reset.
    last_fence: u64,
}

struct Ticket {
    owner: String,
    deadline: Instant,
}

impl State {
    /// The live line of `name`, expired tickets swept.
    fn queue(&mut self, name: &str, now: Instant) -> &mut Vec<Ticket> {
        let queue = self.queues.entry(name.to_owned()).or_default();
        queue.retain(|t| t.deadline > now);
        queue
    }

    /// Drops the line of `name` once it is empty.
    fn tidy_queue(&mut self, name: &str) {
        if self.queues.get(name).is_some_and(Vec::is_empty) {
            self.queues.remove(name);
        }
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
}

#[async_trait::async_trait]
impl QueueBackend for MemoryBackend {
    async fn enqueue(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        _deadline: Deadline,
    ) -> Result<u64> {
        let mut state = self.state();
        let now = Instant::now();
        let queue = state.queue(name, now);
        let deadline = now + ttl;
        let place = match queue.iter().position(|t| t.owner == owner) {
            Some(place) => {
                queue[place].deadline = deadline;
                place
            }
            None => {
                queue.push(Ticket {
                    owner: owner.to_owned(),
                    deadline,
                });
                queue.len() - 1
            }
        };
        Ok(place as u64)
    }

    async fn claim_fair(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        _deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let mut state = self.state();
        let queue = state.queue(name, Instant::now());
        if queue.first().is_some_and(|t| t.owner != owner) {
            return Ok(None);
        }
        let grant = state.claim(name, owner, ttl);
        if grant.is_some() {
            state
                .queue(name, Instant::now())
                .retain(|t| t.owner != owner);
            state.tidy_queue(name);
        }
        Ok(grant)
    }

    async fn extend_ticket(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        _deadline: Deadline,
    ) -> Result<bool> {
        let mut state = self.state();
        let now = Instant::now();
        let ticket = state.queue(name, now).iter_mut().find(|t| t.owner == owner);
        let found = match ticket {
            Some(ticket) => {
                ticket.deadline = now + ttl;
                true
            }
            None => false,
        };
        state.tidy_queue(name);
        Ok(found)
    }

    async fn list_queues(&self, prefix: &str, limit: usize, _: Deadline) -> Result<Vec<QueueInfo>> {
        let now = Instant::now();
        let state = self.state();
        let mut lines: Vec<QueueInfo> = (state.queues.iter())
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, line)| {
                QueueInfo::new(
                    name.clone(),
                    line.iter().filter(|t| t.deadline > now).count() as u64,
                )
            })
            .filter(|line| line.waiting > 0)
            .collect();
        lines.sort_by(|a, b| a.name.cmp(&b.name));
        lines.truncate(limit.max(1));
        Ok(lines)
    }

    async fn leave_queue(&self, name: &str, owner: &str, _deadline: Deadline) -> Result<bool> {
        let mut state = self.state();
        let queue = state.queue(name, Instant::now());
        let before = queue.len();
        queue.retain(|t| t.owner != owner);
        let left = queue.len() < before;
        state.tidy_queue(name);
        drop(state);
        if left {
            // The next in line may now be first.
            self.inner.signals.notify(name);
        }
        Ok(left)
    }
}

#[async_trait::async_trait]
impl SemaphoreBackend for MemoryBackend {
    async fn claim_permit(
        &self,
        name: &str,
        owner: &str,
        permits: u32,
        ttl: Duration,
        _deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let now = Instant::now();
        let (deadline, expires_at) = expiry(ttl);
        let mut state = self.state();
        let state = &mut *state;
        let sem = state
            .semaphores
            .entry(name.to_owned())
            .or_insert_with(|| Semaphore {
                permits,
                holders: Vec::new(),
            });
        sem.holders.retain(|e| e.live(now));
        if let Some(entry) = sem.holders.iter_mut().find(|e| e.owner == owner) {
            entry.deadline = deadline;
            entry.expires_at = expires_at;
            return Ok(Some(Grant::new(entry.fence, expires_at)));
        }
        if !sem.holders.is_empty() && sem.permits != permits {
            return Err(permits_mismatch(name, sem.permits, permits));
        }
        sem.permits = permits;
        if sem.holders.len() >= permits as usize {
            return Ok(None);
        }
        state.last_fence += 1;
        let fence = state.last_fence;
        sem.holders.push(Entry {
            owner: owner.to_owned(),
            fence,
            deadline,
            expires_at,
        });
        Ok(Some(Grant::new(fence, expires_at)))
    }

    async fn extend_permit(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        _deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        let now = Instant::now();
        let mut state = self.state();
        let Some(sem) = state.semaphores.get_mut(name) else {
            return Ok(None);
        };
        match sem
            .holders
            .iter_mut()
            .find(|e| e.owner == owner && e.live(now))
        {
            Some(entry) => {
                (entry.deadline, entry.expires_at) = expiry(ttl);
                Ok(Some(entry.expires_at))
            }
            None => Ok(None),
        }
    }

    async fn release_permit(&self, name: &str, owner: &str, _deadline: Deadline) -> Result<bool> {
        let released = {
            let mut state = self.state();
            let Some(sem) = state.semaphores.get_mut(name) else {
                return Ok(false);
            };
            let before = sem.holders.len();
            sem.holders.retain(|e| e.owner != owner);
            let released = sem.holders.len() < before;
            if sem.holders.is_empty() {
                state.semaphores.remove(name);
            }
            released
        };
        if released {
            self.inner.permit_signals.notify(name);
        }
        Ok(released)
    }

    async fn inspect_semaphore(&self, name: &str, _deadline: Deadline) -> Result<SemaphoreInfo> {
        let state = self.state();
        Ok(match state.semaphores.get(name) {
            Some(sem) => sem.info(name, Instant::now()),
            None => SemaphoreInfo::new(name, None, Vec::new()),
        })
    }

    async fn list_semaphores(
        &self,
        prefix: &str,
        limit: usize,
        _: Deadline,
    ) -> Result<Vec<SemaphoreInfo>> {
        let now = Instant::now();
        let state = self.state();
        let mut all: Vec<SemaphoreInfo> = (state.semaphores.iter())
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, sem)| sem.info(name, now))
            .filter(|info| !info.holders.is_empty())
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all.truncate(limit.max(1));
        Ok(all)
    }

    fn release_signal(&self, name: &str) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        Some(self.inner.permit_signals.subscribe(name))
    }
}
