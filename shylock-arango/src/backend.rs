//! [`ArangoBackend`] and the six operations, one AQL query each.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arangors::{AqlQuery, Database};
use serde::Deserialize;
use serde_json::{json, Value};
use shylock_core::backend::{
    duration_to_millis, system_time_from_millis, Backend, Deadline, Grant, QueueBackend,
    ReleaseSignals, SemaphoreBackend,
};
use shylock_core::{LockInfo, Result};

use crate::client::{HttpClient, Login};
use crate::error::{
    error_num, is_unauthorized, timeout_error, QueryError, ERROR_CONFLICT, ERROR_UNIQUE_CONSTRAINT,
};
use crate::key::{document_key, sort_key};
use crate::queries;

/// Locks in an ArangoDB collection.
///
/// Cheap to clone; convert it into a
/// [`SharedBackend`](shylock_core::SharedBackend) with `.into()`.
#[derive(Clone)]
pub struct ArangoBackend {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The database handle and its generation (bumped by each login).
    pub(crate) db: std::sync::RwLock<(u64, Database<HttpClient>)>,
    /// With JWT: how to log in again once the token has expired.
    pub(crate) relogin: Option<Login>,
    pub(crate) relogin_lock: tokio::sync::Mutex<()>,
    pub(crate) collection: String,
    pub(crate) timeout: Duration,
    pub(crate) signals: ReleaseSignals,
    pub(crate) permit_signals: ReleaseSignals,
    /// Read/write locks: readers may enter, a writer may win.
    pub(crate) read_signals: ReleaseSignals,
    pub(crate) write_signals: ReleaseSignals,
    pub(crate) location: String,
}

impl std::fmt::Debug for ArangoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArangoBackend")
            .field("location", &self.inner.location)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeaseRow {
    owner: Option<String>,
    fence: f64,
    expires_at_ms: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InfoRow {
    owner: String,
    fence: f64,
    expires_at_ms: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListRow {
    name: String,
    owner: String,
    fence: f64,
    expires_at_ms: f64,
}

pub(crate) fn fence_of(value: f64) -> u64 {
    if value.is_finite() && value > 0.0 {
        value as u64
    } else {
        0
    }
}

impl ArangoBackend {
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        ArangoBackend { inner }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The current database handle and its login generation.
    pub(crate) fn db(&self) -> (u64, Database<HttpClient>) {
        self.inner
            .db
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Logs in again (JWT) unless another task already did since
    /// `generation` failed.
    async fn relogin(
        &self,
        login: &Login,
        generation: u64,
        deadline: Deadline,
    ) -> std::result::Result<(), arangors::ClientError> {
        let _one_at_a_time = self.inner.relogin_lock.lock().await;
        if self.db().0 != generation {
            return Ok(());
        }
        let timeout = self.inner.timeout.min(deadline.remaining());
        let db = tokio::time::timeout(timeout, login.connect())
            .await
            .map_err(|_| timeout_error())??;
        *self.inner.db.write().unwrap_or_else(|p| p.into_inner()) = (generation + 1, db);
        tracing::debug!("ArangoDB token expired; logged in again");
        Ok(())
    }

    pub(crate) async fn query<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        query: &'static str,
        vars: Vec<(&'static str, Value)>,
        deadline: Deadline,
    ) -> std::result::Result<Vec<T>, QueryError> {
        let failed = |error| QueryError {
            what: what.to_owned(),
            error,
        };
        let mut bind: HashMap<&str, Value> = vars.into_iter().collect();
        bind.insert("@coll", json!(self.inner.collection));
        let mut logged_in_again = false;
        loop {
            let aql = AqlQuery::builder()
                .query(query)
                .bind_vars(bind.clone())
                .build();
            let (generation, db) = self.db();
            let timeout = self.inner.timeout.min(deadline.remaining());
            match tokio::time::timeout(timeout, db.aql_query_batch::<T>(aql)).await {
                Ok(Ok(cursor)) => return Ok(cursor.result),
                // A 401 means the server ran nothing: log in again once and
                // repeat the query.
                Ok(Err(e)) if is_unauthorized(&e) && !logged_in_again => {
                    let Some(login) = &self.inner.relogin else {
                        return Err(failed(e));
                    };
                    logged_in_again = true;
                    self.relogin(login, generation, deadline)
                        .await
                        .map_err(failed)?;
                }
                Ok(Err(e)) => return Err(failed(e)),
                Err(_) => return Err(failed(timeout_error())),
            }
        }
    }

    /// Runs a write query, retrying write conflicts (1200) a few times
    /// within the deadline.
    pub(crate) async fn write<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        query: &'static str,
        vars: Vec<(&'static str, Value)>,
        deadline: Deadline,
    ) -> Result<Vec<T>> {
        self.write_retrying(what, query, vars, deadline, &[ERROR_CONFLICT], 5)
            .await
            .map_err(QueryError::into_error)
    }

    /// Runs a write query, retrying the errors in `retry` up to `attempts`
    /// times while the deadline allows, with a short jittered pause that
    /// grows with each attempt (writers of one hot document, such as a
    /// semaphore's, spread out instead of colliding again).
    pub(crate) async fn write_retrying<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        query: &'static str,
        vars: Vec<(&'static str, Value)>,
        deadline: Deadline,
        retry: &[u16],
        attempts: u32,
    ) -> std::result::Result<Vec<T>, QueryError> {
        let mut attempt: u32 = 1;
        loop {
            match self.query(what, query, vars.clone(), deadline).await {
                Err(e)
                    if error_num(&e.error).is_some_and(|n| retry.contains(&n))
                        && attempt < attempts =>
                {
                    let cap = u64::from(attempt.min(10)) * 5;
                    let pause = Duration::from_millis(fastrand::u64(1..=cap));
                    if deadline.remaining() <= pause {
                        return Err(e);
                    }
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[shylock_core::async_trait]
impl Backend for ArangoBackend {
    fn kind(&self) -> &'static str {
        "arangodb"
    }

    async fn claim(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let vars = claim_vars(name, owner, ttl);
        self.claim_with("acquire", queries::ACQUIRE, vars, owner, deadline)
            .await
    }

    async fn extend(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        let vars = vec![
            ("key", json!(document_key(name))),
            ("owner", json!(owner)),
            ("ttl", json!(duration_to_millis(ttl))),
        ];
        let rows: Vec<LeaseRow> = self
            .write("extend", queries::EXTEND, vars, deadline)
            .await?;
        Ok(rows
            .into_iter()
            .next()
            .map(|row| system_time_from_millis(row.expires_at_ms as i64)))
    }

    async fn release(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        let vars = vec![("key", json!(document_key(name))), ("owner", json!(owner))];
        let rows: Vec<bool> = self
            .write("release", queries::RELEASE, vars, deadline)
            .await?;
        let released = !rows.is_empty();
        if released {
            self.inner.signals.notify(name);
        }
        Ok(released)
    }

    async fn inspect(&self, name: &str, deadline: Deadline) -> Result<Option<LockInfo>> {
        let vars = vec![("key", json!(document_key(name)))];
        let rows: Vec<InfoRow> = self
            .query("inspect", queries::INSPECT, vars, deadline)
            .await
            .map_err(QueryError::into_error)?;
        Ok(rows.into_iter().next().map(|row| {
            LockInfo::new(
                name,
                row.owner,
                fence_of(row.fence),
                system_time_from_millis(row.expires_at_ms as i64),
            )
        }))
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<LockInfo>> {
        let vars = vec![
            ("prefix", json!(sort_key(prefix))),
            ("after", json!(after.map(sort_key).unwrap_or_default())),
            ("limit", json!(limit.max(1))),
        ];
        let rows: Vec<ListRow> = self
            .query("list", queries::LIST, vars, deadline)
            .await
            .map_err(QueryError::into_error)?;
        Ok(rows
            .into_iter()
            .map(|row| {
                LockInfo::new(
                    row.name,
                    row.owner,
                    fence_of(row.fence),
                    system_time_from_millis(row.expires_at_ms as i64),
                )
            })
            .collect())
    }

    async fn force_release(&self, name: &str, deadline: Deadline) -> Result<bool> {
        let vars = vec![("key", json!(document_key(name)))];
        let rows: Vec<bool> = self
            .write("force_release", queries::FORCE_RELEASE, vars, deadline)
            .await?;
        self.inner.signals.notify(name);
        Ok(rows.into_iter().any(|live| live))
    }

    fn release_signal(&self, name: &str) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.inner.signals.subscribe(name))
    }

    fn semaphores(&self) -> Option<&dyn SemaphoreBackend> {
        Some(self)
    }

    fn queues(&self) -> Option<&dyn QueueBackend> {
        Some(self)
    }

    fn rwlocks(&self) -> Option<&dyn shylock_core::backend::RwLockBackend> {
        Some(self)
    }
}

/// The bind variables of `ACQUIRE`, `CLAIM_FAIR` and `ENQUEUE`.
pub(crate) fn claim_vars(name: &str, owner: &str, ttl: Duration) -> Vec<(&'static str, Value)> {
    vec![
        ("key", json!(document_key(name))),
        ("name", json!(name)),
        ("sortKey", json!(sort_key(name))),
        ("owner", json!(owner)),
        ("ttl", json!(duration_to_millis(ttl))),
    ]
}

impl ArangoBackend {
    /// One claim query (`ACQUIRE` or `CLAIM_FAIR`); a grant when the lock
    /// came back owned by `owner`. A lost first-creation race (1210) or a
    /// write conflict (1200) means another caller took it.
    pub(crate) async fn claim_with(
        &self,
        what: &str,
        query: &'static str,
        vars: Vec<(&'static str, Value)>,
        owner: &str,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        // A write conflict (1200) no longer means another claimer won: the
        // line's tickets live in the lock's document, so an enqueue or a
        // ticket renewal conflicts with a claim of a free lock. The claim
        // is tried again within the deadline; a conflict left at the end
        // (or a lost first-creation race, 1210) reads as "held".
        let conflicts = [ERROR_UNIQUE_CONSTRAINT, ERROR_CONFLICT];
        let rows: Vec<LeaseRow> = match self
            .write_retrying(what, query, vars, deadline, &conflicts, 20)
            .await
        {
            Ok(rows) => rows,
            Err(e)
                if matches!(
                    error_num(&e.error),
                    Some(ERROR_UNIQUE_CONSTRAINT | ERROR_CONFLICT)
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e.into_error()),
        };
        Ok(rows
            .into_iter()
            .next()
            .filter(|row| row.owner.as_deref() == Some(owner))
            .map(|row| {
                Grant::new(
                    fence_of(row.fence),
                    system_time_from_millis(row.expires_at_ms as i64),
                )
            }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_never_shows_passwords() {
        use crate::ArangoBackend;
        let b = ArangoBackend::builder("http://x").basic_auth("root", "hunter2");
        assert!(!format!("{b:?}").contains("hunter2"));
        let b = ArangoBackend::builder("http://x").jwt("root", "hunter2");
        assert!(!format!("{b:?}").contains("hunter2"));
    }
}
