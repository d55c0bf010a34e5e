//! Fair queues: table `shylock_tickets`, one row per waiter in line with
//! its arrival number and the expiry of its ticket. Each operation is one
//! `BEGIN IMMEDIATE` transaction; a fair claim first reads, so waiters that
//! cannot win take no write transaction.

use std::time::Duration;

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use shylock_core::backend::{
    duration_to_millis, line_full, prefix_upper_bound, system_time_from_millis, Deadline, Grant,
    QueueBackend, QueueInfo, MAX_WAITERS,
};
use shylock_core::Result;

use crate::backend::{utf8_name, SqliteBackend};
use crate::conn::{fence_of, now_ms, with_conn, BACKEND};
use crate::queries as sql;

#[async_trait::async_trait]
impl QueueBackend for SqliteBackend {
    async fn enqueue(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<u64> {
        let (owned, owner) = (name.to_owned(), owner.to_owned());
        let ttl_ms = duration_to_millis(ttl);
        with_conn(self.inner(), "enqueue", deadline, move |conn| {
            let key = owned.as_bytes();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let expires = now.saturating_add(ttl_ms);
            tx.prepare_cached(sql::TICKETS_SWEEP)?
                .execute(params![key, now])?;
            // The live holder takes no place: a renewal of its ticket that
            // raced its own winning claim must not leave a ticket nobody
            // keeps alive at the front of the line.
            let holds = tx
                .prepare_cached(sql::HOLDS_LIVE)?
                .query_row(params![key, owner, now], |_| Ok(()))
                .optional()?;
            if holds.is_some() {
                tx.commit()?;
                return Ok(Some(0));
            }
            let kept: Option<i64> = tx
                .prepare_cached(sql::TICKET_EXTEND)?
                .query_row(params![key, owner, expires, now], |r| r.get(0))
                .optional()?;
            let seq = match kept {
                Some(seq) => seq,
                None => {
                    let count: i64 = tx
                        .prepare_cached(sql::TICKETS_COUNT)?
                        .query_row(params![key], |r| r.get(0))?;
                    if u64::try_from(count).unwrap_or(0) >= MAX_WAITERS {
                        tx.commit()?;
                        return Ok(None);
                    }
                    tx.prepare_cached(sql::TICKET_INSERT)?
                        .query_row(params![key, owner, expires], |r| r.get(0))?
                }
            };
            let ahead: i64 = tx
                .prepare_cached(sql::TICKETS_AHEAD)?
                .query_row(params![key, seq], |r| r.get(0))?;
            tx.commit()?;
            Ok(Some(u64::try_from(ahead).unwrap_or(0)))
        })
        .await?
        .ok_or_else(|| line_full(BACKEND, name))
    }

    async fn claim_fair(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        let ttl_ms = duration_to_millis(ttl);
        with_conn(self.inner(), "acquire (fair)", deadline, move |conn| {
            let key = name.as_bytes();
            // Read first: a lock held by another owner, or another live
            // ticket ahead, means no write transaction at all.
            let now = now_ms();
            let holder: Option<String> = conn
                .prepare_cached(sql::INSPECT)?
                .query_row(params![key, now], |row| row.get(0))
                .optional()?;
            // The holder itself (a retry after a win whose answer was
            // lost) wins again whatever the line, keeping its fence.
            let mine = holder.as_deref() == Some(owner.as_str());
            if holder.is_some() && !mine {
                return Ok(None);
            }
            if !mine {
                let first: Option<String> = conn
                    .prepare_cached(sql::QUEUE_HEAD)?
                    .query_row(params![key, now], |row| row.get(0))
                    .optional()?;
                if first.is_some_and(|f| f != owner) {
                    return Ok(None);
                }
            }
            // The decision, in one write transaction.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            tx.prepare_cached(sql::TICKETS_SWEEP)?
                .execute(params![key, now])?;
            let mine = tx
                .prepare_cached(sql::HOLDS_LIVE)?
                .query_row(params![key, owner, now], |_| Ok(()))
                .optional()?
                .is_some();
            let first: Option<String> = if mine {
                None
            } else {
                tx.prepare_cached(sql::QUEUE_HEAD)?
                    .query_row(params![key, now], |row| row.get(0))
                    .optional()?
            };
            if first.is_some_and(|f| f != owner) {
                tx.commit()?;
                return Ok(None);
            }
            let expires = now.saturating_add(ttl_ms);
            let fence: Option<i64> = tx
                .prepare_cached(sql::ACQUIRE)?
                .query_row(params![key, owner, expires, now], |row| row.get(0))
                .optional()?;
            if fence.is_some() {
                tx.prepare_cached(sql::TICKET_LEAVE)?
                    .execute(params![key, owner])?;
            }
            tx.commit()?;
            Ok(fence.map(|f| Grant::new(fence_of(f), system_time_from_millis(expires))))
        })
        .await
    }

    async fn extend_ticket(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<bool> {
        let found = self
            .extend_with(
                "extend ticket",
                sql::TICKET_EXTEND,
                name,
                owner,
                ttl,
                deadline,
            )
            .await?;
        Ok(found.is_some())
    }

    async fn leave_queue(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        let left = self
            .write_owned("leave queue", sql::TICKET_LEAVE, name, owner, deadline)
            .await?;
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
        let upper = prefix_upper_bound(prefix).map(String::into_bytes);
        let prefix = prefix.as_bytes().to_vec();
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        with_conn(self.inner(), "list queues", deadline, move |conn| {
            let mut statement = conn.prepare_cached(sql::QUEUES_LIST)?;
            let rows = statement.query_map(params![prefix, upper, now_ms(), limit], |r| {
                let waiting: i64 = r.get(1)?;
                Ok(QueueInfo::new(
                    utf8_name(r.get(0)?)?,
                    u64::try_from(waiting).unwrap_or(0),
                ))
            })?;
            rows.collect()
        })
        .await
    }

    fn turn_signal(&self, name: &str, owner: &str) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        // Only a file has a watcher that reads the line at each commit.
        if !self.has_watcher() {
            return None;
        }
        Some(self.inner().signals.subscribe_turn(name, owner))
    }
}
