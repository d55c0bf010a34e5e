//! A wrapper that counts backend calls, and can change what the backend
//! says or how slow its claims are.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::backend::{
    Access, Backend, Deadline, Grant, LockInfo, QueueBackend, QueueInfo, RwLockBackend, RwLockInfo,
    SemaphoreBackend, SemaphoreInfo, SharedBackend,
};
use crate::error::Result;
use crate::target::{queues, rwlocks, semaphores};

/// Counts calls per operation; wraps a backend for tests that check how many
/// round trips the core makes. Permit and read/write lock operations count
/// with their lock counterparts.
///
/// Switches, for the core's tests on the memory backend: it can say that
/// releases are watched ([`watch_releases`](Self::watch_releases)) and
/// turns signalled ([`signal_turns`](Self::signal_turns)), as MongoDB's
/// and SQLite's backends do, and make claims slow
/// ([`slow_claims`](Self::slow_claims)).
#[derive(Debug)]
pub struct CountingBackend {
    inner: SharedBackend,
    /// Calls to `claim`.
    pub claims: AtomicU64,
    /// Calls to `extend`.
    pub extends: AtomicU64,
    /// Calls to `release`.
    pub releases: AtomicU64,
    /// `claim_fair` calls in the order they were answered: owner, and
    /// whether it won.
    fair_claims: std::sync::Mutex<Vec<(String, bool)>>,
    /// Owners of the places asked for, in order.
    enqueued: std::sync::Mutex<Vec<String>>,
    watched: AtomicBool,
    turns: AtomicBool,
    /// Claims and enqueues so far (of every kind).
    asks: AtomicU64,
    /// From this ask on (counting from 0), asks are slow.
    slow_from: AtomicU64,
    /// How long a slow ask takes to reach the store, and its answer to
    /// come back, in milliseconds.
    leg_ms: AtomicU64,
}

impl CountingBackend {
    /// Wraps `inner`.
    pub fn new(inner: impl Into<SharedBackend>) -> Arc<Self> {
        Arc::new(CountingBackend {
            inner: inner.into(),
            claims: AtomicU64::new(0),
            extends: AtomicU64::new(0),
            releases: AtomicU64::new(0),
            fair_claims: std::sync::Mutex::default(),
            enqueued: std::sync::Mutex::default(),
            watched: AtomicBool::new(false),
            turns: AtomicBool::new(false),
            asks: AtomicU64::new(0),
            slow_from: AtomicU64::new(u64::MAX),
            leg_ms: AtomicU64::new(0),
        })
    }

    /// From now on, says that every release of every name has been watched
    /// for an hour (`releases_watched_since`), as a backend with a change
    /// stream or file watcher does: waiters then pause long between
    /// attempts.
    pub fn watch_releases(&self) {
        self.watched.store(true, Ordering::SeqCst);
    }

    /// From now on, offers every ticket a turn signal (`turn_signal`),
    /// which is never notified: a ticket behind others then makes no
    /// attempt before its turn.
    pub fn signal_turns(&self) {
        self.turns.store(true, Ordering::SeqCst);
    }

    /// Makes every claim and enqueue from the `from`-th on (counting from 0,
    /// every kind together) take `leg` to reach the store and `leg` for its
    /// answer to come back: a slow network, for callers that give up while
    /// their claim is on its way.
    pub fn slow_claims(&self, from: u64, leg: Duration) {
        self.leg_ms.store(leg.as_millis() as u64, Ordering::SeqCst);
        self.slow_from.store(from, Ordering::SeqCst);
    }

    /// The owners of the places asked for (`enqueue`) so far, in order.
    pub fn enqueued_owners(&self) -> Vec<String> {
        self.enqueued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs one claim or enqueue, slowly if [`slow_claims`](Self::slow_claims)
    /// says so.
    async fn ask<T>(&self, request: impl Future<Output = T>) -> T {
        let number = self.asks.fetch_add(1, Ordering::SeqCst);
        let leg = Duration::from_millis(self.leg_ms.load(Ordering::SeqCst));
        let slow = number >= self.slow_from.load(Ordering::SeqCst) && !leg.is_zero();
        if slow {
            tokio::time::sleep(leg).await;
        }
        let answer = request.await;
        if slow {
            tokio::time::sleep(leg).await;
        }
        answer
    }

    /// Calls to `claim` so far.
    pub fn claim_count(&self) -> u64 {
        self.claims.load(Ordering::SeqCst)
    }

    /// The `claim_fair` calls answered so far, in order: the owner, and
    /// whether it won the lock.
    pub fn fair_claim_log(&self) -> Vec<(String, bool)> {
        self.fair_claims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl Backend for CountingBackend {
    fn releases_watched_since(&self, name: &str) -> Option<std::time::Instant> {
        if self.watched.load(Ordering::SeqCst) {
            return std::time::Instant::now().checked_sub(Duration::from_secs(3600));
        }
        self.inner.releases_watched_since(name)
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn claim(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        self.ask(self.inner.claim(name, owner, ttl, deadline)).await
    }
    async fn extend(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        self.extends.fetch_add(1, Ordering::SeqCst);
        self.inner.extend(name, owner, ttl, deadline).await
    }
    async fn release(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        self.releases.fetch_add(1, Ordering::SeqCst);
        self.inner.release(name, owner, deadline).await
    }
    async fn inspect(&self, name: &str, deadline: Deadline) -> Result<Option<LockInfo>> {
        self.inner.inspect(name, deadline).await
    }
    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<LockInfo>> {
        self.inner.list(prefix, after, limit, deadline).await
    }
    async fn force_release(&self, name: &str, deadline: Deadline) -> Result<bool> {
        self.inner.force_release(name, deadline).await
    }
    fn release_signal(&self, name: &str) -> Option<Arc<tokio::sync::Notify>> {
        self.inner.release_signal(name)
    }
    fn semaphores(&self) -> Option<&dyn SemaphoreBackend> {
        self.inner.semaphores()?;
        Some(self)
    }
    fn queues(&self) -> Option<&dyn QueueBackend> {
        self.inner.queues()?;
        Some(self)
    }
    fn rwlocks(&self) -> Option<&dyn RwLockBackend> {
        self.inner.rwlocks()?;
        Some(self)
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl SemaphoreBackend for CountingBackend {
    async fn claim_permit(
        &self,
        name: &str,
        owner: &str,
        permits: u32,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        let semaphores = semaphores(&self.inner)?;
        self.ask(semaphores.claim_permit(name, owner, permits, ttl, deadline))
            .await
    }
    async fn extend_permit(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        self.extends.fetch_add(1, Ordering::SeqCst);
        semaphores(&self.inner)?
            .extend_permit(name, owner, ttl, deadline)
            .await
    }
    async fn release_permit(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        self.releases.fetch_add(1, Ordering::SeqCst);
        semaphores(&self.inner)?
            .release_permit(name, owner, deadline)
            .await
    }
    async fn inspect_semaphore(&self, name: &str, deadline: Deadline) -> Result<SemaphoreInfo> {
        semaphores(&self.inner)?
            .inspect_semaphore(name, deadline)
            .await
    }
    async fn list_semaphores(
        &self,
        prefix: &str,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<SemaphoreInfo>> {
        semaphores(&self.inner)?
            .list_semaphores(prefix, limit, deadline)
            .await
    }
    fn release_signal(&self, name: &str) -> Option<Arc<tokio::sync::Notify>> {
        self.inner.semaphores()?.release_signal(name)
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl QueueBackend for CountingBackend {
    async fn enqueue(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<u64> {
        self.enqueued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(owner.to_owned());
        let queues = queues(&self.inner)?;
        self.ask(queues.enqueue(name, owner, ttl, deadline)).await
    }

    async fn claim_fair(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        let queues = queues(&self.inner)?;
        let answer = self
            .ask(queues.claim_fair(name, owner, ttl, deadline))
            .await;
        if let Ok(grant) = &answer {
            self.fair_claims
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((owner.to_owned(), grant.is_some()));
        }
        answer
    }

    async fn extend_ticket(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<bool> {
        queues(&self.inner)?
            .extend_ticket(name, owner, ttl, deadline)
            .await
    }

    async fn leave_queue(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        queues(&self.inner)?
            .leave_queue(name, owner, deadline)
            .await
    }
    async fn list_queues(
        &self,
        prefix: &str,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<QueueInfo>> {
        queues(&self.inner)?
            .list_queues(prefix, limit, deadline)
            .await
    }
    fn turn_signal(&self, name: &str, owner: &str) -> Option<Arc<tokio::sync::Notify>> {
        if self.turns.load(Ordering::SeqCst) {
            return Some(Arc::default());
        }
        self.inner.queues()?.turn_signal(name, owner)
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl RwLockBackend for CountingBackend {
    async fn claim_read(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        writers_first: bool,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        let rwlocks = rwlocks(&self.inner)?;
        self.ask(rwlocks.claim_read(name, owner, ttl, writers_first, deadline))
            .await
    }
    async fn claim_write(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        intent: bool,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        let rwlocks = rwlocks(&self.inner)?;
        self.ask(rwlocks.claim_write(name, owner, ttl, intent, deadline))
            .await
    }
    async fn extend_rw(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        self.extends.fetch_add(1, Ordering::SeqCst);
        rwlocks(&self.inner)?
            .extend_rw(name, owner, ttl, deadline)
            .await
    }
    async fn release_rw(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        self.releases.fetch_add(1, Ordering::SeqCst);
        rwlocks(&self.inner)?
            .release_rw(name, owner, deadline)
            .await
    }
    async fn inspect_rwlock(&self, name: &str, deadline: Deadline) -> Result<RwLockInfo> {
        rwlocks(&self.inner)?.inspect_rwlock(name, deadline).await
    }
    fn release_signal(&self, name: &str, access: Access) -> Option<Arc<tokio::sync::Notify>> {
        self.inner.rwlocks()?.release_signal(name, access)
    }
}
