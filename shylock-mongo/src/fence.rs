//! Fenced writes to your own documents: an update that applies only while
//! the writer's fencing token is not older than the last one recorded on
//! the document.

use bson::{doc, Bson, Document};
use mongodb::Collection;

/// The field [`fenced_update`] records the token in: `fence`.
pub const DEFAULT_FENCE_FIELD: &str = "fence";

/// A filter and an update for one `updateOne` on your own collection, made
/// by [`fenced_update`] or [`fenced_update_on`].
#[derive(Debug, Clone, PartialEq)]
pub struct FencedUpdate {
    /// Your filter, and: the document's fence is missing, null, or not
    /// greater than the token.
    pub filter: Document,
    /// Your update, and `$set` of the fence field to the token.
    pub update: Document,
}

/// Turns `filter` and `update` (an update document with operators such as
/// `$set` or `$inc`) into a fenced pair, recording the token in the field
/// `fence`: see [`fenced_update_on`].
pub fn fenced_update(filter: Document, update: Document, fencing_token: u64) -> FencedUpdate {
    fenced_update_on(DEFAULT_FENCE_FIELD, filter, update, fencing_token)
}

/// Turns `filter` and `update` into a pair that applies only when the
/// document's `field` is missing, null, or at most `fencing_token`, and
/// that records `fencing_token` in `field` (as int64). Send both in one
/// `updateOne` (or use [`update_one_fenced`]): MongoDB checks and writes
/// the document atomically, so a holder whose lock was lost and then taken
/// by a newer holder who wrote to the document cannot overwrite it.
///
/// - An equal token passes, so one holder can write a document many times.
/// - The document must be protected by one lock name: tokens of different
///   names are not ordered.
/// - A filtered-out document looks like a missing one (`matchedCount` 0):
///   do not combine with `upsert`, which would try to insert a copy.
/// - A `$set` of `field` in `update` is overwritten by the token. Tokens
///   above `i64::MAX` (no backend gives them) are stored as `i64::MAX`.
///
/// # Examples
///
/// ```
/// # mod shylock { pub use shylock_core::*; pub mod mongo { pub use shylock_mongo::*; } }
/// use shylock::mongo::mongodb::bson::doc;
/// use shylock::mongo::fenced_update_on;
///
/// let fenced = fenced_update_on("lastFence", doc! { "_id": 42 }, doc! { "$inc": { "balance": -10 } }, 7);
/// assert_eq!(fenced.update, doc! { "$inc": { "balance": -10 }, "$set": { "lastFence": 7_i64 } });
/// ```
pub fn fenced_update_on(
    field: &str,
    filter: Document,
    mut update: Document,
    fencing_token: u64,
) -> FencedUpdate {
    let token = i64::try_from(fencing_token).unwrap_or(i64::MAX);
    let not_newer = doc! { "$or": [ { field: { "$lte": token } }, { field: Bson::Null } ] };
    let filter = if filter.is_empty() {
        not_newer
    } else {
        doc! { "$and": [filter, not_newer] }
    };
    match update.get_mut("$set") {
        Some(Bson::Document(set)) => {
            set.insert(field, token);
        }
        _ => {
            update.insert("$set", doc! { field: token });
        }
    }
    FencedUpdate { filter, update }
}

/// One fenced `updateOne` on `collection` (field `fence`, see
/// [`fenced_update_on`]): `true` when the document was updated, `false`
/// when no document matched `filter` with a fence at most the token — a
/// newer holder wrote it, or it does not exist.
///
/// # Examples
///
/// ```no_run
/// # mod shylock { pub use shylock_core::*; pub mod mongo { pub use shylock_mongo::*; } }
/// use shylock::AsyncLock;
/// use shylock::mongo::mongodb::bson::{doc, Document};
/// use shylock::mongo::mongodb::Collection;
/// use shylock::mongo::{update_one_fenced, MongoBackend};
///
/// # async fn run(backend: MongoBackend, accounts: Collection<Document>) -> Result<(), Box<dyn std::error::Error>> {
/// let guard = AsyncLock::with_backend("accounts/42", backend).acquire().await?;
/// let token = guard.fencing_token();
/// let written = update_one_fenced(&accounts, doc! { "_id": 42 }, doc! { "$inc": { "balance": -10 } }, token).await?;
/// if !written {
///     // A newer holder of accounts/42 has written: our lock was lost.
/// }
/// guard.release().await?;
/// # Ok(())
/// # }
/// ```
pub async fn update_one_fenced<T: Send + Sync>(
    collection: &Collection<T>,
    filter: Document,
    update: Document,
    fencing_token: u64,
) -> mongodb::error::Result<bool> {
    let fenced = fenced_update(filter, update, fencing_token);
    let result = collection.update_one(fenced.filter, fenced.update).await?;
    Ok(result.matched_count == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_fence_to_filter_and_update() {
        let f = fenced_update(doc! { "_id": 1 }, doc! { "$set": { "a": 1 } }, 5);
        assert_eq!(
            f.filter,
            doc! { "$and": [ { "_id": 1 }, { "$or": [ { "fence": { "$lte": 5_i64 } }, { "fence": null } ] } ] }
        );
        assert_eq!(f.update, doc! { "$set": { "a": 1, "fence": 5_i64 } });
    }

    #[test]
    fn empty_filter_and_huge_token() {
        let f = fenced_update(doc! {}, doc! { "$inc": { "n": 1 } }, u64::MAX);
        assert_eq!(
            f.filter,
            doc! { "$or": [ { "fence": { "$lte": i64::MAX } }, { "fence": null } ] }
        );
        assert_eq!(
            f.update,
            doc! { "$inc": { "n": 1 }, "$set": { "fence": i64::MAX } }
        );
    }
}
