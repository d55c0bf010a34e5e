//! The conformance suite catches broken backends: each broken backend below
//! breaks one rule and the matching case must fail.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use std::sync::Arc;

use shylock_core::backend::{Backend, Deadline, Grant};
use shylock_core::{testkit, LockInfo, MemoryBackend, Result, SharedBackend};
use tokio::sync::Notify;

/// Breaks one rule of the contract on top of a correct store.
#[derive(Debug)]
enum Flaw {
    /// Lets every acquirer in.
    DoubleGrant,
    /// Hands out the same fencing token to every holder.
    ConstantFence,
    /// Releases whoever holds the lock.
    ReleaseAnyOwner,
    /// Never expires a lock.
    NoExpiry,
    /// Lists every lock, whatever the prefix and page.
    SloppyList,
    /// Gives waiters no release signal.
    NoSignal,
}

#[derive(Debug)]
struct Broken {
    inner: MemoryBackend,
    flaw: Flaw,
    tokens: AtomicU64,
}

fn broken(flaw: Flaw) -> SharedBackend {
    Broken {
        inner: MemoryBackend::new(),
        flaw,
        tokens: AtomicU64::new(0),
    }
    .into()
}

#[async_trait::async_trait]
impl Backend for Broken {
    async fn claim(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<Grant>> {
        let ttl = match self.flaw {
            Flaw::NoExpiry => Duration::from_secs(3600),
            _ => ttl,
        };
        let won = self.inner.claim(name, owner, ttl, deadline).await?;
        Ok(match (&self.flaw, won) {
            (Flaw::DoubleGrant, None) => Some(Grant::new(
                self.tokens.fetch_add(1, Ordering::SeqCst) + 1_000_000,
                SystemTime::now() + ttl,
            )),
            (Flaw::ConstantFence, Some(grant)) => Some(Grant::new(7, grant.expires_at)),
            (_, won) => won,
        })
    }
    async fn extend(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        deadline: Deadline,
    ) -> Result<Option<SystemTime>> {
        self.inner.extend(name, owner, ttl, deadline).await
    }
    async fn release(&self, name: &str, owner: &str, deadline: Deadline) -> Result<bool> {
        match self.flaw {
            Flaw::ReleaseAnyOwner => self.inner.force_release(name, deadline).await,
            _ => self.inner.release(name, owner, deadline).await,
        }
    }
    async fn inspect(&self, name: &str, deadline: Deadline) -> Result<Option<LockInfo>> {
        self.inner.inspect(name, deadline).await
    }
    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<LockInfo>> {
        match self.flaw {
            // Ignores the prefix and the paging.
            Flaw::SloppyList => self.inner.list("", None, usize::MAX, deadline).await,
            _ => self.inner.list(prefix, after, limit, deadline).await,
        }
    }
    async fn force_release(&self, name: &str, deadline: Deadline) -> Result<bool> {
        self.inner.force_release(name, deadline).await
    }
    fn release_signal(&self, name: &str) -> Option<Arc<Notify>> {
        match self.flaw {
            Flaw::NoSignal => None,
            _ => self.inner.release_signal(name),
        }
    }
}

async fn fails(case: impl Future<Output = ()> + Send + 'static) -> bool {
    let outcome = tokio::spawn(case).await;
    matches!(outcome, Err(e) if e.is_panic())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn double_grant_fails_mutual_exclusion() {
    assert!(fails(testkit::mutual_exclusion(broken(Flaw::DoubleGrant))).await);
    assert!(fails(testkit::first_creation_race(broken(Flaw::DoubleGrant))).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn constant_fence_fails_fencing_cases() {
    assert!(
        fails(testkit::fencing_tokens_increase(broken(
            Flaw::ConstantFence
        )))
        .await
    );
    assert!(fails(testkit::mutual_exclusion(broken(Flaw::ConstantFence))).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn release_of_any_owner_fails_owner_check() {
    assert!(
        fails(testkit::owner_checked_release_and_extend(broken(
            Flaw::ReleaseAnyOwner
        )))
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_expiry_fails_expiry_case() {
    // The case waits 20 s for the takeover before failing; paused time is
    // not available here because the suite runs on a real clock.
    assert!(fails(testkit::expiry_frees_lock(broken(Flaw::NoExpiry))).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_correct_backend_passes_the_same_cases() {
    assert!(!fails(testkit::mutual_exclusion(MemoryBackend::new().into())).await);
    assert!(
        !fails(testkit::fencing_tokens_increase(
            MemoryBackend::new().into()
        ))
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sloppy_list_fails_the_list_case() {
    assert!(fails(testkit::list_live_holders(broken(Flaw::SloppyList))).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backend_whose_releases_wake_nobody_fails_the_wake_up_case() {
    assert!(
        fails(testkit::release_wakes_waiter_at_once(broken(
            Flaw::NoSignal
        )))
        .await
    );
    assert!(
        !fails(testkit::release_wakes_waiter_at_once(
            MemoryBackend::new().into()
        ))
        .await
    );
}
