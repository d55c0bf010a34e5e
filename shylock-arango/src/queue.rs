//! Fair queues: the line of waiters is an array in the lock's own
//! document, so a fair claim and the removal of the winner's ticket are one
//! AQL query. Writers of one line conflict (1200 / 1210) and are retried
//! with jitter within the deadline.

use std::time::Duration;

use serde_json::json;
use shylock_core::backend::{
    duration_to_millis, line_full, Deadline, Grant, QueueBackend, QueueInfo, MAX_WAITERS,
};
use shylock_core::Result;

use crate::backend::{claim_vars, ArangoBackend};
use crate::error::{ERROR_CONFLICT, ERROR_UNIQUE_CONSTRAINT};
use crate::key::{document_key, sort_key};
use crate::queries;

const CONFLICTS: [u16; 2] = [ERROR_UNIQUE_CONSTRAINT, ERROR_CONFLICT];

#[async_trait::async_trait]
impl QueueBackend for ArangoBackend {
    async fn enqueue(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<u64> {
        let mut vars = claim_vars(name, owner, ttl);
        vars.push(("maxWaiters", json!(MAX_WAITERS)));
        let rows: Vec<i64> = self
            .write_retrying("enqueue", queries::ENQUEUE, vars, deadline, &CONFLICTS, 20)
            .await
            .map_err(|e| e.into_error())?;
        match rows.first().copied() {
            Some(place) if place < 0 => Err(line_full("arangodb", name)),
            place => Ok(place.and_then(|p| u64::try_from(p).ok()).unwrap_or(0)),
        }
    }

    async fn claim_fair(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let vars = claim_vars(name, owner, ttl);
        self.claim_with("acquire (fair)", queries::CLAIM_FAIR, vars, owner, deadline)
            .await
    }

    async fn extend_ticket(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<bool> {
        let vars = vec![
            ("key", json!(document_key(name))),
            ("owner", json!(owner)),
            ("ttl", json!(duration_to_millis(ttl))),
        ];
        let rows: Vec<bool> = self
            .write_retrying(
                "extend ticket",
                queries::EXTEND_TICKET,
                vars,
                deadline,
                &CONFLICTS,
                20,
            )
            .await
            .map_err(|e| e.into_error())?;
        Ok(!rows.is_empty())
    }

    async fn leave_queue(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        let left = self.leave_queue_query(name, owner, deadline).await?;
        if left {
            // The next in line may now be first.
            self.inner().signals.notify(name);
        }
        Ok(left)
    }

    async fn list_queues(
        &self,
        prefix: &str,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<QueueInfo>> {
        #[derive(serde::Deserialize)]
        struct Row {
            name: String,
            waiting: f64,
        }
        let vars = vec![
            ("prefix", json!(sort_key(prefix))),
            ("limit", json!(limit.max(1))),
        ];
        let rows: Vec<Row> = self
            .query("list queues", queries::LIST_QUEUES, vars, deadline)
            .await
            .map_err(|e| e.into_error())?;
        Ok(rows
            .into_iter()
            .map(|row| QueueInfo::new(row.name, row.waiting.max(0.0) as u64))
            .collect())
    }
}

impl ArangoBackend {
    async fn leave_queue_query(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        let vars = vec![("key", json!(document_key(name))), ("owner", json!(owner))];
        let rows: Vec<bool> = self
            .write_retrying(
                "leave queue",
                queries::LEAVE_QUEUE,
                vars,
                deadline,
                &CONFLICTS,
                20,
            )
            .await
            .map_err(|e| e.into_error())?;
        Ok(!rows.is_empty())
    }
}
