//! [`Election`]: leader election on any backend, built on a lock.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backend::{validate_name, Deadline, SharedBackend};
use crate::error::{Error, Result};
use crate::guard::AsyncLockGuard;
use crate::options::LockOptions;
use crate::spec::Spec;
use crate::target::Target;
use crate::wait::{self, Owner, Wait};

/// Separates a candidate's identity from the random part of its owner
/// token, so observers can tell who leads.
const IDENTITY_SEPARATOR: char = '#';

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

/// Who leads an election now, as [`Election::leader`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaderInfo {
    /// The leader's identity (as given to [`Election::new`]).
    pub identity: String,
    /// The leadership's term (fencing token).
    pub term: u64,
    /// When the leader's lease ends unless renewed, by the database's clock.
    pub expires_at: SystemTime,
}

/// Leader election: among the candidates that campaign for one name, at
/// most one leads at a time.
///
/// Leadership is a lock on the election's name, held with renewal:
/// - [`campaign`](Self::campaign) contends until stopped. It leads while
///   its lease holds and, after losing it (the lease ran out, the database
///   stayed unreachable until it did, an operator force-released it, or it
///   stepped down), becomes a follower and contends again by itself. A
///   database error never ends a campaign.
/// - A leader learns it lost its lease no later than the moment another
///   candidate could take it (see [`LockOptions::clock_drift_ppm`]), so
///   [`Campaign::lead`] cancels leader-only work before a new leader can
///   start its own.
/// - Each leadership's term is its fencing token: strictly increasing.
/// - Failover after a leader crashes takes at most the ttl plus one
///   backoff step (followers retry at the options' maximum backoff, and at
///   once when a release is signalled).
///
/// # Examples
///
/// ```
/// use shylock_core::{Election, MemoryBackend, Role};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shylock_core::Result<()> {
/// let backend = MemoryBackend::new();
/// let a = Election::with_backend("scheduler", "node-a", backend.clone()).campaign()?;
/// let term = a.wait_until_leader().await;
/// let b = Election::with_backend("scheduler", "node-b", backend.clone()).campaign()?;
/// // b follows a: it knows who leads.
/// let mut roles = b.subscribe();
/// let role = roles.wait_for(|r| matches!(r, Role::Follower { leader: Some(_) })).await.unwrap().clone();
/// assert_eq!(role, Role::Follower { leader: Some("node-a".into()) });
/// a.step_down().await?;
/// assert!(b.wait_until_leader().await > term);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Election {
    spec: Spec,
    identity: String,
}

impl Election {
    /// An election on `name` in the default backend, for the candidate
    /// `identity` (a human-readable id such as the host name; it must not
    /// contain `#`).
    pub fn new(name: impl Into<String>, identity: impl Into<String>) -> Self {
        Election {
            spec: Spec::new(name.into(), None),
            identity: identity.into(),
        }
    }

    /// An election on `name` in an explicit backend.
    pub fn with_backend(
        name: impl Into<String>,
        identity: impl Into<String>,
        backend: impl Into<SharedBackend>,
    ) -> Self {
        Election {
            spec: Spec::new(name.into(), Some(backend.into())),
            identity: identity.into(),
        }
    }

    /// Sets the leadership lease's options: the ttl bounds failover after a
    /// crash; renewal keeps the lease; the maximum backoff is how often
    /// followers retry.
    pub fn with_options(self, options: LockOptions) -> Self {
        Election {
            spec: self.spec.with_options(options),
            identity: self.identity,
        }
    }

    /// The election's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn resolve(&self) -> Result<(SharedBackend, LockOptions)> {
        validate_name(self.name())?;
        if self.identity.is_empty() || self.identity.contains(IDENTITY_SEPARATOR) {
            return Err(Error::InvalidOptions {
                reason: format!(
                    "candidate identity {:?} must be non-empty and without '#'; use e.g. the \
                     host name",
                    self.identity
                ),
            });
        }
        let (backend, options) = self.spec.resolve()?;
        if options.renewal_interval().is_none() {
            return Err(Error::InvalidOptions {
                reason: "an election needs renewal on: a leader whose lease is never extended \
                         loses it after one ttl"
                    .into(),
            });
        }
        Ok((backend, options))
    }

    /// Starts campaigning in the background (on the current tokio runtime,
    /// or shylock's own when called outside one, so blocking programs can
    /// campaign too). The campaign runs until [`Campaign::stop`] or until
    /// the handle is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::InvalidOptions`] (also for renewal
    /// off or an identity with `#`), [`Error::NotConfigured`].
    pub fn campaign(&self) -> Result<Campaign> {
        let (backend, options) = self.resolve()?;
        let (roles, _) = watch::channel(Role::Follower { leader: None });
        let control = Arc::new(Control {
            roles,
            changed: Notify::new(),
            commands: std::sync::Mutex::new(Commands::default()),
        });
        let task = CampaignTask {
            name: self.name().to_owned(),
            identity: self.identity.clone(),
            backend,
            options,
            control: control.clone(),
        };
        let handle = match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.spawn(task.run()),
            Err(_) => crate::runtime::background_runtime()?.spawn(task.run()),
        };
        Ok(Campaign {
            control,
            task: Some(handle),
        })
    }

    /// Who leads now, without campaigning: the leader's identity, term and
    /// lease expiry, or `None` when nobody leads. Bounded by the operation
    /// timeout.
    pub async fn leader(&self) -> Result<Option<LeaderInfo>> {
        let (backend, options) = self.spec.resolve()?;
        let deadline = Deadline::after(options.operation_timeout);
        let info = deadline
            .bound("inspect", backend.inspect(self.name(), deadline))
            .await?;
        Ok(info.map(|i| LeaderInfo {
            identity: identity_of(&i.owner),
            term: i.fencing_token,
            expires_at: i.expires_at,
        }))
    }
}

/// The identity part of an election owner token.
fn identity_of(owner: &str) -> String {
    match owner.rsplit_once(IDENTITY_SEPARATOR) {
        Some((identity, _)) => identity.to_owned(),
        None => owner.to_owned(),
    }
}

#[derive(Debug)]
struct Control {
    roles: watch::Sender<Role>,
    /// Wakes the campaign task when a command arrives.
    changed: Notify,
    commands: std::sync::Mutex<Commands>,
}

#[derive(Debug, Default)]
struct Commands {
    step_down: bool,
    paused: bool,
    stop: bool,
}

impl Control {
    fn commands(&self) -> std::sync::MutexGuard<'_, Commands> {
        self.commands.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_role(&self, role: Role) {
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

/// A running campaign (see [`Election::campaign`]). Dropping it stops the
/// campaign and releases leadership in the background.
#[derive(Debug)]
pub struct Campaign {
    control: Arc<Control>,
    task: Option<JoinHandle<()>>,
}

impl Campaign {
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

struct CampaignTask {
    name: String,
    identity: String,
    backend: SharedBackend,
    options: LockOptions,
    control: Arc<Control>,
}

enum Led {
    /// The lease was lost or given up; contend again after `pause`.
    Again {
        pause: Duration,
    },
    Stop,
}

impl CampaignTask {
    async fn run(self) {
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
