//! [`MongoBackend`] and the six operations, one round trip each.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bson::{doc, Bson, Document};
use mongodb::options::ReturnDocument;
use mongodb::Collection;
use shylock_core::backend::{duration_to_millis, prefix_upper_bound, Backend, Deadline, Grant};
use shylock_core::{LockInfo, Result};

use crate::error::{corrupt, is_duplicate_key, mongo_error, retry_rate_limited};
use crate::queries;
use crate::watcher::ReleaseWatcher;

/// Locks in a MongoDB collection.
///
/// Cheap to clone (an `Arc` inside); convert it into a
/// [`SharedBackend`](shylock_core::SharedBackend) with `.into()`. Its `Debug`
/// output names the database and collection, never credentials.
#[derive(Clone)]
pub struct MongoBackend {
    inner: Arc<Inner>,
}

struct Inner {
    collection: Collection<Document>,
    namespace: String,
    watcher: ReleaseWatcher,
}

impl std::fmt::Debug for MongoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoBackend")
            .field("namespace", &self.inner.namespace)
            .finish()
    }
}

impl MongoBackend {
    pub(crate) fn from_parts(
        collection: Collection<Document>,
        namespace: String,
        watch_releases: bool,
    ) -> Self {
        MongoBackend {
            inner: Arc::new(Inner {
                watcher: ReleaseWatcher::new(collection.clone(), watch_releases),
                collection,
                namespace,
            }),
        }
    }

    /// The `database.collection` this backend uses.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The collection holding the lock documents.
    pub fn collection(&self) -> &Collection<Document> {
        &self.inner.collection
    }

    /// Starts the release watcher (see
    /// [`MongoBackendBuilder::watch_releases`](crate::MongoBackendBuilder::watch_releases))
    /// if it is not running and waits at most `timeout` until its change
    /// stream delivers. Returns whether releases by other processes now wake
    /// this process's waiters; `false` when watching is off or change
    /// streams are unavailable.
    pub async fn release_watcher_ready(&self, timeout: Duration) -> bool {
        self.inner.watcher.ready(timeout).await
    }
}

fn fence_of(doc: &Document) -> Result<u64> {
    let raw = match doc.get("fence") {
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Int32(v)) => i64::from(*v),
        Some(Bson::Double(v)) if v.is_finite() => *v as i64,
        other => return Err(corrupt(&format!("has no valid `fence` field ({other:?})"))),
    };
    Ok(u64::try_from(raw).unwrap_or(0))
}

fn expires_of(doc: &Document) -> Result<SystemTime> {
    match doc.get("expiresAt") {
        Some(Bson::DateTime(dt)) => Ok(dt.to_system_time()),
        other => Err(corrupt(&format!(
            "has no valid `expiresAt` date ({other:?})"
        ))),
    }
}

fn info_of(name: String, doc: &Document) -> Result<LockInfo> {
    let owner = match doc.get("owner") {
        Some(Bson::String(owner)) => owner.clone(),
        other => return Err(corrupt(&format!("has no valid `owner` ({other:?})"))),
    };
    Ok(LockInfo::new(name, owner, fence_of(doc)?, expires_of(doc)?))
}

/// The server-side time limit for a command with `deadline`.
fn max_time(deadline: Deadline) -> Duration {
    deadline.remaining().max(Duration::from_millis(1))
}

#[shylock_core::async_trait]
impl Backend for MongoBackend {
    async fn claim(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let pipeline = queries::acquire_pipeline(owner, duration_to_millis(ttl));
        let outcome = retry_rate_limited(|| {
            self.inner
                .collection
                .find_one_and_update(doc! { "_id": name }, pipeline.clone())
                .upsert(true)
                .return_document(ReturnDocument::After)
                .projection(queries::lease_projection())
                .max_time(max_time(deadline))
        })
        .await;
        let doc = match outcome {
            Ok(Some(doc)) => doc,
            // An upsert always returns the document; treat "none" as held.
            Ok(None) => return Ok(None),
            Err(e) if is_duplicate_key(&e) => return Ok(None),
            Err(e) => return Err(mongo_error("acquire (findOneAndUpdate)", e)),
        };
        if doc.get_str("owner").ok() != Some(owner) {
            return Ok(None);
        }
        Ok(Some(Grant::new(fence_of(&doc)?, expires_of(&doc)?)))
    }

    async fn extend(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        let (filter, update) = queries::extend(name, owner, duration_to_millis(ttl));
        let doc = retry_rate_limited(|| {
            self.inner
                .collection
                .find_one_and_update(filter.clone(), update.clone())
                .return_document(ReturnDocument::After)
                .projection(doc! { "expiresAt": 1 })
                .max_time(max_time(deadline))
        })
        .await
        .map_err(|e| mongo_error("extend (findOneAndUpdate)", e))?;
        doc.map(|d| expires_of(&d)).transpose()
    }

    async fn release(&self, name: &str, owner: &str, _deadline: Deadline) -> Result<bool> {
        let (filter, update) = queries::release(name, owner);
        let result = retry_rate_limited(|| {
            self.inner
                .collection
                .update_one(filter.clone(), update.clone())
        })
        .await
        .map_err(|e| mongo_error("release (updateOne)", e))?;
        let released = result.matched_count == 1;
        if released {
            self.inner.watcher.signals().notify(name);
        }
        Ok(released)
    }

    async fn inspect(&self, name: &str, deadline: Deadline) -> Result<Option<LockInfo>> {
        let doc = retry_rate_limited(|| {
            self.inner
                .collection
                .find_one(queries::inspect(name))
                .projection(queries::lease_projection())
                .max_time(max_time(deadline))
        })
        .await
        .map_err(|e| mongo_error("inspect (find)", e))?;
        doc.map(|d| info_of(name.to_owned(), &d)).transpose()
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<LockInfo>> {
        use futures_util::TryStreamExt;
        let upper = prefix_upper_bound(prefix);
        let filter = queries::list(prefix, upper.as_deref(), after);
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let cursor = retry_rate_limited(|| {
            self.inner
                .collection
                .find(filter.clone())
                .sort(doc! { "_id": 1 })
                .limit(limit)
                .batch_size(u32::try_from(limit).unwrap_or(u32::MAX))
                .max_time(max_time(deadline))
        })
        .await
        .map_err(|e| mongo_error("list (find)", e))?;
        let docs: Vec<Document> = cursor
            .try_collect()
            .await
            .map_err(|e| mongo_error("list (find)", e))?;
        docs.iter()
            .map(|d| match d.get("_id") {
                Some(Bson::String(name)) => info_of(name.clone(), d),
                other => Err(corrupt(&format!("has a non-string `_id` ({other:?})"))),
            })
            .collect()
    }

    async fn force_release(&self, name: &str, deadline: Deadline) -> Result<bool> {
        let (filter, update) = queries::force_release(name);
        let doc = retry_rate_limited(|| {
            self.inner
                .collection
                .find_one_and_update(filter.clone(), update.clone())
                .return_document(ReturnDocument::After)
                .projection(doc! { "_id": 0, "forcedLive": 1 })
                .max_time(max_time(deadline))
        })
        .await
        .map_err(|e| mongo_error("force_release (findOneAndUpdate)", e))?;
        self.inner.watcher.signals().notify(name);
        Ok(doc.is_some_and(|d| d.get_bool("forcedLive").unwrap_or(false)))
    }

    fn release_signal(&self, name: &str) -> Option<Arc<tokio::sync::Notify>> {
        self.inner.watcher.ensure_running();
        Some(self.inner.watcher.signals().subscribe(name))
    }
}
