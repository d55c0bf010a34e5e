//! [`ShardedBackend`]: names spread over several stores.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::backend::{
    queues_unsupported, semaphores_unsupported, Backend, Deadline, Grant, LockInfo, QueueBackend,
    QueueInfo, RwLockBackend, SemaphoreBackend, SemaphoreInfo, SharedBackend,
};
use crate::error::{Error, Result};

mod rwlock;

/// Spreads lock and semaphore names over several backends ("shards"): each
/// name always goes to the same shard, so every operation on it is the
/// shard's own single atomic attempt, with all its guarantees.
///
/// # Routing
///
/// A name's shard is `jump(fnv1a64(name), shards)`: the 64-bit FNV-1a hash
/// of the name's UTF-8 bytes, mapped to a shard index with Lamping and
/// Veach's jump consistent hash. Both are fixed, documented algorithms
/// (not `std`'s randomly seeded hasher), so every process, build and
/// platform routes a name to the same shard for the same shard list, and
/// adding a shard at the end moves only about 1/(n+1) of the names.
///
/// # Changing the shard list
///
/// Processes with different shard lists (another count or another order)
/// may route one name to two stores and both grant it: **exclusion breaks
/// while locks are held under two lists.** Change the list like this: stop
/// (or drain) every process that uses it, so no lock or permit is held,
/// deploy the new list everywhere, then start them again. Leases left on a
/// shard a name no longer routes to simply expire.
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::{AsyncLock, MemoryBackend, ShardedBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shylock::Result<()> {
/// let shards = [MemoryBackend::new(), MemoryBackend::new(), MemoryBackend::new()];
/// let backend = ShardedBackend::new(shards)?;
/// let guard = AsyncLock::with_backend("orders/42", backend.clone()).acquire().await?;
/// assert!(AsyncLock::with_backend("orders/42", backend).try_acquire().await?.is_none());
/// guard.release().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ShardedBackend {
    shards: Arc<[SharedBackend]>,
}

impl ShardedBackend {
    /// Routes over `shards`, in this order (the order is part of the
    /// routing: see the type docs).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOptions`] for an empty list.
    pub fn new<B: Into<SharedBackend>>(shards: impl IntoIterator<Item = B>) -> Result<Self> {
        let shards: Vec<SharedBackend> = shards.into_iter().map(Into::into).collect();
        if shards.is_empty() {
            return Err(Error::InvalidOptions {
                reason: "a sharded backend needs at least one shard".into(),
            });
        }
        if shards.len() > i32::MAX as usize {
            return Err(Error::InvalidOptions {
                reason: "too many shards".into(),
            });
        }
        Ok(ShardedBackend {
            shards: shards.into(),
        })
    }

    /// How many shards there are.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Always false: a sharded backend has at least one shard.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The index of the shard `name` routes to.
    pub fn shard_of(&self, name: &str) -> usize {
        jump(fnv1a64(name.as_bytes()), self.shards.len())
    }

    fn shard(&self, name: &str) -> &SharedBackend {
        &self.shards[self.shard_of(name)]
    }
}

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Jump consistent hash (Lamping and Veach, 2014).
fn jump(mut key: u64, buckets: usize) -> usize {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < buckets as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as usize
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl Backend for ShardedBackend {
    fn releases_watched_since(&self, name: &str) -> Option<std::time::Instant> {
        self.shard(name).releases_watched_since(name)
    }

    fn kind(&self) -> &'static str {
        "sharded"
    }

    async fn claim(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        self.shard(name).claim(name, owner, ttl, deadline).await
    }

    async fn extend(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        self.shard(name).extend(name, owner, ttl, deadline).await
    }

    async fn release(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        self.shard(name).release(name, owner, deadline).await
    }

    async fn inspect(&self, name: &str, deadline: Deadline) -> Result<Option<LockInfo>> {
        self.shard(name).inspect(name, deadline).await
    }

    /// One page from every shard, merged in byte order and cut to `limit`:
    /// each shard's page holds its first `limit` names after `after`, so
    /// the merged first `limit` are the first `limit` overall.
    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<LockInfo>> {
        let pages = crate::join::join_all(
            self.shards
                .iter()
                .map(|shard| shard.list(prefix, after, limit, deadline)),
        )
        .await;
        let mut all = Vec::new();
        for page in pages {
            all.extend(page?);
        }
        all.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        all.truncate(limit.max(1));
        Ok(all)
    }

    async fn force_release(&self, name: &str, deadline: Deadline) -> Result<bool> {
        self.shard(name).force_release(name, deadline).await
    }

    fn release_signal(&self, name: &str) -> Option<Arc<tokio::sync::Notify>> {
        self.shard(name).release_signal(name)
    }

    /// Offered when every shard offers semaphores.
    fn semaphores(&self) -> Option<&dyn SemaphoreBackend> {
        let all = self.shards.iter().all(|s| s.semaphores().is_some());
        all.then_some(self as &dyn SemaphoreBackend)
    }

    /// Offered when every shard offers fair queues.
    fn queues(&self) -> Option<&dyn QueueBackend> {
        let all = self.shards.iter().all(|s| s.queues().is_some());
        all.then_some(self as &dyn QueueBackend)
    }

    /// Offered when every shard offers read/write locks.
    fn rwlocks(&self) -> Option<&dyn RwLockBackend> {
        let all = self.shards.iter().all(|s| s.rwlocks().is_some());
        all.then_some(self as &dyn RwLockBackend)
    }
}

impl ShardedBackend {
    /// The semaphores of the shard that owns `name`.
    fn semaphores_of(&self, name: &str) -> Result<&dyn SemaphoreBackend> {
        let shard = self.shard(name);
        shard
            .semaphores()
            .ok_or_else(|| semaphores_unsupported(shard.kind()))
    }

    /// The fair queues of the shard that owns `name`.
    fn queues_of(&self, name: &str) -> Result<&dyn QueueBackend> {
        let shard = self.shard(name);
        shard
            .queues()
            .ok_or_else(|| queues_unsupported(shard.kind()))
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl SemaphoreBackend for ShardedBackend {
    async fn claim_permit(
        &self,
        name: &str,
        owner: &str,
        permits: u32,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        self.semaphores_of(name)?
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
        self.semaphores_of(name)?
            .extend_permit(name, owner, ttl, deadline)
            .await
    }

    async fn release_permit(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        self.semaphores_of(name)?
            .release_permit(name, owner, deadline)
            .await
    }

    async fn inspect_semaphore(&self, name: &str, deadline: Deadline) -> Result<SemaphoreInfo> {
        self.semaphores_of(name)?
            .inspect_semaphore(name, deadline)
            .await
    }

    /// Every shard's list, merged in name order (as [`Backend::list`]).
    async fn list_semaphores(
        &self,
        prefix: &str,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<SemaphoreInfo>> {
        let pages = crate::join::join_all(self.shards.iter().map(|shard| async move {
            let semaphores = shard
                .semaphores()
                .ok_or_else(|| semaphores_unsupported(shard.kind()))?;
            semaphores.list_semaphores(prefix, limit, deadline).await
        }))
        .await;
        merged(pages, limit, |s: &SemaphoreInfo| s.name.clone())
    }

    fn release_signal(&self, name: &str) -> Option<Arc<tokio::sync::Notify>> {
        self.shard(name).semaphores()?.release_signal(name)
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl QueueBackend for ShardedBackend {
    async fn enqueue(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<u64> {
        self.queues_of(name)?
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
        self.queues_of(name)?
            .claim_fair(name, owner, ttl, deadline)
            .await
    }

    async fn extend_ticket(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<bool> {
        self.queues_of(name)?
            .extend_ticket(name, owner, ttl, deadline)
            .await
    }

    async fn leave_queue(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        self.queues_of(name)?
            .leave_queue(name, owner, deadline)
            .await
    }

    /// Every shard's list, merged in name order (as [`Backend::list`]).
    async fn list_queues(
        &self,
        prefix: &str,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<QueueInfo>> {
        let pages = crate::join::join_all(self.shards.iter().map(|shard| async move {
            let queues = shard
                .queues()
                .ok_or_else(|| queues_unsupported(shard.kind()))?;
            queues.list_queues(prefix, limit, deadline).await
        }))
        .await;
        merged(pages, limit, |q: &QueueInfo| q.name.clone())
    }

    fn turn_signal(&self, name: &str, owner: &str) -> Option<Arc<tokio::sync::Notify>> {
        self.shard(name).queues()?.turn_signal(name, owner)
    }
}

/// The shards' pages as one, in name order, the first `limit`.
fn merged<T>(
    pages: Vec<Result<Vec<T>>>,
    limit: usize,
    name: impl Fn(&T) -> String,
) -> Result<Vec<T>> {
    let mut all = Vec::new();
    for page in pages {
        all.extend(page?);
    }
    all.sort_by_key(|item| name(item));
    all.truncate(limit.max(1));
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryBackend;

    #[test]
    fn routing_is_stable_and_even() {
        let shards: Vec<MemoryBackend> = (0..3).map(|_| MemoryBackend::new()).collect();
        let a = ShardedBackend::new(shards.clone()).unwrap();
        let b = ShardedBackend::new(shards).unwrap();
        let mut counts = [0usize; 3];
        for i in 0..10_000 {
            let name = format!("orders/{i}");
            assert_eq!(a.shard_of(&name), b.shard_of(&name));
            counts[a.shard_of(&name)] += 1;
        }
        for count in counts {
            // Within ±10 % of an even share.
            assert!((3_000..=3_667).contains(&count), "{counts:?}");
        }
        // Fixed algorithms: these values never change.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(jump(0, 1), 0);
    }

    #[test]
    fn adding_a_shard_moves_few_names() {
        let three = ShardedBackend::new((0..3).map(|_| MemoryBackend::new())).unwrap();
        let four = ShardedBackend::new((0..4).map(|_| MemoryBackend::new())).unwrap();
        let moved = (0..10_000)
            .filter(|i| {
                let name = format!("n{i}");
                three.shard_of(&name) != four.shard_of(&name)
            })
            .count();
        assert!(moved < 3_000, "{moved} of 10000 names moved");
    }

    #[test]
    fn an_empty_shard_list_is_invalid() {
        let none: Vec<MemoryBackend> = Vec::new();
        assert!(matches!(
            ShardedBackend::new(none),
            Err(Error::InvalidOptions { .. })
        ));
    }
}
