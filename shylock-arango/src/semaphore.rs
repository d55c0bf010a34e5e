//! Semaphores: one document per semaphore (key from
//! [`semaphore_key`](crate::semaphore_key)) with `permits`, `fence`,
//! `holders: [{owner, expiresAtMs, fence}]` and `expiresAt` (the latest
//! holder expiry, in seconds, for the TTL index); one AQL query per
//! operation.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::json;
use shylock_core::backend::{
    duration_to_millis, permits_mismatch, system_time_from_millis, Deadline, Grant,
    SemaphoreBackend, SemaphoreInfo,
};
use shylock_core::{LockInfo, Result};

use crate::backend::{fence_of, ArangoBackend};
use crate::error::{error_num, QueryError, ERROR_CONFLICT, ERROR_UNIQUE_CONSTRAINT};
use crate::key::semaphore_key;
use crate::queries;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClaimRow {
    held: bool,
    fence: Option<f64>,
    expires_at_ms: Option<f64>,
    busy: bool,
    permits: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HolderRow {
    owner: String,
    fence: f64,
    expires_at_ms: f64,
}

#[derive(Deserialize)]
struct SemaphoreRow {
    #[serde(default)]
    name: Option<String>,
    permits: Option<serde_json::Value>,
    holders: Vec<HolderRow>,
}

impl SemaphoreRow {
    fn into_info(self, name: &str) -> SemaphoreInfo {
        let holders = self
            .holders
            .into_iter()
            .map(|h| {
                LockInfo::new(
                    name,
                    h.owner,
                    fence_of(h.fence),
                    system_time_from_millis(h.expires_at_ms as i64),
                )
            })
            .collect();
        SemaphoreInfo::new(name, permits_of(self.permits.as_ref()), holders)
    }
}

fn permits_of(value: Option<&serde_json::Value>) -> Option<u32> {
    value
        .and_then(serde_json::Value::as_f64)
        .filter(|v| v.fract() == 0.0 && *v >= 0.0 && *v <= f64::from(u32::MAX))
        .map(|v| v as u32)
}

#[async_trait::async_trait]
impl SemaphoreBackend for ArangoBackend {
    async fn claim_permit(
        &self,
        name: &str,
        owner: &str,
        permits: u32,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let vars = vec![
            ("key", json!(semaphore_key(name))),
            ("name", json!(name)),
            ("owner", json!(owner)),
            ("permits", json!(permits)),
            ("ttl", json!(duration_to_millis(ttl))),
        ];
        // A first-creation race (1210) or a write conflict (1200) means
        // another claim wrote first; the next attempt sees its write.
        let conflicts = [ERROR_UNIQUE_CONSTRAINT, ERROR_CONFLICT];
        let rows: Vec<ClaimRow> = match self
            .write_retrying(
                "acquire permit",
                queries::CLAIM_PERMIT,
                vars,
                deadline,
                &conflicts,
                20,
            )
            .await
        {
            Ok(rows) => rows,
            Err(e) if error_num(&e.error).is_some_and(|n| conflicts.contains(&n)) => {
                return Ok(None)
            }
            Err(e) => return Err(e.into_error()),
        };
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        if row.held {
            let (Some(fence), Some(expires)) = (row.fence, row.expires_at_ms) else {
                return Ok(None);
            };
            return Ok(Some(Grant::new(
                fence_of(fence),
                system_time_from_millis(expires as i64),
            )));
        }
        match permits_of(row.permits.as_ref()) {
            Some(stored) if row.busy && stored != permits => {
                Err(permits_mismatch(name, stored, permits))
            }
            _ => Ok(None),
        }
    }

    async fn extend_permit(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        let vars = vec![
            ("key", json!(semaphore_key(name))),
            ("owner", json!(owner)),
            ("ttl", json!(duration_to_millis(ttl))),
        ];
        let rows: Vec<f64> = self
            .write_retrying(
                "extend permit",
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

    async fn release_permit(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        let released = self.release_permit_query(name, owner, deadline).await?;
        if released {
            self.inner().permit_signals.notify(name);
        }
        Ok(released)
    }

    async fn inspect_semaphore(&self, name: &str, deadline: Deadline) -> Result<SemaphoreInfo> {
        let vars = vec![("key", json!(semaphore_key(name)))];
        let rows: Vec<SemaphoreRow> = self
            .query(
                "inspect semaphore",
                queries::INSPECT_SEMAPHORE,
                vars,
                deadline,
            )
            .await
            .map_err(QueryError::into_error)?;
        Ok(match rows.into_iter().next() {
            Some(row) => row.into_info(name),
            None => SemaphoreInfo::new(name, None, Vec::new()),
        })
    }

    async fn list_semaphores(
        &self,
        prefix: &str,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<SemaphoreInfo>> {
        let vars = vec![("prefix", json!(prefix)), ("limit", json!(limit.max(1)))];
        let rows: Vec<SemaphoreRow> = self
            .query("list semaphores", queries::LIST_SEMAPHORES, vars, deadline)
            .await
            .map_err(QueryError::into_error)?;
        Ok(rows
            .into_iter()
            .map(|mut row| {
                let name = row.name.take().unwrap_or_default();
                row.into_info(&name)
            })
            .collect())
    }

    fn release_signal(&self, name: &str) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.inner().permit_signals.subscribe(name))
    }
}

impl ArangoBackend {
    async fn release_permit_query(
        &self,
        name: &str,
        owner: &str,
        deadline: Deadline,
    ) -> Result<bool> {
        let vars = vec![("key", json!(semaphore_key(name))), ("owner", json!(owner))];
        let rows: Vec<bool> = self
            .write_retrying(
                "release permit",
                queries::RELEASE_PERMIT,
                vars,
                deadline,
                &[ERROR_CONFLICT],
                50,
            )
            .await
            .map_err(QueryError::into_error)?;
        Ok(!rows.is_empty())
    }
}
