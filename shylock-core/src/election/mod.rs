//! [`Election`]: leader election on any backend, built on a lock.

use std::sync::Arc;
use std::time::SystemTime;

use crate::backend::{validate_name, Deadline, SharedBackend};
use crate::error::{Error, Result};
use crate::options::LockOptions;
use crate::spec::Spec;

mod campaign;
mod task;

use campaign::Control;
pub use campaign::{Campaign, Role};
use task::{identity_of, CampaignTask, IDENTITY_SEPARATOR};

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
/// # extern crate shylock_core as shylock;
/// use shylock::{Election, MemoryBackend, Role};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shylock::Result<()> {
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
        let control = Arc::new(Control::new());
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
        Ok(Campaign::new(control, handle))
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
