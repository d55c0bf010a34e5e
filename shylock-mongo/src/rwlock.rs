//! Read/write locks: one document per name, one round trip per attempt.
//!
//! `_id: {rwlock: <name>}` (the name as [`document_id`] gives it, so long
//! names are digests and the full name sits in `name`), `fence` (the last
//! token granted), `holders: [{owner, expiresAt, fence, w}]` (the readers,
//! or the one writer with `w: true`), `intents: [{owner, until}]` (at most
//! one waiting writer), `expiresAt` (the latest expiry of either, for the
//! TTL index) and `releases` (a counter each release bumps, which the
//! release watcher follows).
//!
//! A claim is one `findOneAndUpdate` with upsert and an update pipeline
//! that, by the server's `$$NOW`, drops expired holders and intents, keeps
//! the caller's own lease (a retry), and decides: a reader enters when no
//! live writer holds the lock (and, preferring writers, no live intent is
//! recorded); a writer when no live holder is left; a refused writer that
//! waits records its intent when no other writer's is live.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bson::{doc, Bson, Document};
use mongodb::options::ReturnDocument;
use shylock_core::backend::{
    duration_to_millis, Access, Deadline, Grant, RwLockBackend, RwLockInfo,
};
use shylock_core::{LockInfo, Result};

use crate::backend::MongoBackend;
use crate::bounded::max_time;
use crate::error::{is_duplicate_key, mongo_error, retry_rate_limited};
use crate::key::{document_id, is_hashed};
use crate::queries::{long_or_zero, now_ms};
use crate::semaphore::{expires_of, extend_holder, fence_of, holder_of, live_holders};

/// The `_id` of read/write lock `name`'s document.
pub(crate) fn rwlock_id(name: &str) -> Bson {
    Bson::Document(doc! { "rwlock": document_id(name) })
}

/// The recorded intents that are live by the server's clock.
fn live_intents() -> Document {
    doc! { "$filter": {
        "input": { "$cond": [{ "$isArray": "$intents" }, "$intents", []] },
        "as": "i",
        "cond": { "$and": [
            { "$eq": [{ "$type": "$$i.owner" }, "string"] },
            { "$gte": [long_or_zero("$$i.until"), now_ms()] },
        ]},
    }}
}

fn owners_of(array: &str, var: &str) -> Document {
    doc! { "$map": { "input": array, "as": var, "in": format!("$${var}.owner") } }
}

/// The claim pipeline (see the module docs): `write` for the writer,
/// `writers_first` for a reader that yields to a waiting writer, `intent`
/// for a writer that records its intent when refused.
pub(crate) fn claim_rw_pipeline(
    owner: &str,
    write: bool,
    writers_first: bool,
    intent: bool,
    ttl_ms: i64,
    full_name: Option<&str>,
) -> Vec<Document> {
    let o = doc! { "$literal": owner };
    let expires = doc! { "$add": ["$$NOW", ttl_ms] };
    let take = if write {
        doc! { "$and": [{ "$not": ["$_mine"] }, { "$eq": [{ "$size": "$_live" }, 0] }] }
    } else {
        doc! { "$and": [
            { "$not": ["$_mine"] },
            { "$not": ["$_writer"] },
            { "$not": [{ "$and": [writers_first, "$_waiting"] }] },
        ]}
    };
    let intents = if write {
        Bson::Document(doc! { "$cond": [
            "$_take",
            { "$filter": {
                "input": "$_intents", "as": "i",
                "cond": { "$ne": ["$$i.owner", o.clone()] },
            }},
            { "$cond": [
                { "$and": [
                    intent,
                    { "$not": ["$_mine"] },
                    { "$or": [
                        { "$not": ["$_waiting"] },
                        { "$in": [o.clone(), owners_of("$_intents", "i")] },
                    ]},
                ]},
                [{ "owner": o.clone(), "until": expires.clone() }],
                "$_intents",
            ]},
        ]})
    } else {
        Bson::String("$_intents".to_owned())
    };
    let mut set = doc! {
        "holders": { "$cond": [
            "$_mine",
            { "$map": {
                "input": "$_live",
                "as": "h",
                "in": { "$cond": [
                    { "$eq": ["$$h.owner", o.clone()] },
                    { "$mergeObjects": ["$$h", { "expiresAt": expires.clone() }] },
                    "$$h",
                ]},
            }},
            { "$cond": [
                "$_take",
                { "$concatArrays": ["$_live", [{
                    "owner": o.clone(),
                    "expiresAt": expires,
                    "fence": "$_next",
                    "w": write,
                }]] },
                "$_live",
            ]},
        ]},
        "intents": intents,
        "fence": { "$cond": ["$_take", "$_next", "$fence"] },
    };
    if let Some(name) = full_name {
        set.insert("name", doc! { "$literal": name });
    }
    vec![
        doc! { "$set": { "_live": live_holders(), "_intents": live_intents() } },
        doc! { "$set": {
            "_mine": { "$in": [o.clone(), owners_of("$_live", "h")] },
            "_writer": { "$anyElementTrue": [{ "$map": {
                "input": "$_live", "as": "h", "in": { "$eq": ["$$h.w", true] },
            }}]},
            "_waiting": { "$gt": [{ "$size": "$_intents" }, 0] },
        }},
        doc! { "$set": {
            "_take": take,
            "_next": { "$max": [{ "$add": [long_or_zero("$fence"), 1_i64] }, now_ms()] },
        }},
        doc! { "$set": set },
        doc! { "$set": { "expiresAt": latest_expiry() } },
        doc! { "$unset": ["_live", "_intents", "_mine", "_writer", "_waiting", "_take", "_next"] },
    ]
}

/// The latest expiry of a holder or an intent, or now, as a date (compared
/// as milliseconds: some servers' `$max` of dates is unreliable).
fn latest_expiry() -> Document {
    doc! { "$toDate": { "$max": { "$concatArrays": [
        { "$map": { "input": "$holders", "as": "h", "in": long_or_zero("$$h.expiresAt") } },
        { "$map": { "input": "$intents", "as": "i", "in": long_or_zero("$$i.until") } },
        [now_ms()],
    ]}}}
}

impl MongoBackend {
    async fn claim_rw(
        &self,
        name: &str,
        owner: &str,
        pipeline: Vec<Document>,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let id = rwlock_id(name);
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
                    .projection(doc! { "holders": 1 })
                    .max_time(max_time(deadline))
            })
            .await;
            match outcome {
                Ok(Some(doc)) => break doc,
                Ok(None) => return Ok(None),
                Err(e) if is_duplicate_key(&e) && attempts < 2 => continue,
                Err(e) if is_duplicate_key(&e) => return Ok(None),
                Err(e) => return Err(mongo_error("acquire read/write (findOneAndUpdate)", e)),
            }
        };
        match holder_of(&doc, owner) {
            Some(holder) => Ok(Some(Grant::new(
                fence_of(name, &holder)?,
                expires_of(name, &holder)?,
            ))),
            None => Ok(None),
        }
    }
}

#[async_trait::async_trait]
impl RwLockBackend for MongoBackend {
    async fn claim_read(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        writers_first: bool,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let full_name = is_hashed(name).then_some(name);
        let pipeline = claim_rw_pipeline(
            owner,
            false,
            writers_first,
            false,
            duration_to_millis(ttl),
            full_name,
        );
        self.explain(self.claim_rw(name, owner, pipeline, deadline).await)
    }

    async fn claim_write(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        intent: bool,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let full_name = is_hashed(name).then_some(name);
        let pipeline = claim_rw_pipeline(
            owner,
            true,
            false,
            intent,
            duration_to_millis(ttl),
            full_name,
        );
        self.explain(self.claim_rw(name, owner, pipeline, deadline).await)
    }

    async fn extend_rw(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        self.explain(
            extend_holder(
                self,
                "extend read/write (findOneAndUpdate)",
                rwlock_id(name),
                name,
                owner,
                ttl,
                latest_expiry(),
                deadline,
            )
            .await,
        )
    }

    async fn release_rw(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        self.explain(
            async {
                let filter = doc! {
                    "_id": rwlock_id(name),
                    "$or": [{ "holders.owner": owner }, { "intents.owner": owner }],
                };
                // A plain update (not a pipeline), so change streams log it
                // as an update whose `releases` field changed: what the
                // release watcher wakes waiters on.
                let update = doc! {
                    "$pull": { "holders": { "owner": owner }, "intents": { "owner": owner } },
                    "$inc": { "releases": 1_i64 },
                };
                let before = retry_rate_limited(|| {
                    self.collection()
                        .find_one_and_update(filter.clone(), update.clone())
                        .return_document(ReturnDocument::Before)
                        .projection(doc! { "holders": 1, "intents": 1 })
                        .max_time(max_time(deadline))
                })
                .await
                .map_err(|e| mongo_error("release read/write (findOneAndUpdate)", e))?;
                let Some(before) = before else {
                    return Ok(false);
                };
                let held = holder_of(&before, owner);
                let writer_left = held.as_ref().is_some_and(|h| h.get_bool("w") == Ok(true));
                let withdrawn = before.get_array("intents").is_ok_and(|a| {
                    a.iter()
                        .filter_map(Bson::as_document)
                        .any(|i| i.get_str("owner") == Ok(owner))
                });
                // Wake those who may win now: every reader when the writer
                // left or stopped waiting, one writer at any release.
                let signals = self.watcher();
                if writer_left || withdrawn {
                    signals.read_signals().notify_every(name);
                }
                signals.write_signals().notify(name);
                Ok(held.is_some())
            }
            .await,
        )
    }

    async fn inspect_rwlock(&self, name: &str, deadline: Deadline) -> Result<RwLockInfo> {
        self.explain(
            async {
                use futures_util::TryStreamExt;
                let pipeline = vec![
                    doc! { "$match": { "_id": rwlock_id(name) } },
                    doc! { "$project": { "holders": live_holders(), "intents": live_intents() } },
                ];
                let cursor = retry_rate_limited(|| {
                    self.collection()
                        .aggregate(pipeline.clone())
                        .max_time(max_time(deadline))
                })
                .await
                .map_err(|e| mongo_error("inspect read/write (aggregate)", e))?;
                let docs: Vec<Document> = cursor
                    .try_collect()
                    .await
                    .map_err(|e| mongo_error("inspect read/write (aggregate)", e))?;
                let Some(doc) = docs.into_iter().next() else {
                    return Ok(RwLockInfo::new(name, Vec::new(), None, false));
                };
                let (mut readers, mut writer) = (Vec::new(), None);
                for holder in doc
                    .get_array("holders")
                    .map(|a| a.iter().filter_map(Bson::as_document).collect::<Vec<_>>())
                    .unwrap_or_default()
                {
                    let owner = holder.get_str("owner").unwrap_or_default().to_owned();
                    let info = LockInfo::new(
                        name,
                        owner,
                        fence_of(name, holder)?,
                        expires_of(name, holder)?,
                    );
                    if holder.get_bool("w") == Ok(true) {
                        writer = Some(info);
                    } else {
                        readers.push(info);
                    }
                }
                let waiting = doc.get_array("intents").is_ok_and(|a| !a.is_empty());
                Ok(RwLockInfo::new(name, readers, writer, waiting))
            }
            .await,
        )
    }

    fn release_signal(&self, name: &str, access: Access) -> Option<Arc<tokio::sync::Notify>> {
        self.watcher().ensure_running();
        Some(match access {
            Access::Read => self.watcher().read_signals().subscribe(name),
            Access::Write => self.watcher().write_signals().subscribe(name),
        })
    }
}
