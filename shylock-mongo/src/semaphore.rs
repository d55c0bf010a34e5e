//! Semaphores: one document per semaphore, one round trip per attempt.
//!
//! `_id: {semaphore: <name>}` (the name as [`document_id`] gives it, so
//! long names are digests and the full name sits in `name`), `permits`,
//! `fence` (the last token granted), `holders: [{owner, expiresAt,
//! fence}]`, `expiresAt` (the latest holder expiry, for the TTL index) and
//! `releases` (a counter each release bumps, which the release watcher
//! follows). A document `_id` never equals a lock's string or binary `_id`,
//! so semaphores and locks never collide.
//!
//! A claim is one `findOneAndUpdate` with upsert and an update pipeline
//! that, by the server's `$$NOW`, drops expired holders, keeps the caller's
//! own permit (a retry), and appends a permit when fewer than N live
//! holders are left and they were granted under the same N.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bson::{doc, Bson, Document};
use mongodb::options::ReturnDocument;
use shylock_core::backend::{
    duration_to_millis, permits_mismatch, prefix_upper_bound, Deadline, Grant, SemaphoreBackend,
    SemaphoreInfo,
};
use shylock_core::{LockInfo, Result};

use crate::backend::MongoBackend;
use crate::bounded::max_time;
use crate::error::{corrupt, is_duplicate_key, mongo_error, retry_rate_limited};
use crate::key::{document_id, is_hashed};
use crate::queries::{self, long_or_zero, now_ms};

/// The `_id` of semaphore `name`'s document.
pub(crate) fn semaphore_id(name: &str) -> Bson {
    Bson::Document(doc! { "semaphore": document_id(name) })
}

/// `$$h` (a holder in `$filter` / `$map`) is live by the server's clock.
pub(crate) fn holder_live() -> Document {
    doc! { "$and": [
        { "$eq": [{ "$type": "$$h.owner" }, "string"] },
        { "$gte": [long_or_zero("$$h.expiresAt"), now_ms()] },
    ]}
}

pub(crate) fn live_holders() -> Document {
    doc! { "$filter": {
        "input": { "$cond": [{ "$isArray": "$holders" }, "$holders", []] },
        "as": "h",
        "cond": holder_live(),
    }}
}

/// The latest holder expiry, or now: what the TTL index collects by.
fn latest_expiry() -> Document {
    doc! { "$ifNull": [
        { "$max": { "$map": { "input": "$holders", "as": "h", "in": "$$h.expiresAt" } } },
        "$$NOW",
    ]}
}

/// The claim pipeline (see the module docs).
pub fn claim_permit_pipeline(
    owner: &str,
    permits: u32,
    ttl_ms: i64,
    full_name: Option<&str>,
) -> Vec<Document> {
    let owner = doc! { "$literal": owner };
    let permits = i64::from(permits);
    let expires = doc! { "$add": ["$$NOW", ttl_ms] };
    let mut set = doc! {
        "holders": { "$cond": [
            "$_mine",
            { "$map": {
                "input": "$_live",
                "as": "h",
                "in": { "$cond": [
                    { "$eq": ["$$h.owner", owner.clone()] },
                    { "$mergeObjects": ["$$h", { "expiresAt": expires.clone() }] },
                    "$$h",
                ]},
            }},
            { "$cond": [
                "$_take",
                { "$concatArrays": ["$_live", [{
                    "owner": owner.clone(),
                    "expiresAt": expires,
                    "fence": "$_next",
                }]] },
                "$_live",
            ]},
        ]},
        "fence": { "$cond": ["$_take", "$_next", "$fence"] },
        "permits": { "$cond": ["$_take", permits, "$permits"] },
    };
    if let Some(name) = full_name {
        set.insert("name", doc! { "$literal": name });
    }
    vec![
        doc! { "$set": { "_live": live_holders() } },
        doc! { "$set": {
            "_mine": { "$in": [
                owner.clone(),
                { "$map": { "input": "$_live", "as": "h", "in": "$$h.owner" } },
            ]},
            "_busy": { "$gt": [{ "$size": "$_live" }, 0] },
        }},
        doc! { "$set": {
            "_take": { "$and": [
                { "$not": ["$_mine"] },
                { "$lt": [{ "$size": "$_live" }, permits] },
                { "$or": [
                    { "$not": ["$_busy"] },
                    { "$eq": [long_or_zero("$permits"), permits] },
                ]},
            ]},
            "_next": { "$max": [{ "$add": [long_or_zero("$fence"), 1_i64] }, now_ms()] },
        }},
        doc! { "$set": set },
        doc! { "$set": { "expiresAt": latest_expiry() } },
        doc! { "$unset": ["_live", "_mine", "_busy", "_take", "_next"] },
    ]
}

pub(crate) fn holder_of(doc: &Document, owner: &str) -> Option<Document> {
    doc.get_array("holders")
        .ok()?
        .iter()
        .filter_map(Bson::as_document)
        .find(|h| h.get_str("owner").ok() == Some(owner))
        .cloned()
}

pub(crate) fn fence_of(name: &str, holder: &Document) -> Result<u64> {
    match holder.get("fence") {
        Some(Bson::Int64(v)) => Ok(u64::try_from(*v).unwrap_or(0)),
        Some(Bson::Int32(v)) => Ok(u64::try_from(*v).unwrap_or(0)),
        other => Err(corrupt(&format!(
            "of {name:?} has a holder without a valid `fence` ({other:?})"
        ))),
    }
}

pub(crate) fn expires_of(name: &str, holder: &Document) -> Result<SystemTime> {
    match holder.get("expiresAt") {
        Some(Bson::DateTime(dt)) => Ok(dt.to_system_time()),
        other => Err(corrupt(&format!(
            "of {name:?} has a holder without a valid `expiresAt` ({other:?})"
        ))),
    }
}

/// Pushes the expiry of `owner`'s live entry in the `holders` of document
/// `id` (a semaphore's permits, a read/write lock's readers and writer) to
/// now + `ttl`, in one `findOneAndUpdate`, setting the document's
/// `expiresAt` (what the TTL index collects by) to `expires_at`; the new
/// expiry, or `None`.
#[allow(clippy::too_many_arguments)] // the inputs of one command
pub(crate) async fn extend_holder(
    backend: &MongoBackend,
    what: &'static str,
    id: Bson,
    name: &str,
    owner: &str,
    ttl: Duration,
    expires_at: Document,
    deadline: Deadline,
) -> Result<Option<SystemTime>> {
    let literal = doc! { "$literal": owner };
    let mine_live = doc! { "$and": [{ "$eq": ["$$h.owner", literal.clone()] }, holder_live()] };
    let filter = doc! {
        "_id": id,
        "$expr": { "$anyElementTrue": [{ "$map": {
            "input": { "$cond": [{ "$isArray": "$holders" }, "$holders", []] },
            "as": "h",
            "in": mine_live,
        }}]},
    };
    let update = vec![
        doc! { "$set": { "holders": { "$map": {
            "input": "$holders",
            "as": "h",
            "in": { "$cond": [
                { "$eq": ["$$h.owner", literal] },
                { "$mergeObjects": ["$$h", { "expiresAt": { "$add": ["$$NOW", duration_to_millis(ttl)] } }] },
                "$$h",
            ]},
        }}}},
        doc! { "$set": { "expiresAt": expires_at } },
    ];
    let doc = retry_rate_limited(|| {
        backend
            .collection()
            .find_one_and_update(filter.clone(), update.clone())
            .return_document(ReturnDocument::After)
            .projection(doc! { "holders": 1 })
            .max_time(max_time(deadline))
    })
    .await
    .map_err(|e| mongo_error(what, e))?;
    match doc.as_ref().and_then(|d| holder_of(d, owner)) {
        Some(holder) => expires_of(name, &holder).map(Some),
        None => Ok(None),
    }
}

/// A semaphore document projected to `permits` and its live `holders`.
fn semaphore_info(name: &str, doc: &Document) -> Result<SemaphoreInfo> {
    let permits = match doc.get("permits") {
        Some(Bson::Int64(v)) => u32::try_from(*v).ok(),
        Some(Bson::Int32(v)) => u32::try_from(*v).ok(),
        _ => None,
    };
    let mut holders = Vec::new();
    for holder in doc
        .get_array("holders")
        .map(|a| a.iter().filter_map(Bson::as_document).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let owner = holder.get_str("owner").unwrap_or_default().to_owned();
        holders.push(LockInfo::new(
            name,
            owner,
            fence_of(name, holder)?,
            expires_of(name, holder)?,
        ));
    }
    Ok(SemaphoreInfo::new(name, permits, holders))
}

#[async_trait::async_trait]
impl SemaphoreBackend for MongoBackend {
    async fn claim_permit(
        &self,
        name: &str,
        owner: &str,
        permits: u32,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        self.explain(
            async {
                let full_name = is_hashed(name).then_some(name);
                let pipeline =
                    claim_permit_pipeline(owner, permits, duration_to_millis(ttl), full_name);
                let id = semaphore_id(name);
                // A first-creation race loses with a duplicate key; the document
                // exists then, so one more attempt decides.
                let mut attempts = 0;
                let doc = loop {
                    attempts += 1;
                    let outcome = retry_rate_limited(|| {
                        self.collection()
                            .find_one_and_update(doc! { "_id": id.clone() }, pipeline.clone())
                            .upsert(true)
                            .return_document(ReturnDocument::After)
                            .projection(doc! { "holders": 1, "permits": 1 })
                            .max_time(max_time(deadline))
                    })
                    .await;
                    match outcome {
                        Ok(Some(doc)) => break doc,
                        Ok(None) => return Ok(None),
                        Err(e) if is_duplicate_key(&e) && attempts < 2 => continue,
                        Err(e) if is_duplicate_key(&e) => return Ok(None),
                        Err(e) => return Err(mongo_error("acquire permit (findOneAndUpdate)", e)),
                    }
                };
                if let Some(holder) = holder_of(&doc, owner) {
                    return Ok(Some(Grant::new(
                        fence_of(name, &holder)?,
                        expires_of(name, &holder)?,
                    )));
                }
                let busy = doc.get_array("holders").is_ok_and(|h| !h.is_empty());
                let stored = match doc.get("permits") {
                    Some(Bson::Int64(v)) => u32::try_from(*v).ok(),
                    Some(Bson::Int32(v)) => u32::try_from(*v).ok(),
                    _ => None,
                };
                match stored {
                    Some(stored) if busy && stored != permits => {
                        Err(permits_mismatch(name, stored, permits))
                    }
                    _ => Ok(None),
                }
            }
            .await,
        )
    }

    async fn extend_permit(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        self.explain(
            extend_holder(
                self,
                "extend permit (findOneAndUpdate)",
                semaphore_id(name),
                name,
                owner,
                ttl,
                latest_expiry(),
                deadline,
            )
            .await,
        )
    }

    async fn release_permit(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        self.explain(
            async {
                let filter = doc! { "_id": semaphore_id(name), "holders.owner": owner };
                // A plain update (not a pipeline), so change streams log it as an
                // update whose `releases` field changed: what the release watcher
                // wakes permit waiters on.
                let update = doc! {
                    "$pull": { "holders": { "owner": owner } },
                    "$inc": { "releases": 1_i64 },
                };
                let released = self
                    .update_matched(
                        "release permit (findOneAndUpdate)",
                        filter,
                        update,
                        deadline,
                    )
                    .await?;
                if released {
                    self.watcher().permit_signals().notify(name);
                }
                Ok(released)
            }
            .await,
        )
    }

    async fn inspect_semaphore(&self, name: &str, deadline: Deadline) -> Result<SemaphoreInfo> {
        self.explain(
            async {
                use futures_util::TryStreamExt;
                let pipeline = vec![
                    doc! { "$match": { "_id": semaphore_id(name) } },
                    doc! { "$project": { "permits": 1, "holders": live_holders() } },
                ];
                let cursor = retry_rate_limited(|| {
                    self.collection()
                        .aggregate(pipeline.clone())
                        .max_time(max_time(deadline))
                })
                .await
                .map_err(|e| mongo_error("inspect semaphore (aggregate)", e))?;
                let docs: Vec<Document> = cursor
                    .try_collect()
                    .await
                    .map_err(|e| mongo_error("inspect semaphore (aggregate)", e))?;
                let Some(doc) = docs.into_iter().next() else {
                    return Ok(SemaphoreInfo::new(name, None, Vec::new()));
                };
                semaphore_info(name, &doc)
            }
            .await,
        )
    }

    async fn list_semaphores(
        &self,
        prefix: &str,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<SemaphoreInfo>> {
        self.explain(
            async {
                use futures_util::TryStreamExt;
                let upper = prefix_upper_bound(prefix);
                let range = queries::name_range(prefix, upper.as_deref(), None);
                let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
                // Short names are the `_id`'s `semaphore` string; long ones
                // sit under a digest with the full name in `name`.
                let pipeline = vec![
                    doc! { "$match": { "$or": [
                        { "_id.semaphore": range.clone() },
                        { "_id.semaphore": { "$type": "binData" }, "name": range },
                    ]}},
                    doc! { "$project": {
                        "name": { "$ifNull": ["$name", "$_id.semaphore"] },
                        "permits": 1,
                        "holders": live_holders(),
                    }},
                    doc! { "$match": { "$expr": { "$gt": [{ "$size": "$holders" }, 0] } } },
                    doc! { "$sort": { "name": 1 } },
                    doc! { "$limit": limit },
                ];
                let cursor = retry_rate_limited(|| {
                    self.collection()
                        .aggregate(pipeline.clone())
                        .max_time(max_time(deadline))
                })
                .await
                .map_err(|e| mongo_error("list semaphores (aggregate)", e))?;
                let docs: Vec<Document> = cursor
                    .try_collect()
                    .await
                    .map_err(|e| mongo_error("list semaphores (aggregate)", e))?;
                docs.iter()
                    .map(|doc| {
                        let name = doc
                            .get_str("name")
                            .map_err(|_| corrupt("of a semaphore has no name"))?;
                        semaphore_info(name, doc)
                    })
                    .collect()
            }
            .await,
        )
    }

    fn release_signal(&self, name: &str) -> Option<Arc<tokio::sync::Notify>> {
        self.watcher().ensure_running();
        Some(self.watcher().permit_signals().subscribe(name))
    }
}
