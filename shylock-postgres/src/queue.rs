//! Fair queues: one row per line in `<table>_tickets`, holding its
//! tickets as arrays (owner, arrival number from the fence sequence,
//! expiry). Enqueueing locks that row, so racing waiters each get a
//! distinct place, and drops expired tickets on the way. A fair claim takes
//! the lock only when no live ticket of another owner is first, and removes
//! the winner's ticket in the same statement. Each lock release names the
//! first live ticket in its notification, so the listener wakes only the
//! waiter whose turn it is.

use std::time::Duration;

use shylock_core::backend::{
    line_full, prefix_upper_bound, Deadline, Grant, QueueBackend, QueueInfo,
};
use shylock_core::Result;
use sqlx::Row;

use crate::backend::PostgresBackend;
use crate::conn::{int, key_of, long_name, signal_key, ttl_ms, Arg};

#[async_trait::async_trait]
impl QueueBackend for PostgresBackend {
    async fn enqueue(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<u64> {
        let args = vec![
            Arg::Bytes(key_of(name)),
            Arg::Text(owner.to_owned()),
            Arg::Int(ttl_ms(ttl)),
            Arg::OptBytes(long_name(name)),
        ];
        let ahead = self
            .count_of("enqueue", &self.inner().sql.enqueue, args, deadline, true)
            .await?;
        if ahead < 0 {
            return Err(line_full(crate::conn::BACKEND, name));
        }
        Ok(u64::try_from(ahead).unwrap_or(0))
    }

    async fn claim_fair(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let inner = self.inner();
        let args = vec![
            Arg::Bytes(key_of(name)),
            Arg::Text(owner.to_owned()),
            Arg::Int(ttl_ms(ttl)),
            Arg::OptBytes(long_name(name)),
        ];
        let row = inner
            .one("acquire (fair)", &inner.sql.claim_fair, args, deadline)
            .await?;
        self.grant_of("acquire (fair)", row)
    }

    async fn extend_ticket(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<bool> {
        let inner = self.inner();
        let args = vec![
            Arg::Bytes(key_of(name)),
            Arg::Text(owner.to_owned()),
            Arg::Int(ttl_ms(ttl)),
        ];
        let row = inner
            .one("extend ticket", &inner.sql.extend_ticket, args, deadline)
            .await?;
        Ok(row.is_some())
    }

    async fn leave_queue(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        let args = vec![Arg::Bytes(key_of(name)), Arg::Text(owner.to_owned())];
        let left = self
            .count_of(
                "leave queue",
                &self.inner().sql.leave_queue,
                args,
                deadline,
                false,
            )
            .await?;
        Ok(left > 0)
    }

    async fn list_queues(
        &self,
        prefix: &str,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<QueueInfo>> {
        const WHAT: &str = "list queues";
        let inner = self.inner();
        let args = vec![
            Arg::Bytes(prefix.as_bytes().to_vec()),
            Arg::OptBytes(prefix_upper_bound(prefix).map(String::into_bytes)),
            Arg::Int(i64::try_from(limit.max(1)).unwrap_or(i64::MAX)),
        ];
        let rows = inner
            .run(WHAT, &inner.sql.list_queues, args, deadline)
            .await?;
        rows.iter()
            .map(|row| {
                let name = String::from_utf8(row.try_get::<Vec<u8>, _>(0)?)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                Ok(QueueInfo::new(
                    name,
                    u64::try_from(int(row, 1)?).unwrap_or(0),
                ))
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(|e| inner.fail(WHAT, e))
    }

    fn turn_signal(&self, name: &str, owner: &str) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        Some(
            self.listener()
                .signals()
                .subscribe_turn(&signal_key(name), owner),
        )
    }
}
