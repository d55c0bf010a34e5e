//! [`MongoBackend`] and the six operations, one round trip each.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bson::{doc, Document};
use mongodb::options::ReturnDocument;
use mongodb::Collection;
use shylock_core::backend::{
    duration_to_millis, prefix_upper_bound, Backend, Deadline, Grant, QueueBackend,
    SemaphoreBackend,
};
use shylock_core::{Error, ErrorKind, LockInfo, Result};

use crate::documents::{check_name, expires_of, fence_of, info_of, name_of};
use crate::error::{is_duplicate_key, mongo_error, retry_rate_limited};
use crate::key::{document_id, is_hashed};
use crate::queries;
use crate::runtime_watch::RuntimeWatch;
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
    /// For a client the caller created: whether the runtime that built
    /// this backend (where such a client usually lives) has shut down.
    client_runtime: Option<RuntimeWatch>,
    /// Python shylock's layout beside this one (`python_shylock_compat`).
    python_compat: bool,
}

impl MongoBackend {
    /// The process's release watcher of this collection.
    pub(crate) fn watcher(&self) -> &ReleaseWatcher {
        &self.inner.watcher
    }

    /// Whether the backend was built with `python_shylock_compat(true)`.
    pub fn python_compat(&self) -> bool {
        self.inner.python_compat
    }
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
        share_watcher: Option<String>,
        own_client: bool,
        python_compat: bool,
    ) -> Self {
        MongoBackend {
            inner: Arc::new(Inner {
                watcher: ReleaseWatcher::new(collection.clone(), watch_releases, share_watcher),
                collection,
                namespace,
                client_runtime: if own_client {
                    None
                } else {
                    RuntimeWatch::current()
                },
                python_compat,
            }),
        }
    }

    /// `error`, saying what happened when the server seems unreachable
    /// because the runtime of the caller's client has shut down: the
    /// driver's connections and monitors run on the runtime that created
    /// the client and end with it.
    pub(crate) fn explain<T>(&self, mut result: Result<T>) -> Result<T> {
        let gone = self
            .inner
            .client_runtime
            .as_ref()
            .is_some_and(RuntimeWatch::is_gone);
        if let (
            true,
            Err(Error::Backend {
                kind: ErrorKind::Unavailable,
                message,
                ..
            }),
        ) = (gone, &mut result)
        {
            message.push_str(
                "; the tokio runtime this backend was built on has shut down, and a MongoDB \
                 client stops working with the runtime that created it: create the client with \
                 MongoBackend::client_blocking or use MongoBackend::connect (their clients live \
                 on shylock's background runtime), or keep that runtime running",
            );
        }
        result
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
    /// stream is open. Returns whether releases by other processes now wake
    /// this process's waiters; `false` when watching is off or change
    /// streams are unavailable.
    pub async fn release_watcher_ready(&self, timeout: Duration) -> bool {
        self.inner.watcher.ready(timeout).await
    }
}

impl MongoBackend {
    /// One page of documents matching `filter`, sorted by `field`.
    async fn find_page(
        &self,
        filter: Document,
        field: &str,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<Document>> {
        use futures_util::TryStreamExt;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let cursor = retry_rate_limited(|| {
            self.inner
                .collection
                .find(filter.clone())
                .sort(doc! { field: 1 })
                .limit(limit)
                .batch_size(u32::try_from(limit).unwrap_or(u32::MAX))
                .max_time(max_time(deadline))
        })
        .await
        .map_err(|e| mongo_error("list (find)", e))?;
        cursor
            .try_collect()
            .await
            .map_err(|e| mongo_error("list (find)", e))
    }
}

/// The server-side time limit for a command with `deadline`.
fn max_time(deadline: Deadline) -> Duration {
    deadline.remaining().max(Duration::from_millis(1))
}

#[shylock_core::async_trait]
impl Backend for MongoBackend {
    fn releases_watched_since(&self, _name: &str) -> Option<std::time::Instant> {
        self.inner.watcher.watched_since()
    }

    fn kind(&self) -> &'static str {
        "mongodb"
    }

    async fn claim(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        self.explain(
            async {
                if self.python_compat() {
                    return self.python_claim(name, owner, ttl, deadline).await;
                }
                let full_name = is_hashed(name).then_some(name);
                let pipeline = queries::acquire_pipeline(owner, duration_to_millis(ttl), full_name);
                self.claim_with(
                    "acquire (findOneAndUpdate)",
                    name,
                    owner,
                    pipeline,
                    deadline,
                )
                .await
            }
            .await,
        )
    }

    async fn extend(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        self.explain(
            async {
                let (filter, mut update) =
                    queries::extend(&document_id(name), owner, duration_to_millis(ttl));
                if self.python_compat() {
                    update.push(doc! { "$set": { "createdAt": "$$NOW" } });
                }
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
                doc.map(|d| expires_of(name, &d)).transpose()
            }
            .await,
        )
    }

    async fn release(&self, name: &str, owner: &str, _deadline: Deadline) -> Result<bool> {
        self.explain(
            async {
                let (filter, update) = queries::release(&document_id(name), owner);
                let update = self.freeing(name, update);
                let result = self
                    .update_one_op("release (updateOne)", filter, update)
                    .await?;
                let released = result.matched_count == 1;
                if released {
                    self.inner.watcher.signals().notify(name);
                }
                Ok(released)
            }
            .await,
        )
    }

    async fn inspect(&self, name: &str, deadline: Deadline) -> Result<Option<LockInfo>> {
        self.explain(
            async {
                let doc = retry_rate_limited(|| {
                    self.inner
                        .collection
                        .find_one(queries::inspect(&document_id(name)))
                        .projection(queries::lease_projection())
                        .max_time(max_time(deadline))
                })
                .await
                .map_err(|e| mongo_error("inspect (find)", e))?;
                match doc {
                    Some(d) => {
                        check_name(name, &d)?;
                        info_of(name.to_owned(), &d).map(Some)
                    }
                    None if self.python_compat() => self.python_inspect(name, deadline).await,
                    None => Ok(None),
                }
            }
            .await,
        )
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<LockInfo>> {
        self.explain(
            async {
                let upper = prefix_upper_bound(prefix);
                let limit = limit.max(1);
                // Names up to MAX_PLAIN_ID bytes are their own `_id`; longer ones
                // sit under a digest with a `name` field. One sorted page of each,
                // merged in byte order.
                let plain = self
                    .find_page(
                        queries::list(prefix, upper.as_deref(), after),
                        "_id",
                        limit,
                        deadline,
                    )
                    .await?;
                let hashed = self
                    .find_page(
                        queries::list_hashed(prefix, upper.as_deref(), after),
                        "name",
                        limit,
                        deadline,
                    )
                    .await?;
                let mut all = plain
                    .iter()
                    .chain(&hashed)
                    .map(|d| info_of(name_of(d)?, d))
                    .collect::<Result<Vec<_>>>()?;
                all.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
                all.truncate(limit);
                Ok(all)
            }
            .await,
        )
    }

    async fn force_release(&self, name: &str, _deadline: Deadline) -> Result<bool> {
        self.explain(
            async {
                let (filter, update) = queries::force_release(&document_id(name));
                let update = self.freeing(name, update);
                let result = retry_rate_limited(|| {
                    self.inner
                        .collection
                        .update_one(filter.clone(), update.clone())
                })
                .await
                .map_err(|e| mongo_error("force_release (updateOne)", e))?;
                let freed = result.matched_count == 1;
                if freed {
                    self.inner.watcher.signals().notify(name);
                }
                Ok(freed)
            }
            .await,
        )
    }

    fn release_signal(&self, name: &str) -> Option<Arc<tokio::sync::Notify>> {
        self.inner.watcher.ensure_running();
        Some(self.inner.watcher.signals().subscribe(name))
    }

    // Not in Python shylock compatibility mode: their documents carry no
    // `name` (or a long name's full name, which a lock of that name has
    // too), and Python's unique index on `name` allows one such document.
    fn semaphores(&self) -> Option<&dyn SemaphoreBackend> {
        (!self.python_compat()).then_some(self as _)
    }

    fn queues(&self) -> Option<&dyn QueueBackend> {
        (!self.python_compat()).then_some(self as _)
    }

    fn rwlocks(&self) -> Option<&dyn shylock_core::backend::RwLockBackend> {
        (!self.python_compat()).then_some(self as _)
    }
}

impl MongoBackend {
    /// One `findOneAndUpdate` with upsert of the lock document running
    /// `pipeline`; a grant when the document came back owned by `owner`.
    /// `findOneAndUpdate` of `name`'s document with `pipeline`, upserting,
    /// answering the new document's `projection`; rate limits retried.
    pub(crate) async fn upsert_returning(
        &self,
        name: &str,
        pipeline: &[Document],
        projection: Document,
        deadline: Deadline,
    ) -> mongodb::error::Result<Option<Document>> {
        let id = document_id(name);
        retry_rate_limited(|| {
            self.inner
                .collection
                .find_one_and_update(doc! { "_id": id.clone() }, pipeline.to_vec())
                .upsert(true)
                .return_document(ReturnDocument::After)
                .projection(projection.clone())
                .max_time(max_time(deadline))
        })
        .await
    }

    pub(crate) async fn claim_with(
        &self,
        what: &'static str,
        name: &str,
        owner: &str,
        pipeline: Vec<Document>,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let outcome = self
            .upsert_returning(name, &pipeline, queries::lease_projection(), deadline)
            .await;
        let doc = match outcome {
            Ok(Some(doc)) => doc,
            // An upsert always returns the document; treat "none" as held.
            Ok(None) => return Ok(None),
            Err(e) if is_duplicate_key(&e) => return Ok(None),
            Err(e) => return Err(mongo_error(what, e)),
        };
        check_name(name, &doc)?;
        if doc.get_str("owner").ok() != Some(owner) {
            return Ok(None);
        }
        Ok(Some(Grant::new(
            fence_of(name, &doc)?,
            expires_of(name, &doc)?,
        )))
    }
}

impl MongoBackend {
    /// One `updateOne` on the lock collection (rate-limit errors retried).
    pub(crate) async fn update_one_op(
        &self,
        what: &'static str,
        filter: Document,
        update: impl Into<mongodb::options::UpdateModifications> + Clone,
    ) -> Result<mongodb::results::UpdateResult> {
        retry_rate_limited(|| {
            self.inner
                .collection
                .update_one(filter.clone(), update.clone())
        })
        .await
        .map_err(|e| mongo_error(what, e))
    }
}
