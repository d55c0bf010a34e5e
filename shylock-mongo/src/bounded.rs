//! Single-document writes bounded by the caller's deadline on the server
//! too (`maxTimeMS`), for the operations whose answer is only "did it
//! match": `findAndModify` carries `maxTimeMS` where `update` does not, so
//! the server stops working on a write the caller gave up on.

use std::time::Duration;

use bson::{doc, Document};
use mongodb::options::UpdateModifications;
use shylock_core::backend::Deadline;
use shylock_core::Result;

use crate::backend::MongoBackend;
use crate::error::{mongo_error, retry_rate_limited};

/// What is left of `deadline`, as `maxTimeMS` (at least 1 ms: 0 means no
/// limit to the server).
pub(crate) fn max_time(deadline: Deadline) -> Duration {
    deadline.remaining().max(Duration::from_millis(1))
}

impl MongoBackend {
    /// Applies `update` to the document `filter` matches, within
    /// `deadline`; whether one matched.
    pub(crate) async fn update_matched(
        &self,
        what: &'static str,
        filter: Document,
        update: impl Into<UpdateModifications> + Clone,
        deadline: Deadline,
    ) -> Result<bool> {
        let found = retry_rate_limited(|| {
            self.collection()
                .find_one_and_update(filter.clone(), update.clone())
                .projection(doc! { "_id": 1 })
                .max_time(max_time(deadline))
        })
        .await
        .map_err(|e| mongo_error(what, e))?;
        Ok(found.is_some())
    }
}
