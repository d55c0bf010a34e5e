//! Semaphores: one row per semaphore in `<table>_semaphores`, holding its
//! permit count and its live holders as three arrays (owner, expiry,
//! fence), like MongoDB's one document per semaphore. A claim is one
//! statement: an `UPDATE` of that row where it has room (or the owner
//! already holds a permit), else an `INSERT … ON CONFLICT DO NOTHING` of a
//! new row. A row the `UPDATE` finds changed by a concurrent claim or
//! release is judged again on its newest version once that statement
//! ended (READ COMMITTED), so the count of live holders is exact under
//! concurrency; a full row is skipped without a lock, so a claim that gets
//! no permit writes nothing. Expired holders are dropped by the claim
//! itself. Tokens come from the same never-reset sequence as lock
//! fences, so they increase across every permit of a semaphore, also after
//! its row was swept.

use std::time::{Duration, SystemTime};

use shylock_core::backend::{
    permits_mismatch, prefix_upper_bound, system_time_from_millis, Deadline, Grant,
    SemaphoreBackend, SemaphoreInfo,
};
use shylock_core::{LockInfo, Result};
use sqlx::Row;

use crate::backend::{holder_of, PostgresBackend};
use crate::conn::{fence_of, int, key_of, long_name, signal_key, ttl_ms, Arg};

#[async_trait::async_trait]
impl SemaphoreBackend for PostgresBackend {
    async fn claim_permit(
        &self,
        name: &str,
        owner: &str,
        permits: u32,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        const WHAT: &str = "acquire permit";
        let inner = self.inner();
        let args = vec![
            Arg::Bytes(key_of(name)),
            Arg::Text(owner.to_owned()),
            Arg::Int(i64::from(permits)),
            Arg::Int(ttl_ms(ttl)),
            Arg::OptBytes(long_name(name)),
        ];
        let Some(row) = inner
            .one(WHAT, &inner.sql.claim_permit, args, deadline)
            .await?
        else {
            return Ok(None);
        };
        let read = || -> std::result::Result<_, sqlx::Error> {
            let granted: bool = row.try_get(0)?;
            let fence: Option<i64> = row.try_get(1)?;
            let expires: Option<i64> = row.try_get(2)?;
            let stored: Option<i32> = row.try_get(3)?;
            let live: Option<i64> = row.try_get(4)?;
            Ok((granted, fence, expires, stored, live))
        };
        let (granted, fence, expires, stored, live) = read().map_err(|e| inner.fail(WHAT, e))?;
        if granted {
            return Ok(Some(Grant::new(
                fence_of(fence.unwrap_or(0)),
                system_time_from_millis(expires.unwrap_or(0)),
            )));
        }
        let stored = stored.and_then(|s| u32::try_from(s).ok()).unwrap_or(0);
        if live.unwrap_or(0) > 0 && stored != permits {
            return Err(permits_mismatch(name, stored, permits));
        }
        Ok(None)
    }

    async fn extend_permit(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        let args = vec![
            Arg::Bytes(key_of(name)),
            Arg::Text(owner.to_owned()),
            Arg::Int(ttl_ms(ttl)),
        ];
        self.expiry_of(
            "extend permit",
            &self.inner().sql.extend_permit,
            args,
            deadline,
        )
        .await
    }

    async fn release_permit(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        let args = vec![Arg::Bytes(key_of(name)), Arg::Text(owner.to_owned())];
        let released = self
            .count_of(
                "release permit",
                &self.inner().sql.release_permit,
                args,
                deadline,
                false,
            )
            .await?
            > 0;
        if released {
            self.wake_local(name, true);
        }
        Ok(released)
    }

    async fn inspect_semaphore(&self, name: &str, deadline: Deadline) -> Result<SemaphoreInfo> {
        const WHAT: &str = "inspect semaphore";
        let inner = self.inner();
        let args = vec![Arg::Bytes(key_of(name))];
        let rows = inner
            .run(WHAT, &inner.sql.inspect_semaphore, args, deadline)
            .await?;
        let mut permits = None;
        let mut holders = Vec::with_capacity(rows.len());
        for row in &rows {
            let stored: i32 = row.try_get(3).map_err(|e| inner.fail(WHAT, e))?;
            permits = u32::try_from(stored).ok();
            holders.push(holder_of(name, row).map_err(|e| inner.fail(WHAT, e))?);
        }
        Ok(SemaphoreInfo::new(name, permits, holders))
    }

    async fn list_semaphores(
        &self,
        prefix: &str,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<SemaphoreInfo>> {
        const WHAT: &str = "list semaphores";
        let inner = self.inner();
        let args = vec![
            Arg::Bytes(prefix.as_bytes().to_vec()),
            Arg::OptBytes(prefix_upper_bound(prefix).map(String::into_bytes)),
            Arg::Int(i64::try_from(limit.max(1)).unwrap_or(i64::MAX)),
        ];
        let rows = inner
            .run(WHAT, &inner.sql.list_semaphores, args, deadline)
            .await?;
        // One row per live holder, in name order: grouped by name.
        let mut all: Vec<(String, Option<u32>, Vec<LockInfo>)> = Vec::new();
        for row in &rows {
            let read = || -> std::result::Result<(String, LockInfo, i32), sqlx::Error> {
                let name = String::from_utf8(row.try_get::<Vec<u8>, _>(0)?)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                let owner: String = row.try_get(1)?;
                let holder = LockInfo::new(
                    name.clone(),
                    owner,
                    fence_of(int(row, 3)?),
                    system_time_from_millis(int(row, 2)?),
                );
                Ok((name, holder, row.try_get(4)?))
            };
            let (name, holder, permits) = read().map_err(|e| inner.fail(WHAT, e))?;
            match all.last_mut() {
                Some((last, _, holders)) if *last == name => holders.push(holder),
                _ => all.push((name, u32::try_from(permits).ok(), vec![holder])),
            }
        }
        Ok(all
            .into_iter()
            .map(|(name, permits, holders)| SemaphoreInfo::new(name, permits, holders))
            .collect())
    }

    fn release_signal(&self, name: &str) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        let signal = self
            .listener()
            .permit_signals()
            .subscribe(&signal_key(name));
        self.listener().ensure_running();
        Some(signal)
    }
}
