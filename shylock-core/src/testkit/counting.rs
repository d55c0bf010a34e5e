//! A wrapper that counts backend calls.

use std::sync::atomic::{AtomicU64, Ordering};
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
        })
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
        self.inner.claim(name, owner, ttl, deadline).await
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
        semaphores(&self.inner)?
            .claim_permit(name, owner, permits, ttl, deadline)
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
        queues(&self.inner)?
            .enqueue(name, owner, ttl, deadline)
            .await
    }

    async fn claim_fair(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        let answer = queues(&self.inner)?
            .claim_fair(name, owner, ttl, deadline)
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
        rwlocks(&self.inner)?
            .claim_read(name, owner, ttl, writers_first, deadline)
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
        rwlocks(&self.inner)?
            .claim_write(name, owner, ttl, intent, deadline)
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
