//! The memory backend's semaphores: a permit count and its holders per
//! name.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{expiry, Entry, MemoryBackend, Semaphore};
use crate::backend::{permits_mismatch, Deadline, Grant, SemaphoreBackend, SemaphoreInfo};
use crate::error::Result;

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
