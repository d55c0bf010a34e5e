//! [`release_all`]: free this process's locks on shutdown.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::backend::SharedBackend;
use crate::lease::Shared;

/// Every lease this process holds: registered when a guard starts, dropped
/// from the list once the guard is gone.
static LIVE: Mutex<Vec<(Weak<Shared>, SharedBackend)>> = Mutex::new(Vec::new());

pub(crate) fn register(shared: &Arc<Shared>, backend: &SharedBackend) {
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    live.retain(|(weak, _)| weak.strong_count() > 0);
    live.push((Arc::downgrade(shared), backend.clone()));
}

/// What [`release_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReleaseAllReport {
    /// Leases freed now.
    pub released: usize,
    /// Leases that were no longer ours (expired or taken over).
    pub already_lost: usize,
    /// Releases that failed or did not finish in time (those leases end by
    /// their ttl).
    pub failed: usize,
}

/// Frees every lock, permit and leadership this process holds, for
/// shutdown hooks (SIGTERM handlers, `Drop` of an application object).
///
/// First every live guard is marked lost, so work selected on
/// [`lost()`](crate::AsyncLockGuard::lost) stops and later
/// `release()` calls report [`Error::LockLost`](crate::Error::LockLost);
/// then each lease is released, concurrently, owner-checked (only this
/// process's own leases, never another's), all within `timeout`. Another
/// process can take the locks at once instead of after their ttl.
///
/// It also waits, within the same `timeout`, for the background releases
/// of guards dropped before the call, so a program that ends with
/// `release_all(..).await` has freed every lock it took, whichever way its
/// guards went.
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::{release_all, AsyncLock, MemoryBackend};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shylock::Result<()> {
/// let backend = MemoryBackend::new();
/// let guard = AsyncLock::with_backend("cron", backend.clone()).acquire().await?;
/// let report = release_all(Duration::from_secs(5)).await;
/// assert!(report.released >= 1);
/// assert!(guard.is_lost());
/// assert!(!AsyncLock::with_backend("cron", backend).is_locked().await?);
/// # Ok(())
/// # }
/// ```
pub async fn release_all(timeout: Duration) -> ReleaseAllReport {
    let live: Vec<(Arc<Shared>, SharedBackend)> = {
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|(weak, _)| weak.strong_count() > 0);
        live.iter()
            .filter_map(|(weak, backend)| weak.upgrade().map(|s| (s, backend.clone())))
            .collect()
    };
    for (shared, _) in &live {
        shared.mark_lost("the process is releasing all its locks (shutdown)");
    }
    let mut report = ReleaseAllReport::default();
    let releases = live.iter().map(|(shared, backend)| shared.release(backend));
    // Releases of guards dropped a moment ago are waited for alongside.
    let until = tokio::time::Instant::now() + timeout;
    let releases = async {
        let (outcomes, ()) = tokio::join!(
            crate::join::join_all(releases),
            crate::inflight::settle_all(until)
        );
        outcomes
    };
    let outcomes = tokio::time::timeout_at(until, releases).await;
    match outcomes {
        Ok(outcomes) => {
            for outcome in outcomes {
                match outcome {
                    Ok(true) => report.released += 1,
                    Ok(false) => report.already_lost += 1,
                    Err(_) => report.failed += 1,
                }
            }
        }
        Err(_) => report.failed = live.len(),
    }
    tracing::info!(
        released = report.released,
        already_lost = report.already_lost,
        failed = report.failed,
        "released every lock of this process"
    );
    report
}

/// [`release_all`] for blocking code (runs on shylock's background runtime).
pub fn release_all_blocking(timeout: Duration) -> ReleaseAllReport {
    crate::runtime::run("release_all", async move { Ok(release_all(timeout).await) })
        .unwrap_or_default()
}
