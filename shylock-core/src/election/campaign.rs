//! [`Campaign`]: the handle of a running campaign, and the [`Role`] it
//! reports; the commands it gives the campaign task go through [`Control`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::error::Result;

/// A candidate's role, as [`Campaign::subscribe`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// This candidate leads. `term` is the fencing token of its lease:
    /// strictly greater than every earlier term of this election, so
    /// leader-only writes can carry it and be refused when stale.
    Leader {
        /// The term (fencing token) of this leadership.
        term: u64,
    },
    /// Another candidate leads (its identity, when known), or nobody does.
    Follower {
        /// The current leader's identity, if one was seen.
        leader: Option<String>,
    },
}

impl Role {
    /// The term, when this candidate leads.
    pub fn term(&self) -> Option<u64> {
        match self {
            Role::Leader { term } => Some(*term),
            Role::Follower { .. } => None,
        }
    }
}

/// What the handle and the campaign task share.
#[derive(Debug)]
pub(super) struct Control {
    pub(super) roles: watch::Sender<Role>,
    /// Wakes the campaign task when a command arrives.
    pub(super) changed: Notify,
    commands: std::sync::Mutex<Commands>,
}

#[derive(Debug, Default)]
pub(super) struct Commands {
    pub(super) step_down: bool,
    pub(super) paused: bool,
    pub(super) stop: bool,
}

impl Control {
    pub(super) fn new() -> Self {
        let (roles, _) = watch::channel(Role::Follower { leader: None });
        Control {
            roles,
            changed: Notify::new(),
            commands: std::sync::Mutex::new(Commands::default()),
        }
    }

    pub(super) fn commands(&self) -> std::sync::MutexGuard<'_, Commands> {
        self.commands.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn set_role(&self, role: Role) {
        self.roles.send_if_modified(|current| {
            if *current == role {
                false
            } else {
                *current = role;
                true
            }
        });
    }
}

/// A running campaign (see [`Election::campaign`](super::Election::campaign)). Dropping it stops the
/// campaign and releases leadership in the background.
#[derive(Debug)]
pub struct Campaign {
    control: Arc<Control>,
    task: Option<JoinHandle<()>>,
}

impl Campaign {
    pub(super) fn new(control: Arc<Control>, task: JoinHandle<()>) -> Self {
        Campaign {
            control,
            task: Some(task),
        }
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.control.roles.borrow().clone()
    }

    /// True while this candidate leads.
    pub fn is_leader(&self) -> bool {
        self.role().term().is_some()
    }

    /// A receiver of role changes (a `tokio::sync::watch`).
    pub fn subscribe(&self) -> watch::Receiver<Role> {
        self.control.roles.subscribe()
    }

    /// Waits until this candidate leads; returns the term.
    pub async fn wait_until_leader(&self) -> u64 {
        let mut roles = self.subscribe();
        loop {
            if let Some(term) = roles.borrow_and_update().term() {
                return term;
            }
            if roles.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Runs `work(term)` while this candidate leads. The moment leadership
    /// is lost, the running future is dropped (before another candidate can
    /// be elected), and on the next term `work` starts again with the new
    /// term. Returns the output of the first run that completes while
    /// leading.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the running `work` future; the campaign goes on.
    pub async fn lead<F, Fut, T>(&self, mut work: F) -> T
    where
        F: FnMut(u64) -> Fut,
        Fut: Future<Output = T>,
    {
        let mut roles = self.subscribe();
        loop {
            let term = loop {
                if let Some(term) = roles.borrow_and_update().term() {
                    break term;
                }
                if roles.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let still_leading = async {
                loop {
                    if roles.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    if roles.borrow_and_update().term() != Some(term) {
                        return;
                    }
                }
            };
            tokio::select! {
                output = work(term) => return output,
                () = still_leading => {
                    tracing::info!(term, "leadership lost: leader-only work cancelled");
                }
            }
        }
    }

    /// Gives leadership up at once (owner-checked: frees only this
    /// candidate's own lease) and stays follower for two backoff steps, so
    /// another candidate can take over; then contends again. Does nothing
    /// when following. Returns once the lease is released (or the attempt
    /// to release it failed; the lease then ends by its ttl).
    pub async fn step_down(&self) -> Result<()> {
        step_down(&self.control).await
    }

    /// Pauses (`true`) or resumes (`false`) candidacy. A paused candidate
    /// gives up leadership as [`step_down`](Self::step_down) does and stays
    /// follower until resumed.
    pub fn pause(&self, paused: bool) {
        self.control.commands().paused = paused;
        self.control.changed.notify_one();
    }

    /// Stops the campaign: releases leadership (if held) and waits for the
    /// background task to end.
    pub async fn stop(mut self) {
        self.control.commands().stop = true;
        self.control.changed.notify_one();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Blocking [`wait_until_leader`](Self::wait_until_leader) with a
    /// limit: the term, or `None` when this candidate did not lead within
    /// `timeout`. For programs without async.
    pub fn wait_until_leader_blocking(&self, timeout: Duration) -> Option<u64> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(term) = self.role().term() {
                return Some(term);
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return None;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(10)));
        }
    }

    /// Blocking [`step_down`](Self::step_down).
    pub fn step_down_blocking(&self) -> Result<()> {
        let control = self.control.clone();
        crate::runtime::run("step_down", async move { step_down(&control).await })
    }
}

async fn step_down(control: &Control) -> Result<()> {
    let mut roles = control.roles.subscribe();
    if roles.borrow_and_update().term().is_none() {
        return Ok(());
    }
    control.commands().step_down = true;
    control.changed.notify_one();
    let _ = roles.wait_for(|r| r.term().is_none()).await;
    Ok(())
}

impl Drop for Campaign {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.control.commands().stop = true;
            self.control.changed.notify_one();
        }
    }
}
