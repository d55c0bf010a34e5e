//! The campaign task: contends for the election's lock, leads while its
//! lease holds, follows otherwise, and obeys the handle's commands.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::campaign::{Control, Role};
use crate::backend::{Deadline, SharedBackend};
use crate::guard::AsyncLockGuard;
use crate::options::LockOptions;
use crate::target::Target;
use crate::wait::{self, Owner, Wait};

/// Separates a candidate's identity from the random part of its owner
/// token, so observers can tell who leads.
pub(super) const IDENTITY_SEPARATOR: char = '#';

/// The identity part of an election owner token.
pub(super) fn identity_of(owner: &str) -> String {
    match owner.rsplit_once(IDENTITY_SEPARATOR) {
        Some((identity, _)) => identity.to_owned(),
        None => owner.to_owned(),
    }
}

pub(super) struct CampaignTask {
    pub(super) name: String,
    pub(super) identity: String,
    pub(super) backend: SharedBackend,
    pub(super) options: LockOptions,
    pub(super) control: Arc<Control>,
}

enum Led {
    /// The lease was lost or given up; contend again after `pause`.
    Again {
        pause: Duration,
    },
    Stop,
}

impl CampaignTask {
    pub(super) async fn run(self) {
        let signal = self.backend.release_signal(&self.name).unwrap_or_default();
        let poll = self.options.max_backoff.max(Duration::from_millis(1));
        let mut pause = Duration::ZERO;
        loop {
            if !pause.is_zero() {
                let until = Instant::now() + pause;
                while Instant::now() < until {
                    if self.control.commands().stop {
                        self.control.set_role(Role::Follower { leader: None });
                        return;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        _ = self.control.changed.notified() => {}
                    }
                }
            }
            pause = Duration::ZERO;
            let (stop, paused) = {
                let mut commands = self.control.commands();
                commands.step_down = false;
                (commands.stop, commands.paused)
            };
            if stop {
                self.control.set_role(Role::Follower { leader: None });
                return;
            }
            if paused {
                self.follow().await;
                pause = poll;
                continue;
            }
            let notified = signal.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let owner = format!(
                "{}{IDENTITY_SEPARATOR}{}",
                self.identity,
                uuid::Uuid::new_v4()
            );
            let attempt = wait::acquire(
                &self.name,
                Target::Lock,
                self.backend.clone(),
                self.options.clone(),
                Wait::Once,
                Owner::Given(owner),
                None,
            )
            .await;
            match attempt {
                Ok(Some(guard)) => match self.lead(guard).await {
                    Led::Again { pause: p } => pause = p,
                    Led::Stop => return,
                },
                Ok(None) => {
                    self.follow().await;
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep(poll) => {}
                        _ = self.control.changed.notified() => {}
                    }
                }
                Err(error) => {
                    // Never give up: a database outage ends leadership (the
                    // lease runs out), not candidacy.
                    tracing::warn!(election = %self.name, %error, "campaign attempt failed; retrying");
                    self.control.set_role(Role::Follower { leader: None });
                    pause = poll;
                }
            }
        }
    }

    /// Publishes who leads now (best effort: an error leaves the leader
    /// unknown).
    async fn follow(&self) {
        let deadline = Deadline::after(self.options.operation_timeout);
        let leader = deadline
            .bound("inspect", self.backend.inspect(&self.name, deadline))
            .await
            .ok()
            .flatten()
            .map(|i| identity_of(&i.owner));
        self.control.set_role(Role::Follower { leader });
    }

    async fn lead(&self, guard: AsyncLockGuard) -> Led {
        let term = guard.fencing_token();
        tracing::info!(election = %self.name, identity = %self.identity, term, "elected leader");
        self.control.set_role(Role::Leader { term });
        let step_down_pause = self.options.max_backoff * 2 + Duration::from_millis(10);
        loop {
            let (stop, step_down) = {
                let c = self.control.commands();
                (c.stop, c.step_down || c.paused)
            };
            if stop || step_down {
                // Followers first, then the release: nobody acts as leader
                // once the lock can be taken.
                self.control.set_role(Role::Follower { leader: None });
                if let Err(error) = guard.release().await {
                    tracing::warn!(election = %self.name, %error, "releasing leadership failed; it ends by its ttl");
                }
                tracing::info!(election = %self.name, term, "stepped down");
                return if stop {
                    Led::Stop
                } else {
                    Led::Again {
                        pause: step_down_pause,
                    }
                };
            }
            tokio::select! {
                () = guard.lost() => {
                    self.control.set_role(Role::Follower { leader: None });
                    tracing::warn!(election = %self.name, term, "leadership lost");
                    drop(guard);
                    return Led::Again { pause: Duration::ZERO };
                }
                _ = self.control.changed.notified() => {}
            }
        }
    }
}
