//! The memory backend's fair queues: one line of tickets per name.

use std::time::Duration;

use tokio::time::Instant;

use super::{MemoryBackend, State, Ticket};
use crate::backend::{line_full, Deadline, Grant, QueueBackend, QueueInfo, MAX_WAITERS};
use crate::error::Result;

impl State {
    /// The live line of `name`, expired tickets swept.
    fn queue(&mut self, name: &str, now: Instant) -> &mut Vec<Ticket> {
        let queue = self.queues.entry(name.to_owned()).or_default();
        queue.retain(|t| t.deadline > now);
        queue
    }

    /// Drops the line of `name` once it is empty.
    fn tidy_queue(&mut self, name: &str) {
        if self.queues.get(name).is_some_and(Vec::is_empty) {
            self.queues.remove(name);
        }
    }
}

#[async_trait::async_trait]
impl QueueBackend for MemoryBackend {
    async fn enqueue(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        _deadline: Deadline,
    ) -> Result<u64> {
        let mut state = self.state();
        let now = Instant::now();
        if state.holds(name, owner, now) {
            return Ok(0);
        }
        let queue = state.queue(name, now);
        let deadline = now + ttl;
        let place = match queue.iter().position(|t| t.owner == owner) {
            Some(place) => {
                queue[place].deadline = deadline;
                place
            }
            None if queue.len() as u64 >= MAX_WAITERS => {
                return Err(line_full("memory", name));
            }
            None => {
                queue.push(Ticket {
                    owner: owner.to_owned(),
                    deadline,
                });
                queue.len() - 1
            }
        };
        Ok(place as u64)
    }

    async fn claim_fair(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        _deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let mut state = self.state();
        let now = Instant::now();
        let mine = state.holds(name, owner, now);
        let queue = state.queue(name, now);
        if !mine && queue.first().is_some_and(|t| t.owner != owner) {
            return Ok(None);
        }
        let grant = state.claim(name, owner, ttl);
        if grant.is_some() {
            state
                .queue(name, Instant::now())
                .retain(|t| t.owner != owner);
            state.tidy_queue(name);
        }
        Ok(grant)
    }

    async fn extend_ticket(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        _deadline: Deadline,
    ) -> Result<bool> {
        let mut state = self.state();
        let now = Instant::now();
        let ticket = state.queue(name, now).iter_mut().find(|t| t.owner == owner);
        let found = match ticket {
            Some(ticket) => {
                ticket.deadline = now + ttl;
                true
            }
            None => false,
        };
        state.tidy_queue(name);
        Ok(found)
    }

    async fn list_queues(&self, prefix: &str, limit: usize, _: Deadline) -> Result<Vec<QueueInfo>> {
        let now = Instant::now();
        let state = self.state();
        let mut lines: Vec<QueueInfo> = (state.queues.iter())
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, line)| {
                QueueInfo::new(
                    name.clone(),
                    line.iter().filter(|t| t.deadline > now).count() as u64,
                )
            })
            .filter(|line| line.waiting > 0)
            .collect();
        lines.sort_by(|a, b| a.name.cmp(&b.name));
        lines.truncate(limit.max(1));
        Ok(lines)
    }

    async fn leave_queue(&self, name: &str, owner: &str, _deadline: Deadline) -> Result<bool> {
        let mut state = self.state();
        let queue = state.queue(name, Instant::now());
        let before = queue.len();
        queue.retain(|t| t.owner != owner);
        let left = queue.len() < before;
        state.tidy_queue(name);
        drop(state);
        if left {
            // The next in line may now be first.
            self.inner.signals.notify(name);
        }
        Ok(left)
    }
}
