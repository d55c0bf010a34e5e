//! Python shylock compatibility: the layout Python `shylock` 1.2 writes
//! beside this backend's own, so services in both languages exclude each
//! other on the same names (see
//! [`MongoBackendBuilder::python_shylock_compat`](crate::MongoBackendBuilder::python_shylock_compat)).
//!
//! What Python `shylock` 1.2.1 does (`shylock/backends/pymongo.py`): it
//! inserts `{name, createdAt: datetime.utcnow()}` (its own clock) and reads
//! a duplicate key error on the unique index `name` as "held", polling
//! every 1/16 s; it releases with `delete_one({"name": name})`; on start it
//! creates a unique index on `name` and a TTL index on `createdAt` with
//! `expireAfterSeconds = 300` unless an index on that key exists.
//!
//! Here, every lock document also carries `name` (the lock name, so a
//! Python insert of a held name hits the unique index) and `createdAt`
//! (set to the server's `$$NOW` by every claim and renewal, so Python's
//! TTL index never removes a live Rust lease: ttl is at most 300 s). A
//! released document keeps its fence but its `name` becomes `{free: name}`,
//! which frees the name for Python's insert. A Python document counts as
//! held until it is gone or its `createdAt` + 300 s has passed by the
//! server's clock; then a claim removes it and takes the lock.

use std::time::Duration;

use bson::{doc, Bson, Document};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use shylock_core::backend::{duration_to_millis, Deadline, Grant};
use shylock_core::{Error, LockInfo, Result};

use crate::backend::MongoBackend;
use crate::error::{mongo_error, retry_rate_limited};
use crate::queries;

/// Python shylock's lease (`DOCUMENT_TTL = 60 * 5`): the longest ttl a
/// Rust holder may use in compatibility mode, and how long a Python
/// holder's document counts as held after its `createdAt`.
pub const PYTHON_SHYLOCK_TTL: Duration = Duration::from_secs(300);

/// The owner [`inspect`](shylock_core::AsyncLock::inspect) reports for a
/// lock held by a Python shylock process (which records no owner).
pub const PYTHON_SHYLOCK_OWNER: &str = "python-shylock";

/// The extra stage of a claim: a document this claim holds gets
/// `createdAt = $$NOW`.
pub(crate) fn claim_stage(owner: &str) -> Document {
    doc! { "$set": { "createdAt": { "$cond": [
        { "$eq": ["$owner", { "$literal": owner }] }, "$$NOW", "$createdAt",
    ]}}}
}

/// A Python holder's document whose `createdAt` + 300 s has passed by the
/// server's clock: it holds nothing and may be removed.
pub(crate) fn stale_python_document(name: &str) -> Document {
    let ttl_ms = duration_to_millis(PYTHON_SHYLOCK_TTL);
    doc! {
        "name": name,
        "owner": { "$exists": false },
        "$expr": { "$lt": [
            { "$add": [{ "$toLong": "$createdAt" }, ttl_ms] },
            { "$toLong": "$$NOW" },
        ]},
    }
}

/// A Python holder's live document.
pub(crate) fn live_python_document(name: &str) -> Document {
    let ttl_ms = duration_to_millis(PYTHON_SHYLOCK_TTL);
    doc! {
        "name": name,
        "owner": { "$exists": false },
        "$expr": { "$gte": [
            { "$add": [{ "$toLong": "$createdAt" }, ttl_ms] },
            { "$toLong": "$$NOW" },
        ]},
    }
}

/// The indexes Python shylock creates, each only when no index on its key
/// exists (as Python checks), so either side may start first.
pub(crate) async fn create_python_indexes(collection: &Collection<Document>) -> Result<()> {
    use futures_util::TryStreamExt;
    let existing: Vec<IndexModel> = collection
        .list_indexes()
        .await
        .map_err(|e| mongo_error("listing indexes", e))?
        .try_collect()
        .await
        .map_err(|e| mongo_error("listing indexes", e))?;
    let has = |key: &str| existing.iter().any(|i| i.keys.contains_key(key));
    let wanted = [
        ("name", IndexOptions::builder().unique(true).build()),
        (
            "createdAt",
            IndexOptions::builder()
                .expire_after(PYTHON_SHYLOCK_TTL)
                .build(),
        ),
    ];
    for (key, options) in wanted {
        if has(key) {
            continue;
        }
        let index = IndexModel::builder()
            .keys(doc! { key: 1 })
            .options(options)
            .build();
        retry_rate_limited(|| collection.create_index(index.clone()))
            .await
            .map_err(|e| {
                mongo_error(
                    &format!("creating Python shylock's index on {key} (python_shylock_compat)"),
                    e,
                )
            })?;
    }
    Ok(())
}

impl MongoBackend {
    /// `claim` in compatibility mode: the usual claim plus `name` and
    /// `createdAt`; when held, a Python document past its 300 s is removed
    /// and the claim tried once more.
    pub(crate) async fn python_claim(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        if ttl > PYTHON_SHYLOCK_TTL {
            return Err(Error::InvalidOptions {
                reason: format!(
                    "ttl {ttl:?} is over 300 s: with python_shylock_compat, Python shylock's TTL \
                     index removes lock documents 300 s after their last renewal, so a lease \
                     must be at most 300 s; lower LockOptions::ttl"
                ),
            });
        }
        let mut pipeline = queries::acquire_pipeline(owner, duration_to_millis(ttl), Some(name));
        pipeline.push(claim_stage(owner));
        let what = "acquire (findOneAndUpdate)";
        let grant = self
            .claim_with(what, name, owner, pipeline.clone(), deadline)
            .await?;
        if grant.is_some() {
            return Ok(grant);
        }
        let removed =
            retry_rate_limited(|| self.collection().delete_one(stale_python_document(name)))
                .await
                .map_err(|e| mongo_error("removing a stale Python shylock lock (deleteOne)", e))?;
        if removed.deleted_count == 0 {
            return Ok(None);
        }
        tracing::debug!(lock = %name, "removed a Python shylock lock past its 300 s");
        self.claim_with(what, name, owner, pipeline, deadline).await
    }

    /// `inspect` of a name no Rust holder has: a live Python holder, as
    /// owner [`PYTHON_SHYLOCK_OWNER`], fence 0, expiring at `createdAt` +
    /// 300 s.
    pub(crate) async fn python_inspect(
        &self,
        name: &str,
        deadline: Deadline,
    ) -> Result<Option<LockInfo>> {
        let doc = retry_rate_limited(|| {
            self.collection()
                .find_one(live_python_document(name))
                .projection(doc! { "createdAt": 1 })
                .max_time(deadline.remaining().max(Duration::from_millis(1)))
        })
        .await
        .map_err(|e| mongo_error("inspect (find of a Python shylock lock)", e))?;
        Ok(doc.and_then(|d| match d.get("createdAt") {
            Some(Bson::DateTime(at)) => Some(LockInfo::new(
                name,
                PYTHON_SHYLOCK_OWNER,
                0,
                at.to_system_time() + PYTHON_SHYLOCK_TTL,
            )),
            _ => None,
        }))
    }

    /// The update freeing `name`'s document: in compatibility mode its
    /// `name` also becomes `{free: name}`, so Python's insert of the name
    /// succeeds while the document keeps its fence.
    pub(crate) fn freeing(&self, name: &str, mut update: Document) -> Document {
        if self.python_compat() {
            update.insert("$set", doc! { "name": { "free": name } });
        }
        update
    }
}
