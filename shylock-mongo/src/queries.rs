//! Every filter and update the backend sends, public so benchmarks and
//! tools can replay the same commands. Not a stable API.

use bson::{doc, Bson, Document};

/// `{$toLong: expr}`: dates compared as ms, which every server version
/// (and stand-ins) compare reliably inside `$expr`.
fn ms(expr: impl Into<Bson>) -> Bson {
    Bson::Document(doc! { "$toLong": expr.into() })
}

/// `field` as a long, or 0 when it is missing or cannot be converted: a
/// document another program wrote with other types counts as expired (its
/// lock is taken over cleanly) instead of failing every command.
pub(crate) fn long_or_zero(field: &str) -> Bson {
    Bson::Document(doc! { "$convert": {
        "input": field, "to": "long", "onError": 0_i64, "onNull": 0_i64,
    }})
}

fn expires_ms() -> Bson {
    long_or_zero("$expiresAt")
}

/// `$$NOW` in ms. It is truncated to the millisecond, so a lease counts as
/// expired only when `expiresAt < now` (strictly): stored as
/// `now + ttl`, it then never ends before a full ttl after the request.
pub(crate) fn now_ms() -> Bson {
    ms("$$NOW")
}

/// `$expr` that is true while the document's lease is live.
pub fn live() -> Document {
    doc! { "$gte": [expires_ms(), now_ms()] }
}

/// The update pipeline `acquire` sends with `findOneAndUpdate` on
/// `{_id: document_id(name)}` (upsert, return the new document): it takes
/// the lock if it is free, expired or already `owner`'s; a new holder gets
/// `max(fence + 1, server time in ms)` so tokens keep increasing even after
/// the document was garbage-collected. `full_name` is set for names whose
/// `_id` is a digest, and is stored in the `name` field.
pub fn acquire_pipeline(owner: &str, ttl_ms: i64, full_name: Option<&str>) -> Vec<Document> {
    vec![acquire_stage(owner, ttl_ms, full_name, None)]
}

/// The `$set` stage of [`acquire_pipeline`]; with `turn`, the lock is taken
/// only where that expression is also true.
fn acquire_stage(
    owner: &str,
    ttl_ms: i64,
    full_name: Option<&str>,
    turn: Option<Bson>,
) -> Document {
    // `$literal`: an owner token is a value even if it starts with `$`.
    let owner = doc! { "$literal": owner };
    let free = doc! { "$or": [
        { "$ne": [{ "$type": "$owner" }, "string"] },
        { "$lt": [expires_ms(), now_ms()] },
        { "$eq": ["$owner", owner.clone()] },
    ]};
    let free = match turn {
        Some(turn) => doc! { "$and": [turn, free] },
        None => free,
    };
    let ours_and_live = doc! { "$and": [
        { "$eq": ["$owner", owner.clone()] },
        { "$gte": [expires_ms(), now_ms()] },
    ]};
    let next_fence = doc! { "$max": [
        { "$add": [long_or_zero("$fence"), 1_i64] },
        now_ms(),
    ]};
    let mut set = doc! {
        "fence": { "$cond": [free.clone(), { "$cond": [ours_and_live, "$fence", next_fence] }, "$fence"] },
        "owner": { "$cond": [free.clone(), owner, "$owner"] },
        "expiresAt": { "$cond": [free, { "$add": ["$$NOW", ttl_ms] }, "$expiresAt"] },
    };
    if let Some(name) = full_name {
        set.insert("name", doc! { "$literal": name });
    }
    doc! { "$set": set }
}

/// True while `owner` holds the document's lease, by the server's clock.
fn holds_live(owner: &str) -> Bson {
    Bson::Document(doc! { "$and": [
        { "$eq": ["$owner", { "$literal": owner }] },
        { "$gte": [expires_ms(), now_ms()] },
    ]})
}

/// The owners in the line, in order (`{$map}` rather than the path
/// `"$queue.o"`, which some servers answer with null for an empty array).
fn queue_owners() -> Bson {
    Bson::Document(doc! { "$map": { "input": "$queue", "in": "$$this.o" } })
}

/// The document's line of fair waiters without expired tickets: each ticket
/// is `{o: owner, e: expiry}`, in arrival order.
fn live_queue() -> Bson {
    Bson::Document(doc! { "$filter": {
        "input": { "$cond": [{ "$isArray": "$queue" }, "$queue", []] },
        "cond": { "$gte": [long_or_zero("$$this.e"), now_ms()] },
    }})
}

/// `list_queues`: the lines of waiters with live tickets of the first
/// `limit` lock documents whose names are in `range`, as `{name, waiting}`
/// in name order (short names are the `_id`, long ones sit under a digest
/// with the full name in `name`).
pub(crate) fn queue_lengths(range: Document, limit: i64) -> Vec<Document> {
    vec![
        doc! { "$match": { "$or": [
            { "_id": range.clone() },
            { "_id": { "$type": "binData" }, "name": range },
        ]}},
        doc! { "$project": {
            "name": { "$cond": [{ "$eq": [{ "$type": "$_id" }, "string"] }, "$_id", "$name"] },
            "waiting": { "$size": live_queue() },
        }},
        doc! { "$match": { "waiting": { "$gt": 0 } } },
        doc! { "$sort": { "name": 1 } },
        doc! { "$limit": limit },
    ]
}

/// `claim_fair`: [`acquire_pipeline`], taken only by the first live ticket
/// (or anyone when the line is empty), which the same update removes.
/// Expired tickets are dropped on the way.
pub fn fair_acquire_pipeline(owner: &str, ttl_ms: i64, full_name: Option<&str>) -> Vec<Document> {
    let me = doc! { "$literal": owner };
    // First in line, or an empty line; or the live holder itself (a retry
    // after a win whose answer was lost), which wins whatever the line.
    let turn = doc! { "$or": [
        { "$eq": [{ "$size": "$queue" }, 0] },
        { "$eq": [{ "$arrayElemAt": [queue_owners(), 0] }, me.clone()] },
        holds_live(owner),
    ]};
    vec![
        doc! { "$set": { "queue": live_queue() } },
        acquire_stage(owner, ttl_ms, full_name, Some(Bson::Document(turn))),
        doc! { "$set": { "queue": { "$cond": [
            { "$eq": ["$owner", me.clone()] },
            { "$filter": { "input": "$queue", "cond": { "$ne": ["$$this.o", me] } } },
            "$queue",
        ]}}},
    ]
}

/// `enqueue`: the update pipeline (for `findOneAndUpdate` with upsert on
/// the lock's `_id`) that puts `owner` at the end of the line, or pushes
/// the expiry of its ticket if it is in line already. Expired tickets are
/// dropped on the way. The lock's live holder, and a new owner when the
/// line holds `MAX_WAITERS` tickets, are given no ticket.
pub fn enqueue_pipeline(owner: &str, ttl_ms: i64, full_name: Option<&str>) -> Vec<Document> {
    let me = doc! { "$literal": owner };
    let expiry = doc! { "$add": ["$$NOW", ttl_ms] };
    let max_waiters = i64::try_from(shylock_core::MAX_WAITERS).unwrap_or(i64::MAX);
    // The live holder takes no place: its ticket left with its win, and a
    // renewal racing that win must not put back a ticket nobody keeps.
    let mut set = doc! { "queue": { "$cond": [
        holds_live(owner),
        "$queue",
        { "$cond": [
            { "$in": [me.clone(), queue_owners()] },
            { "$map": { "input": "$queue", "in": { "$cond": [
                { "$eq": ["$$this.o", me.clone()] },
                { "o": "$$this.o", "e": expiry.clone() },
                "$$this",
            ]}}},
            // A full line takes no new owner.
            { "$cond": [
                { "$gte": [{ "$size": "$queue" }, max_waiters] },
                "$queue",
                { "$concatArrays": ["$queue", [{ "o": me, "e": expiry.clone() }]] },
            ]},
        ]},
    ]}};
    if let Some(name) = full_name {
        set.insert("name", doc! { "$literal": name });
    }
    vec![
        doc! { "$set": { "queue": live_queue() } },
        doc! { "$set": set },
        keep_for_tickets(expiry),
    ]
}

/// The stage that keeps a document without a holder from the TTL monitor
/// while a ticket lives: with no owner, `expiresAt` (which the TTL index
/// reads) is pushed to at least the ticket's expiry `until`. A document
/// with an owner is left as it is, since there `expiresAt` is the lease's.
fn keep_for_tickets(until: Document) -> Document {
    // Compared as ms (`$max` of two dates is not answered alike by every
    // MongoDB-compatible server); a missing or foreign `expiresAt` is 0.
    let later = doc! { "$gt": [ms(until.clone()), expires_ms()] };
    doc! { "$set": { "expiresAt": { "$cond": [
        { "$eq": [{ "$type": "$owner" }, "string"] },
        "$expiresAt",
        { "$cond": [later, until, "$expiresAt"] },
    ]}}}
}

/// `extend_ticket`: the filter (`owner` has a live ticket) and the pipeline
/// pushing its expiry.
pub fn extend_ticket(id: &Bson, owner: &str, ttl_ms: i64) -> (Document, Vec<Document>) {
    let me = doc! { "$literal": owner };
    let mine_live = doc! { "$filter": {
        "input": { "$cond": [{ "$isArray": "$queue" }, "$queue", []] },
        "cond": { "$and": [
            { "$eq": ["$$this.o", me.clone()] },
            { "$gte": [long_or_zero("$$this.e"), now_ms()] },
        ]},
    }};
    (
        doc! { "_id": id, "queue.o": owner, "$expr": { "$gt": [{ "$size": mine_live }, 0] } },
        vec![
            doc! { "$set": { "queue": { "$map": { "input": "$queue", "in": { "$cond": [
                { "$eq": ["$$this.o", me] },
                { "o": "$$this.o", "e": { "$add": ["$$NOW", ttl_ms] } },
                "$$this",
            ]}}}}},
            keep_for_tickets(doc! { "$add": ["$$NOW", ttl_ms] }),
        ],
    )
}

/// `leave_queue`: the filter and the update removing `owner`'s ticket. It
/// bumps `releases`, which the release watchers of every process see: if
/// the ticket was first and the lock is free, the next in line can win.
pub fn leave_queue(id: &Bson, owner: &str) -> (Document, Document) {
    (
        doc! { "_id": id, "queue.o": owner },
        doc! { "$pull": { "queue": { "o": owner } }, "$inc": { "releases": 1_i64 } },
    )
}

/// Projection of the fields a lease is read from.
pub fn lease_projection() -> Document {
    doc! { "owner": 1, "expiresAt": 1, "fence": 1, "name": 1 }
}

/// `extend`: the filter (owner's live lease) and the pipeline.
pub fn extend(id: &Bson, owner: &str, ttl_ms: i64) -> (Document, Vec<Document>) {
    (
        doc! { "_id": id, "owner": owner, "$expr": live() },
        vec![doc! { "$set": { "expiresAt": { "$add": ["$$NOW", ttl_ms] } } }],
    )
}

/// `release`: the filter (owner's lock) and the update. The document and
/// its fence stay.
pub fn release(id: &Bson, owner: &str) -> (Document, Document) {
    (doc! { "_id": id, "owner": owner }, free_update())
}

/// The update that frees a lock: no owner, expired now. The document and
/// its fence stay.
fn free_update() -> Document {
    doc! { "$unset": { "owner": "" }, "$currentDate": { "expiresAt": true } }
}

/// `inspect`: the live holder of the document `id`.
pub fn inspect(id: &Bson) -> Document {
    doc! { "_id": id, "owner": { "$type": "string" }, "$expr": live() }
}

/// `force_release`: the filter (a live holder, by the server's clock) and
/// the update. A lease that already expired is left as it is: it holds
/// nothing, and the answer is then "nothing was freed".
pub fn force_release(id: &Bson) -> (Document, Document) {
    (
        doc! { "_id": id, "owner": { "$type": "string" }, "$expr": live() },
        free_update(),
    )
}

/// `list`: live holders with names from `prefix` (or after `after`) below
/// `upper`, for a find sorted by `_id` (MongoDB compares strings by their
/// UTF-8 bytes).
pub fn list(prefix: &str, upper: Option<&str>, after: Option<&str>) -> Document {
    doc! {
        "_id": name_range(prefix, upper, after),
        "owner": { "$type": "string" },
        "$expr": live(),
    }
}

/// `list`, for names stored under a digest `_id`: live holders whose
/// `name` is in the same range, for a find sorted by `name`.
pub fn list_hashed(prefix: &str, upper: Option<&str>, after: Option<&str>) -> Document {
    doc! {
        "_id": { "$type": "binData" },
        "name": name_range(prefix, upper, after),
        "owner": { "$type": "string" },
        "$expr": live(),
    }
}

/// Strings from `prefix` (or after `after`) and below `upper`.
pub(crate) fn name_range(prefix: &str, upper: Option<&str>, after: Option<&str>) -> Document {
    let mut range = Document::new();
    match after {
        Some(after) if after >= prefix => range.insert("$gt", after),
        _ => range.insert("$gte", prefix),
    };
    if let Some(upper) = upper {
        range.insert("$lt", upper);
    }
    range
}

/// Change-stream filter of the release watcher: events after which a lock
/// may be free (deleted; owner removed by an update; a lock document
/// replaced by one without an owner, as servers log small pipeline
/// updates; a ticket that left the line, which bumps `releases`, so the
/// next in line in another process is woken).
///
/// For semaphores, updates that bump the `releases` counter (each permit
/// release does), and deletes. A replaced semaphore document (a claim or
/// renewal logged as a replacement) frees nothing and is not matched.
pub fn released_events() -> Document {
    doc! { "$match": { "$or": [
        { "operationType": "delete" },
        { "updateDescription.removedFields": "owner" },
        {
            "operationType": "replace",
            "fullDocument.owner": { "$exists": false },
            "documentKey._id.semaphore": { "$exists": false },
            "documentKey._id.rwlock": { "$exists": false },
        },
        { "updateDescription.updatedFields.releases": { "$exists": true } },
    ]}}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_takes_owner_and_ttl_as_values_not_code() {
        let p = acquire_pipeline("$where", 1500, None);
        let text = format!("{p:?}");
        assert!(text.contains("1500"));
        // The owner token is wrapped in $literal, so even an owner that
        // looks like a field path stays a plain string.
        assert!(text.contains("$literal"));
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn list_filter_starts_after_the_cursor_within_the_prefix() {
        let f = list("jobs/", Some("jobs0"), Some("jobs/b"));
        let id = f.get_document("_id").unwrap();
        assert_eq!(id.get_str("$gt").unwrap(), "jobs/b");
        assert_eq!(id.get_str("$lt").unwrap(), "jobs0");
        let f = list("jobs/", None, None);
        assert_eq!(
            f.get_document("_id").unwrap().get_str("$gte").unwrap(),
            "jobs/"
        );
    }
}
