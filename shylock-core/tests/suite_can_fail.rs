//! The conformance suite catches broken backends: each broken backend below
//! breaks one rule and the matching case must fail.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use shylock_core::{testkit, Backend, Lease, LockInfo, MemoryBackend, Result, SharedBackend};

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
    async fn acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<Option<Lease>> {
        let ttl = match self.flaw {
            Flaw::NoExpiry => Duration::from_secs(3600),
            _ => ttl,
        };
        let won = self.inner.acquire(name, owner, ttl).await?;
        Ok(match (&self.flaw, won) {
            (Flaw::DoubleGrant, None) => Some(Lease::new(
                name,
                owner,
                self.tokens.fetch_add(1, Ordering::SeqCst) + 1_000_000,
                SystemTime::now() + ttl,
            )),
            (Flaw::ConstantFence, Some(lease)) => {
                Some(Lease::new(name, owner, 7, lease.expires_at()))
            }
            (_, won) => won,
        })
    }
    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Option<Lease>> {
        self.inner.extend(lease, ttl).await
    }
    async fn release(&self, lease: &Lease) -> Result<bool> {
        match self.flaw {
            Flaw::ReleaseAnyOwner => self.inner.force_release(lease.name()).await,
            _ => self.inner.release(lease).await,
        }
    }
    async fn inspect(&self, name: &str) -> Result<Option<LockInfo>> {
        self.inner.inspect(name).await
    }
    async fn force_release(&self, name: &str) -> Result<bool> {
        self.inner.force_release(name).await
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
