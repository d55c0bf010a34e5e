//! Read/write locks: one row per name in `<table>_rwlocks`, holding its
//! live leases as arrays (owner, whether it writes, expiry, fence) and the
//! intent of the one writer that waits. Every operation is one statement
//! (see [`RwStatements`](crate::statements::RwStatements)): a claim is one
//! `INSERT … ON CONFLICT (key) DO UPDATE` that drops expired leases and
//! lapsed intents, decides, and records a refused writer's intent; a
//! release removes the owner's lease and intent and notifies the readers
//! (`r KEY`: a writer left or stopped waiting) and a writer (`w KEY`: the
//! lock became free) in every process. Fences come from the same
//! never-reset sequence as lock fences.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shylock_core::backend::{
    system_time_from_millis, Access, Deadline, Grant, RwLockBackend, RwLockInfo,
};
use shylock_core::{LockInfo, Result};
use sqlx::Row;

use crate::backend::PostgresBackend;
use crate::conn::{fence_of, key_of, long_name, signal_key, ttl_ms, Arg};

impl PostgresBackend {
    /// One claim statement: `flag` is `writers_first` for a reader, the
    /// intent for a writer.
    async fn claim_rw(
        &self,
        what: &'static str,
        sql: &str,
        (name, owner): (&str, &str),
        ttl: Duration,
        flag: bool,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let args = vec![
            Arg::Bytes(key_of(name)),
            Arg::Text(owner.to_owned()),
            Arg::Int(ttl_ms(ttl)),
            Arg::OptBytes(long_name(name)),
            Arg::Int(i64::from(flag)),
        ];
        let row = self.inner().one(what, sql, args, deadline).await?;
        self.grant_of(what, row)
    }

    /// Wakes the waiters of this process for a release it made itself,
    /// unless the listener will (it hears this process's notifications
    /// too): every reader, and one writer.
    fn wake_local_rw(&self, name: &str, readers: bool, writer: bool) {
        if self.listener().watched_since().is_some() {
            return;
        }
        let key = signal_key(name);
        if readers {
            self.listener().read_signals().notify_every(&key);
        }
        if writer {
            self.listener().write_signals().notify(&key);
        }
    }
}

#[async_trait::async_trait]
impl RwLockBackend for PostgresBackend {
    async fn claim_read(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        writers_first: bool,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let sql = &self.inner().sql.rw.claim_read;
        self.claim_rw(
            "acquire read",
            sql,
            (name, owner),
            ttl,
            writers_first,
            deadline,
        )
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
        let sql = &self.inner().sql.rw.claim_write;
        self.claim_rw("acquire write", sql, (name, owner), ttl, intent, deadline)
            .await
    }

    async fn extend_rw(
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
            "extend read/write",
            &self.inner().sql.rw.extend,
            args,
            deadline,
        )
        .await
    }

    async fn release_rw(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        const WHAT: &str = "release read/write";
        let inner = self.inner();
        let args = vec![Arg::Bytes(key_of(name)), Arg::Text(owner.to_owned())];
        // Sent once: sent again after its answer was lost, it would find
        // the lease gone and answer that it was not held.
        let rows = inner
            .run_again(WHAT, &inner.sql.rw.release, args, deadline, false)
            .await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(false);
        };
        let read = || -> std::result::Result<(bool, bool, bool), sqlx::Error> {
            Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
        };
        let (held, readers, writer) = read().map_err(|e| inner.fail(WHAT, e))?;
        self.wake_local_rw(name, readers, writer);
        Ok(held)
    }

    async fn inspect_rwlock(&self, name: &str, deadline: Deadline) -> Result<RwLockInfo> {
        const WHAT: &str = "inspect read/write";
        let inner = self.inner();
        let args = vec![Arg::Bytes(key_of(name))];
        let rows = inner
            .run(WHAT, &inner.sql.rw.inspect, args, deadline)
            .await?;
        let (mut readers, mut writer, mut waiting) = (Vec::new(), None, false);
        for row in &rows {
            let read = || -> std::result::Result<_, sqlx::Error> {
                let owner: Option<String> = row.try_get(0)?;
                let expires: Option<i64> = row.try_get(1)?;
                let fence: Option<i64> = row.try_get(2)?;
                let write: Option<bool> = row.try_get(3)?;
                let waiting: bool = row.try_get(4)?;
                Ok((owner, expires, fence, write, waiting))
            };
            let (owner, expires, fence, write, writer_waits) =
                read().map_err(|e| inner.fail(WHAT, e))?;
            waiting = writer_waits;
            let Some(owner) = owner else { continue };
            let info = LockInfo::new(
                name,
                owner,
                fence_of(fence.unwrap_or(0)),
                system_time_from_millis(expires.unwrap_or(0)),
            );
            if write == Some(true) {
                writer = Some(info);
            } else {
                readers.push(info);
            }
        }
        Ok(RwLockInfo::new(name, readers, writer, waiting))
    }

    fn release_signal(&self, name: &str, access: Access) -> Option<Arc<tokio::sync::Notify>> {
        let signals = match access {
            Access::Read => self.listener().read_signals(),
            Access::Write => self.listener().write_signals(),
        };
        let signal = signals.subscribe(&signal_key(name));
        self.listener().ensure_running();
        Some(signal)
    }
}
