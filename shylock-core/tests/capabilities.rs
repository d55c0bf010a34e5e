//! A backend that offers only the single lock: the shapes that need a
//! capability it lacks fail at once with a clear error, before any round
//! trip, and the conformance suite runs its lock cases and skips the rest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shylock_core::backend::{Backend, Deadline, Grant};
use shylock_core::{
    AsyncLock, AsyncRwLock, AsyncSemaphore, ErrorKind, LockInfo, LockOptions, MemoryBackend,
    Result, SharedBackend,
};

/// The memory backend's single-lock operations, and nothing else: the
/// capability accessors keep their "not offered" defaults.
#[derive(Debug, Default)]
struct LocksOnly {
    inner: MemoryBackend,
    calls: AtomicU64,
}

impl LocksOnly {
    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl Backend for LocksOnly {
    fn kind(&self) -> &'static str {
        "locks-only"
    }
    async fn claim(&self, n: &str, o: &str, t: Duration, d: Deadline) -> Result<Option<Grant>> {
        self.count();
        self.inner.claim(n, o, t, d).await
    }
    async fn extend(
        &self,
        n: &str,
        o: &str,
        t: Duration,
        d: Deadline,
    ) -> Result<Option<SystemTime>> {
        self.count();
        self.inner.extend(n, o, t, d).await
    }
    async fn release(&self, n: &str, o: &str, d: Deadline) -> Result<bool> {
        self.count();
        self.inner.release(n, o, d).await
    }
    async fn inspect(&self, n: &str, d: Deadline) -> Result<Option<LockInfo>> {
        self.count();
        self.inner.inspect(n, d).await
    }
    async fn list(&self, p: &str, a: Option<&str>, l: usize, d: Deadline) -> Result<Vec<LockInfo>> {
        self.count();
        self.inner.list(p, a, l, d).await
    }
    async fn force_release(&self, n: &str, d: Deadline) -> Result<bool> {
        self.count();
        self.inner.force_release(n, d).await
    }
    fn release_signal(&self, n: &str) -> Option<Arc<tokio::sync::Notify>> {
        self.inner.release_signal(n)
    }
}

fn assert_not_offered<T: std::fmt::Debug>(result: Result<T>, what: &str) {
    let error = result.expect_err("a capability the backend lacks must fail");
    assert_eq!(error.kind(), Some(ErrorKind::Misconfigured), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(what) && message.contains("locks-only"),
        "the error names the capability and the backend: {message}"
    );
}

#[tokio::test]
async fn semaphores_and_fair_locks_fail_before_any_round_trip() {
    let backend = Arc::new(LocksOnly::default());
    let shared = SharedBackend::from(backend.clone());

    let sem = AsyncSemaphore::with_backend("pool", 2, shared.clone());
    assert_not_offered(sem.acquire().await, "semaphores");
    assert_not_offered(sem.try_acquire().await, "semaphores");
    assert_not_offered(sem.available().await, "semaphores");

    let fair = AsyncLock::with_backend("queue", shared.clone())
        .with_options(LockOptions::default().fair(true));
    assert_not_offered(fair.acquire().await, "fair queues");
    assert_not_offered(fair.enqueue().await, "fair queues");
    assert_not_offered(fair.try_acquire().await, "fair queues");

    let rw = AsyncRwLock::with_backend("cache", shared.clone());
    assert_not_offered(rw.read().await, "read/write locks");
    assert_not_offered(rw.try_write().await, "read/write locks");
    assert_not_offered(rw.inspect().await, "read/write locks");
    assert_eq!(backend.calls.load(Ordering::SeqCst), 0, "nothing was sent");

    // The single lock works as ever.
    let guard = AsyncLock::with_backend("plain", shared)
        .acquire()
        .await
        .unwrap();
    guard.release().await.unwrap();
}

async fn locks_only() -> SharedBackend {
    LocksOnly::default().into()
}

// Every group: the semaphore, queue and read/write lock cases report themselves as not run.
shylock_core::conformance_tests!(locks_only());

#[tokio::test]
async fn a_fair_read_write_lock_is_refused_with_what_to_do() {
    let rw = AsyncRwLock::with_backend("cache", shylock_core::MemoryBackend::new())
        .with_options(LockOptions::default().fair(true));
    let error = rw.read().await.expect_err("fair(true) is not offered");
    assert!(
        matches!(error, shylock_core::Error::InvalidOptions { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("RwPreference::Writers"),
        "{error}"
    );
}
