//! Semaphores: a read, then one `BEGIN IMMEDIATE` transaction per attempt
//! that can win.
//!
//! `shylock_semaphores` keeps each semaphore's permit count and last fence
//! (so tokens keep increasing after every permit is gone);
//! `shylock_permits` keeps one row per permit holder. A claim sweeps the
//! semaphore's expired permits, then takes one if fewer than the count are
//! left, all in one transaction: no cleanup job.

use std::time::{Duration, SystemTime};

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use shylock_core::backend::{
    duration_to_millis, permits_mismatch, prefix_upper_bound, system_time_from_millis, Deadline,
    Grant, SemaphoreBackend, SemaphoreInfo,
};
use shylock_core::{LockInfo, Result};

use crate::backend::{utf8_name, SqliteBackend};
use crate::conn::{fence_of, now_ms, with_conn};
use crate::queries as sql;

enum Claimed {
    Granted(Grant),
    Full,
    Mismatch(u32),
}

#[async_trait::async_trait]
impl SemaphoreBackend for SqliteBackend {
    async fn claim_permit(
        &self,
        name: &str,
        owner: &str,
        permits: u32,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let (owned, owner) = (name.to_owned(), owner.to_owned());
        let ttl_ms = duration_to_millis(ttl);
        let claimed = with_conn(self.inner(), "acquire permit", deadline, move |conn| {
            let key = owned.as_bytes();
            // Read first: a full semaphore, or one held under another
            // count, needs no write transaction (which would serialize
            // with every holder's renewal, in every process).
            let (live, stored, mine): (i64, Option<i64>, bool) = conn
                .prepare_cached(sql::PERMITS_READ)?
                .query_row(params![key, owner, now_ms()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
            if !mine && live > 0 && stored != Some(i64::from(permits)) {
                let stored = stored.and_then(|s| u32::try_from(s).ok()).unwrap_or(0);
                return Ok(Claimed::Mismatch(stored));
            }
            if !mine && live >= i64::from(permits) {
                return Ok(Claimed::Full);
            }
            // The decision, in one write transaction.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let expires = now.saturating_add(ttl_ms);
            tx.prepare_cached(sql::PERMITS_SWEEP)?
                .execute(params![key, now])?;
            let mine: Option<i64> = tx
                .prepare_cached(sql::PERMIT_EXTEND)?
                .query_row(params![key, owner, expires, now], |r| r.get(0))
                .optional()?;
            if let Some(fence) = mine {
                tx.commit()?;
                return Ok(Claimed::Granted(Grant::new(
                    fence_of(fence),
                    system_time_from_millis(expires),
                )));
            }
            let (live, stored, fence): (i64, Option<i64>, Option<i64>) = tx
                .prepare_cached(sql::SEMAPHORE_STATE)?
                .query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            if live > 0 && stored != Some(i64::from(permits)) {
                let stored = stored.and_then(|s| u32::try_from(s).ok()).unwrap_or(0);
                tx.commit()?;
                return Ok(Claimed::Mismatch(stored));
            }
            if live >= i64::from(permits) {
                tx.commit()?;
                return Ok(Claimed::Full);
            }
            let fence = fence.unwrap_or(0).saturating_add(1);
            tx.prepare_cached(sql::SEMAPHORE_UPSERT)?
                .execute(params![key, permits, fence])?;
            tx.prepare_cached(sql::PERMIT_INSERT)?
                .execute(params![key, owner, expires, fence])?;
            tx.commit()?;
            Ok(Claimed::Granted(Grant::new(
                fence_of(fence),
                system_time_from_millis(expires),
            )))
        })
        .await?;
        match claimed {
            Claimed::Granted(grant) => Ok(Some(grant)),
            Claimed::Full => Ok(None),
            Claimed::Mismatch(stored) => Err(permits_mismatch(name, stored, permits)),
        }
    }

    async fn extend_permit(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        self.extend_with(
            "extend permit",
            sql::PERMIT_EXTEND,
            name,
            owner,
            ttl,
            deadline,
        )
        .await
    }

    async fn release_permit(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        let released = self
            .write_owned("release permit", sql::PERMIT_RELEASE, name, owner, deadline)
            .await?;
        if released {
            self.permit_signals().notify(name);
        }
        Ok(released)
    }

    async fn inspect_semaphore(&self, name: &str, deadline: Deadline) -> Result<SemaphoreInfo> {
        let owned = name.to_owned();
        let rows = with_conn(self.inner(), "inspect semaphore", deadline, move |conn| {
            let mut statement = conn.prepare_cached(sql::PERMITS_LIVE)?;
            let rows = statement.query_map(params![owned.as_bytes(), now_ms()], |r| {
                let owner: String = r.get(0)?;
                let expires: i64 = r.get(1)?;
                let fence: i64 = r.get(2)?;
                let permits: Option<i64> = r.get(3)?;
                Ok((
                    LockInfo::new(
                        owned.clone(),
                        owner,
                        fence_of(fence),
                        system_time_from_millis(expires),
                    ),
                    permits,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?;
        let permits = rows
            .first()
            .and_then(|(_, p)| *p)
            .and_then(|p| u32::try_from(p).ok());
        let holders = rows.into_iter().map(|(info, _)| info).collect();
        Ok(SemaphoreInfo::new(name, permits, holders))
    }

    async fn list_semaphores(
        &self,
        prefix: &str,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<SemaphoreInfo>> {
        let upper = prefix_upper_bound(prefix).map(String::into_bytes);
        let prefix = prefix.as_bytes().to_vec();
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let rows = with_conn(self.inner(), "list semaphores", deadline, move |conn| {
            let mut statement = conn.prepare_cached(sql::SEMAPHORES_LIST)?;
            let rows = statement.query_map(params![prefix, upper, now_ms(), limit], |r| {
                let name = utf8_name(r.get(0)?)?;
                let (expires, fence): (i64, i64) = (r.get(2)?, r.get(3)?);
                let permits: Option<i64> = r.get(4)?;
                let info = LockInfo::new(
                    name,
                    r.get::<_, String>(1)?,
                    fence_of(fence),
                    system_time_from_millis(expires),
                );
                Ok((info, permits.and_then(|p| u32::try_from(p).ok())))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?;
        let mut semaphores: Vec<SemaphoreInfo> = Vec::new();
        let mut holders: Vec<LockInfo> = Vec::new();
        let mut permits = None;
        // Rows come grouped by name: one semaphore per run of a name.
        for (info, count) in rows {
            if holders.first().is_some_and(|h| h.name != info.name) {
                let done = std::mem::take(&mut holders);
                semaphores.push(SemaphoreInfo::new(done[0].name.clone(), permits, done));
            }
            permits = count;
            holders.push(info);
        }
        if let Some(first) = holders.first() {
            semaphores.push(SemaphoreInfo::new(first.name.clone(), permits, holders));
        }
        Ok(semaphores)
    }

    fn release_signal(&self, name: &str) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        let signal = self.inner().permit_signals.subscribe(name);
        self.watch();
        Some(signal)
    }
}
