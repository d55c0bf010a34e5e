//! [`PostgresBackend`]: the six single-lock operations, one statement each.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shylock_core::backend::{
    prefix_upper_bound, system_time_from_millis, Backend, Deadline, Grant, QueueBackend,
    RwLockBackend, SemaphoreBackend,
};
use shylock_core::{LockInfo, Result};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::Row;

use crate::conn::{
    fence_of, int, key_of, long_name, random_u64, signal_key, ttl_ms, Arg, Inner, StatementMode,
    BACKEND,
};
use crate::listen::Listener;
use crate::statements::Statements;

/// Locks in a PostgreSQL table, shared by every process that uses the
/// same database, schema and table.
///
/// Cheap to clone: clones share the pool and the release listener. Build
/// one with [`PostgresBackend::connect`], [`PostgresBackend::new`] (from
/// the application's `PgPool`) or [`PostgresBackend::builder`]; convert it
/// into a [`SharedBackend`](shylock_core::SharedBackend) with `.into()`.
#[derive(Clone)]
pub struct PostgresBackend {
    inner: Arc<Inner>,
    listener: Listener,
}

impl std::fmt::Debug for PostgresBackend {
    // The pool's options hold the password: only the place is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("location", &self.inner.location)
            .field("mode", &self.inner.mode)
            .finish()
    }
}

impl PostgresBackend {
    pub(crate) fn from_parts(
        pool: PgPool,
        sql: Statements,
        mode: StatementMode,
        location: String,
        listen: (bool, bool),
        listener_pool: Option<PgPool>,
    ) -> Self {
        let (listen, share) = listen;
        let listener = Listener::new(
            listener_pool.unwrap_or_else(|| pool.clone()),
            &sql.channel,
            listen,
            share,
        );
        PostgresBackend {
            inner: Arc::new(Inner {
                pool,
                sql,
                mode,
                location,
            }),
            listener,
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(crate) fn listener(&self) -> &Listener {
        &self.listener
    }

    /// Wakes a waiter of this process for a release it made itself, unless
    /// the listener will (it hears this process's notifications too).
    pub(crate) fn wake_local(&self, name: &str, permits: bool) {
        if self.listener.watched_since().is_some() {
            return;
        }
        let key = signal_key(name);
        if permits {
            self.listener.permit_signals().notify(&key);
        } else {
            self.listener.signals().notify(&key);
        }
    }

    /// The pool this backend sends its statements through.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The lock table, as `schema.table`.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// The SQL this backend sends (for the benchmark and for operators
    /// who create the tables themselves: `statements().schema`).
    #[cfg(feature = "bench")]
    pub fn statements(&self) -> &Statements {
        &self.inner.sql
    }

    /// Starts the release listener (see [`PostgresBackendBuilder::listen`])
    /// and waits at most `timeout` until it works (its own probe
    /// notification came back). `false` when listening is off or does not
    /// work here (e.g. behind a transaction pooler); waiters then poll with
    /// backoff.
    ///
    /// [`PostgresBackendBuilder::listen`]: crate::PostgresBackendBuilder::listen
    pub async fn release_listener_ready(&self, timeout: Duration) -> bool {
        self.listener.ready(timeout).await
    }

    /// Runs a statement that returns one row with one expiry (ms) when it
    /// applied: extend and its permit twin.
    pub(crate) async fn expiry_of(
        &self,
        what: &'static str,
        sql: &str,
        args: Vec<Arg>,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        let row = self.inner.one(what, sql, args, deadline).await?;
        row.map(|r| int(&r, 0).map(system_time_from_millis))
            .transpose()
            .map_err(|e| self.inner.fail(what, e))
    }

    /// Runs a statement whose first row's first column counts what changed;
    /// `again`: whether it may be sent twice (see [`Inner::run`]).
    pub(crate) async fn count_of(
        &self,
        what: &'static str,
        sql: &str,
        args: Vec<Arg>,
        deadline: Deadline,
        again: bool,
    ) -> Result<i64> {
        let rows = self
            .inner
            .run_again(what, sql, args, deadline, again)
            .await?;
        let row = rows.into_iter().next();
        row.map(|r| int(&r, 0))
            .transpose()
            .map(|n| n.unwrap_or(0))
            .map_err(|e| self.inner.fail(what, e))
    }

    /// A (fence, expiry ms) row as a grant.
    pub(crate) fn grant_of(&self, what: &str, row: Option<PgRow>) -> Result<Option<Grant>> {
        let Some(row) = row else { return Ok(None) };
        let fence = int(&row, 0).map_err(|e| self.inner.fail(what, e))?;
        let expires = int(&row, 1).map_err(|e| self.inner.fail(what, e))?;
        Ok(Some(Grant::new(
            fence_of(fence),
            system_time_from_millis(expires),
        )))
    }
}

/// A (owner, expiry ms, fence) row as a holder of `name`.
pub(crate) fn holder_of(name: &str, row: &PgRow) -> std::result::Result<LockInfo, sqlx::Error> {
    let owner: String = row.try_get(0)?;
    Ok(LockInfo::new(
        name,
        owner,
        fence_of(int(row, 2)?),
        system_time_from_millis(int(row, 1)?),
    ))
}

fn utf8(bytes: Vec<u8>) -> std::result::Result<String, sqlx::Error> {
    String::from_utf8(bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

#[shylock_core::async_trait]
impl Backend for PostgresBackend {
    fn kind(&self) -> &'static str {
        BACKEND
    }

    async fn claim(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let args = vec![
            Arg::Bytes(key_of(name)),
            Arg::Text(owner.to_owned()),
            Arg::Int(ttl_ms(ttl)),
            Arg::OptBytes(long_name(name)),
        ];
        let row = self
            .inner
            .one("acquire", &self.inner.sql.claim, args, deadline)
            .await?;
        self.grant_of("acquire", row)
    }

    async fn extend(
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
        self.expiry_of("extend", &self.inner.sql.extend, args, deadline)
            .await
    }

    async fn release(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        let args = vec![
            Arg::Bytes(key_of(name)),
            Arg::Text(owner.to_owned()),
            Arg::Text(format!("{:016x}", random_u64())),
        ];
        let released = self
            .count_of("release", &self.inner.sql.release, args, deadline, true)
            .await?
            > 0;
        if released {
            self.wake_local(name, false);
        }
        Ok(released)
    }

    async fn inspect(&self, name: &str, deadline: Deadline) -> Result<Option<LockInfo>> {
        let args = vec![Arg::Bytes(key_of(name))];
        let row = self
            .inner
            .one("inspect", &self.inner.sql.inspect, args, deadline)
            .await?;
        row.map(|r| holder_of(name, &r))
            .transpose()
            .map_err(|e| self.inner.fail("inspect", e))
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<LockInfo>> {
        let args = vec![
            Arg::Bytes(prefix.as_bytes().to_vec()),
            Arg::OptBytes(prefix_upper_bound(prefix).map(String::into_bytes)),
            Arg::OptBytes(after.map(|a| a.as_bytes().to_vec())),
            Arg::Int(i64::try_from(limit.max(1)).unwrap_or(i64::MAX)),
        ];
        let rows = self
            .inner
            .run("list", &self.inner.sql.list, args, deadline)
            .await?;
        let read = |row: &PgRow| -> std::result::Result<LockInfo, sqlx::Error> {
            let name = utf8(row.try_get::<Vec<u8>, _>(0)?)?;
            let owner: String = row.try_get(1)?;
            Ok(LockInfo::new(
                name,
                owner,
                fence_of(int(row, 3)?),
                system_time_from_millis(int(row, 2)?),
            ))
        };
        rows.iter()
            .map(read)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| self.inner.fail("list", e))
    }

    async fn force_release(&self, name: &str, deadline: Deadline) -> Result<bool> {
        let args = vec![Arg::Bytes(key_of(name))];
        let live = self
            .count_of(
                "force_release",
                &self.inner.sql.force_release,
                args,
                deadline,
                false,
            )
            .await?
            > 0;
        self.wake_local(name, false);
        Ok(live)
    }

    fn release_signal(&self, name: &str) -> Option<Arc<tokio::sync::Notify>> {
        let signal = self.listener.signals().subscribe(&signal_key(name));
        self.listener.ensure_running();
        Some(signal)
    }

    fn releases_watched_since(&self, _name: &str) -> Option<std::time::Instant> {
        self.listener.watched_since()
    }

    fn semaphores(&self) -> Option<&dyn SemaphoreBackend> {
        Some(self)
    }

    fn queues(&self) -> Option<&dyn QueueBackend> {
        Some(self)
    }

    fn rwlocks(&self) -> Option<&dyn RwLockBackend> {
        Some(self)
    }
}
