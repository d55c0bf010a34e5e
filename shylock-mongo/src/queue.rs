//! Fair queues: the line of waiters is an array `queue` of `{o, e}` in the
//! lock's own document, so a fair claim and the removal of the winner's
//! ticket are one atomic update.

use std::sync::Arc;
use std::time::Duration;

use bson::doc;
use shylock_core::backend::{
    duration_to_millis, line_full, prefix_upper_bound, Deadline, Grant, QueueBackend, QueueInfo,
    MAX_WAITERS,
};
use shylock_core::Result;

use crate::backend::MongoBackend;
use crate::error::{corrupt, is_duplicate_key, mongo_error, retry_rate_limited};
use crate::key::{document_id, is_hashed};
use crate::queries;

#[async_trait::async_trait]
impl QueueBackend for MongoBackend {
    async fn enqueue(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<u64> {
        self.explain(
            async {
                let full_name = is_hashed(name).then_some(name);
                let pipeline = queries::enqueue_pipeline(owner, duration_to_millis(ttl), full_name);
                // Two first writers of a document race: the loser of the insert
                // gets a duplicate key error (or, on some servers, no document) and
                // tries again, when the document exists and is updated instead.
                let mut attempts = 0;
                let doc = loop {
                    attempts += 1;
                    let outcome = self
                        .upsert_returning(
                            name,
                            &pipeline,
                            doc! { "queue": 1, "owner": 1 },
                            deadline,
                        )
                        .await;
                    match outcome {
                        Ok(Some(doc)) => break doc,
                        Err(e) if is_duplicate_key(&e) && attempts < 5 => {}
                        Ok(None) if attempts < 5 => {}
                        Ok(None) => {
                            return Err(corrupt(&format!(
                                "of {name:?} was not returned by enqueue"
                            )))
                        }
                        Err(e) => return Err(mongo_error("enqueue (findOneAndUpdate)", e)),
                    }
                    if deadline.remaining().is_zero() {
                        return Err(shylock_core::Error::backend_msg(
                            "mongodb",
                            shylock_core::ErrorKind::TimedOut,
                            format!("enqueue on {name:?} kept racing with other first writers"),
                        ));
                    }
                };
                let queue = doc.get_array("queue").map_err(|_| {
                    corrupt(&format!("of {name:?} has a queue that is not an array"))
                })?;
                let place = queue.iter().position(|t| {
                    t.as_document()
                        .and_then(|t| t.get_str("o").ok())
                        .is_some_and(|o| o == owner)
                });
                match place {
                    Some(place) => Ok(place as u64),
                    // The live holder was given no ticket.
                    None if doc.get_str("owner").is_ok_and(|o| o == owner) => Ok(0),
                    None if queue.len() as u64 >= MAX_WAITERS => Err(line_full("mongodb", name)),
                    None => Err(corrupt(&format!(
                        "of {name:?} lost the ticket enqueue just wrote"
                    ))),
                }
            }
            .await,
        )
    }

    async fn claim_fair(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        self.explain(
            async {
                let full_name = is_hashed(name).then_some(name);
                let pipeline =
                    queries::fair_acquire_pipeline(owner, duration_to_millis(ttl), full_name);
                self.claim_with(
                    "acquire, fair (findOneAndUpdate)",
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

    async fn extend_ticket(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<bool> {
        self.explain(
            async {
                let (filter, update) =
                    queries::extend_ticket(&document_id(name), owner, duration_to_millis(ttl));
                self.update_matched("extend ticket (findOneAndUpdate)", filter, update, deadline)
                    .await
            }
            .await,
        )
    }

    async fn leave_queue(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        self.explain(
            async {
                let (filter, update) = queries::leave_queue(&document_id(name), owner);
                let left = self
                    .update_matched("leave queue (findOneAndUpdate)", filter, update, deadline)
                    .await?;
                if left {
                    // The next in line may now be first.
                    self.watcher().signals().notify(name);
                }
                Ok(left)
            }
            .await,
        )
    }

    async fn list_queues(
        &self,
        prefix: &str,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<QueueInfo>> {
        self.explain(
            async {
                use futures_util::TryStreamExt;
                let upper = prefix_upper_bound(prefix);
                let range = queries::name_range(prefix, upper.as_deref(), None);
                let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
                let pipeline = queries::queue_lengths(range, limit);
                let max_time = deadline.remaining().max(Duration::from_millis(1));
                let cursor = retry_rate_limited(|| {
                    self.collection()
                        .aggregate(pipeline.clone())
                        .max_time(max_time)
                })
                .await
                .map_err(|e| mongo_error("list queues (aggregate)", e))?;
                let docs: Vec<bson::Document> = cursor
                    .try_collect()
                    .await
                    .map_err(|e| mongo_error("list queues (aggregate)", e))?;
                docs.iter()
                    .map(|doc| {
                        let name = doc
                            .get_str("name")
                            .map_err(|_| corrupt("of a line of waiters has no name"))?;
                        let waiting = match doc.get("waiting") {
                            Some(bson::Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
                            Some(bson::Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
                            _ => 0,
                        };
                        Ok(QueueInfo::new(name, waiting))
                    })
                    .collect()
            }
            .await,
        )
    }

    fn turn_signal(&self, name: &str, owner: &str) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.watcher().signals().subscribe_turn(name, owner))
    }
}
