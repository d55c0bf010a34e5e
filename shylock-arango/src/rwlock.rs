//! Read/write locks: one document per name (key from
//! [`rwlock_key`](crate::rwlock_key)) with `fence`, `holders: [{owner,
//! expiresAtMs, fence, w}]` (the readers, or the writer with `w: true`),
//! `intents: [{owner, untilMs}]` (at most one waiting writer) and
//! `expiresAt` (the latest expiry of either, in seconds, for the TTL
//! index); one AQL query per operation.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::json;
use shylock_core::backend::{
    duration_to_millis, system_time_from_millis, Access, Deadline, Grant, RwLockBackend, RwLockInfo,
};
use shylock_core::{LockInfo, Result};

use crate::backend::{fence_of, ArangoBackend};
use crate::error::{error_num, QueryError, ERROR_CONFLICT, ERROR_UNIQUE_CONSTRAINT};
use crate::key::rwlock_key;
use crate::queries;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClaimRow {
    held: bool,
    fence: Option<f64>,
    expires_at_ms: Option<f64>,
}

#[derive(Deserialize)]
struct ReleaseRow {
    held: bool,
    writer: bool,
    withdrawn: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HolderRow {
    owner: String,
    fence: f64,
    expires_at_ms: f64,
    w: bool,
}

#[derive(Deserialize)]
struct RwRow {
    holders: Vec<HolderRow>,
    waiting: bool,
}

impl ArangoBackend {
    /// One CLAIM_RW query.
    async fn claim_rw(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        (write, first, intent): (bool, bool, bool),
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let vars = vec![
            ("key", json!(rwlock_key(name))),
            ("name", json!(name)),
            ("owner", json!(owner)),
            ("ttl", json!(duration_to_millis(ttl))),
            ("write", json!(write)),
            ("first", json!(first)),
            ("intent", json!(intent)),
        ];
        // A first-creation race (1210) or a write conflict (1200) means
        // another claim wrote first; the next attempt sees its write.
        let conflicts = [ERROR_UNIQUE_CONSTRAINT, ERROR_CONFLICT];
        let what = if write {
            "acquire write"
        } else {
            "acquire read"
        };
        let rows: Vec<ClaimRow> = match self
            .write_retrying(what, queries::CLAIM_RW, vars, deadline, &conflicts, 20)
            .await
        {
            Ok(rows) => rows,
            Err(e) if error_num(&e.error).is_some_and(|n| conflicts.contains(&n)) => {
                return Ok(None)
            }
            Err(e) => return Err(e.into_error()),
        };
        match rows.into_iter().next() {
            Some(ClaimRow {
                held: true,
                fence: Some(fence),
                expires_at_ms: Some(expires),
            }) => Ok(Some(Grant::new(
                fence_of(fence),
                system_time_from_millis(expires as i64),
            ))),
            _ => Ok(None),
        }
    }
}

#[async_trait::async_trait]
impl RwLockBackend for ArangoBackend {
    async fn claim_read(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        writers_first: bool,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        self.claim_rw(name, owner, ttl, (false, writers_first, false), deadline)
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
        self.claim_rw(name, owner, ttl, (true, false, intent), deadline)
            .await
    }

    async fn extend_rw(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        // The holders' update is the semaphore's, on this document.
        let vars = vec![
            ("key", json!(rwlock_key(name))),
            ("owner", json!(owner)),
            ("ttl", json!(duration_to_millis(ttl))),
        ];
        let rows: Vec<f64> = self
            .write_retrying(
                "extend read/write",
                queries::EXTEND_PERMIT,
                vars,
                deadline,
                &[ERROR_CONFLICT],
                50,
            )
            .await
            .map_err(QueryError::into_error)?;
        Ok(rows
            .into_iter()
            .next()
            .map(|ms| system_time_from_millis(ms as i64)))
    }

    async fn release_rw(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        let vars = vec![("key", json!(rwlock_key(name))), ("owner", json!(owner))];
        let rows: Vec<ReleaseRow> = self
            .write_retrying(
                "release read/write",
                queries::RELEASE_RW,
                vars,
                deadline,
                &[ERROR_CONFLICT],
                50,
            )
            .await
            .map_err(QueryError::into_error)?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(false);
        };
        // Wake those who may win now: every reader when the writer left or
        // stopped waiting, one writer at any release.
        if row.writer || row.withdrawn {
            self.inner().read_signals.notify_every(name);
        }
        self.inner().write_signals.notify(name);
        Ok(row.held)
    }

    async fn inspect_rwlock(&self, name: &str, deadline: Deadline) -> Result<RwLockInfo> {
        let vars = vec![("key", json!(rwlock_key(name)))];
        let rows: Vec<RwRow> = self
            .query("inspect read/write", queries::INSPECT_RW, vars, deadline)
            .await
            .map_err(QueryError::into_error)?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(RwLockInfo::new(name, Vec::new(), None, false));
        };
        let (mut readers, mut writer) = (Vec::new(), None);
        for h in row.holders {
            let info = LockInfo::new(
                name,
                h.owner,
                fence_of(h.fence),
                system_time_from_millis(h.expires_at_ms as i64),
            );
            if h.w {
                writer = Some(info);
            } else {
                readers.push(info);
            }
        }
        Ok(RwLockInfo::new(name, readers, writer, row.waiting))
    }

    fn release_signal(&self, name: &str, access: Access) -> Option<Arc<tokio::sync::Notify>> {
        Some(match access {
            Access::Read => self.inner().read_signals.subscribe(name),
            Access::Write => self.inner().write_signals.subscribe(name),
        })
    }
}
