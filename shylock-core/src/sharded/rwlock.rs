//! The read/write locks of a [`ShardedBackend`]: each name's operations go
//! to the shard that owns it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::ShardedBackend;
use crate::backend::{rwlocks_unsupported, Access, Deadline, Grant, RwLockBackend, RwLockInfo};
use crate::error::Result;

impl ShardedBackend {
    /// The read/write locks of the shard that owns `name`.
    fn rwlocks_of(&self, name: &str) -> Result<&dyn RwLockBackend> {
        let shard = self.shard(name);
        shard
            .rwlocks()
            .ok_or_else(|| rwlocks_unsupported(shard.kind()))
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl RwLockBackend for ShardedBackend {
    async fn claim_read(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        writers_first: bool,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        self.rwlocks_of(name)?
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
        self.rwlocks_of(name)?
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
        self.rwlocks_of(name)?
            .extend_rw(name, owner, ttl, deadline)
            .await
    }

    async fn release_rw(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        self.rwlocks_of(name)?
            .release_rw(name, owner, deadline)
            .await
    }

    async fn inspect_rwlock(&self, name: &str, deadline: Deadline) -> Result<RwLockInfo> {
        self.rwlocks_of(name)?.inspect_rwlock(name, deadline).await
    }

    fn release_signal(&self, name: &str, access: Access) -> Option<Arc<tokio::sync::Notify>> {
        self.shard(name).rwlocks()?.release_signal(name, access)
    }
}
