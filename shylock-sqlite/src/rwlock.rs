//! Read/write locks: one `BEGIN IMMEDIATE` transaction per operation.
//!
//! `shylock_rwlocks` keeps each name's last fence (so tokens keep
//! increasing after every lease is gone) and a waiting writer's intent;
//! `shylock_rw_holders` keeps one row per reader or writer. Every attempt
//! sweeps the name's expired leases first, then decides: no cleanup job.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};
use shylock_core::backend::{
    duration_to_millis, system_time_from_millis, Access, Deadline, Grant, RwLockBackend, RwLockInfo,
};
use shylock_core::{LockInfo, Result};

use crate::backend::SqliteBackend;
use crate::conn::{fence_of, now_ms, with_conn};
use crate::queries as sql;

/// The state of a name after the sweep.
struct State {
    readers: i64,
    writers: i64,
    fence: i64,
    intent: Option<String>,
}

fn state(tx: &Transaction<'_>, key: &[u8], now: i64) -> rusqlite::Result<State> {
    tx.prepare_cached(sql::RW_STATE)?
        .query_row(params![key, now], |r| {
            Ok(State {
                readers: r.get(0)?,
                writers: r.get(1)?,
                fence: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                intent: r.get(3)?,
            })
        })
}

/// What a claim asks for.
#[derive(Clone, Copy)]
enum Claim {
    /// A read lease, refused while a writer's intent is live when
    /// `writers_first`.
    Read { writers_first: bool },
    /// The write lease; when refused, records the intent if `intent`.
    Write { intent: bool },
}

/// One claim, in one transaction.
async fn claim(
    backend: &SqliteBackend,
    name: &str,
    owner: &str,
    ttl: Duration,
    asked: Claim,
    deadline: Deadline,
) -> Result<Option<Grant>> {
    let (writer, writers_first, intent) = match asked {
        Claim::Read { writers_first } => (false, writers_first, false),
        Claim::Write { intent } => (true, false, intent),
    };
    let (owned, owner) = (name.to_owned(), owner.to_owned());
    let ttl_ms = duration_to_millis(ttl);
    let what = if writer {
        "acquire write"
    } else {
        "acquire read"
    };
    with_conn(backend.inner(), what, deadline, move |conn| {
        let key = owned.as_bytes();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = now_ms();
        let expires = now.saturating_add(ttl_ms);
        let grant = |fence: i64| {
            Some(Grant::new(
                fence_of(fence),
                system_time_from_millis(expires),
            ))
        };
        tx.prepare_cached(sql::RW_SWEEP)?
            .execute(params![key, now])?;
        let mine: Option<i64> = tx
            .prepare_cached(sql::RW_EXTEND)?
            .query_row(params![key, owner, expires, now, i64::from(writer)], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(fence) = mine {
            tx.commit()?;
            return Ok(grant(fence));
        }
        let st = state(&tx, key, now)?;
        let refused = if writer {
            st.readers > 0 || st.writers > 0
        } else {
            st.writers > 0 || (writers_first && st.intent.is_some())
        };
        if refused {
            if writer && intent {
                tx.prepare_cached(sql::RW_INTENT)?
                    .execute(params![key, owner, expires, now])?;
            }
            tx.commit()?;
            return Ok(None);
        }
        let fence = st.fence.saturating_add(1);
        let clears = if writer { Some(owner.as_str()) } else { None };
        tx.prepare_cached(sql::RW_FENCE)?
            .execute(params![key, fence, clears])?;
        tx.prepare_cached(sql::RW_INSERT)?.execute(params![
            key,
            owner,
            i64::from(writer),
            expires,
            fence
        ])?;
        tx.commit()?;
        Ok(grant(fence))
    })
    .await
}

#[async_trait::async_trait]
impl RwLockBackend for SqliteBackend {
    async fn claim_read(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        writers_first: bool,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        claim(
            self,
            name,
            owner,
            ttl,
            Claim::Read { writers_first },
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
        claim(self, name, owner, ttl, Claim::Write { intent }, deadline).await
    }

    async fn extend_rw(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        let (owned, owner) = (name.to_owned(), owner.to_owned());
        let ttl_ms = duration_to_millis(ttl);
        with_conn(self.inner(), "extend read/write", deadline, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let expires = now.saturating_add(ttl_ms);
            let side: Option<i64> = None;
            let fence: Option<i64> = tx
                .prepare_cached(sql::RW_EXTEND)?
                .query_row(params![owned.as_bytes(), owner, expires, now, side], |r| {
                    r.get(0)
                })
                .optional()?;
            tx.commit()?;
            Ok(fence.map(|_| system_time_from_millis(expires)))
        })
        .await
    }

    async fn release_rw(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        let (owned, owner) = (name.to_owned(), owner.to_owned());
        let (left, writer_left, now_free, withdrawn) =
            with_conn(self.inner(), "release read/write", deadline, move |conn| {
                let key = owned.as_bytes();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = now_ms();
                tx.prepare_cached(sql::RW_SWEEP)?
                    .execute(params![key, now])?;
                let writer: Option<i64> = tx
                    .prepare_cached(sql::RW_RELEASE)?
                    .query_row(params![key, owner], |r| r.get(0))
                    .optional()?;
                let withdrawn = tx
                    .prepare_cached(sql::RW_WITHDRAW)?
                    .execute(params![key, owner])?
                    > 0;
                let st = state(&tx, key, now)?;
                tx.commit()?;
                Ok((
                    writer.is_some(),
                    writer == Some(1),
                    st.readers == 0 && st.writers == 0,
                    withdrawn,
                ))
            })
            .await?;
        // Wake those who can win now: every reader when the writer left or
        // stopped waiting, one writer when the lock became free.
        if writer_left || withdrawn {
            self.inner().read_signals.notify_every(name);
        }
        if (left || withdrawn) && now_free {
            self.inner().write_signals.notify(name);
        }
        Ok(left)
    }

    async fn inspect_rwlock(&self, name: &str, deadline: Deadline) -> Result<RwLockInfo> {
        let owned = name.to_owned();
        let (rows, waiting) =
            with_conn(self.inner(), "inspect read/write", deadline, move |conn| {
                let key = owned.as_bytes();
                let now = now_ms();
                let mut statement = conn.prepare_cached(sql::RW_LIVE)?;
                let rows = statement
                    .query_map(params![key, now], |r| {
                        let owner: String = r.get(0)?;
                        let writer: i64 = r.get(1)?;
                        let expires: i64 = r.get(2)?;
                        let fence: i64 = r.get(3)?;
                        let info = LockInfo::new(
                            owned.clone(),
                            owner,
                            fence_of(fence),
                            system_time_from_millis(expires),
                        );
                        Ok((writer == 1, info))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let intent: Option<String> = conn
                    .prepare_cached(sql::RW_STATE)?
                    .query_row(params![key, now], |r| r.get(3))
                    .optional()?
                    .flatten();
                Ok((rows, intent.is_some()))
            })
            .await?;
        let (writers, readers): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(w, _)| *w);
        let writer = writers.into_iter().next().map(|(_, info)| info);
        let readers = readers.into_iter().map(|(_, info)| info).collect();
        Ok(RwLockInfo::new(name, readers, writer, waiting))
    }

    fn release_signal(&self, name: &str, access: Access) -> Option<Arc<tokio::sync::Notify>> {
        let signals = match access {
            Access::Read => &self.inner().read_signals,
            Access::Write => &self.inner().write_signals,
        };
        let signal = signals.subscribe(name);
        self.watch();
        Some(signal)
    }
}
