//! The backend conformance suite (feature `testkit`).
//!
//! Plain async functions that take a backend and panic when it breaks the
//! [`Backend`](crate::Backend) contract. Every backend crate runs all of
//! them, most simply with [`conformance_tests!`](crate::conformance_tests):
//!
//! ```ignore
//! async fn backend() -> Option<shylock_core::SharedBackend> {
//!     Some(shylock_core::MemoryBackend::new().into())
//! }
//! shylock_core::conformance_tests!(backend());
//! ```
//!
//! The factory returns `None` (after printing why) when the backend's server
//! is not available; the cases then return without checking anything.
//! Every case uses lock names with a random prefix, so cases may share one
//! database.

mod hold_log;

pub use hold_log::{
    check_hold_log, parse_hold_line, read_hold_log, HoldEvent, HoldKind, HoldLog, HoldReport,
};

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{Lease, SharedBackend, MAX_NAME_LEN};
use crate::error::Error;
use crate::lock::AsyncLock;
use crate::options::{LockOptions, Renewal};

/// A name no other case or run uses.
pub fn unique_name(label: &str) -> String {
    format!("shylock-test/{label}/{}", uuid::Uuid::new_v4())
}

fn owner() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Polls `attempt` every 10 ms until it yields `Some` or `limit` passes.
pub async fn wait_for<T, F, Fut>(limit: Duration, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = attempt().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Options for suite locks: long ttl so only the cases about expiry see it,
/// and a backoff starting at 1 ms; releases wake waiters through the
/// backend's signal, so the 200 ms cap only bounds idle polling.
fn suite_options() -> LockOptions {
    LockOptions::default()
        .ttl(Duration::from_secs(30))
        .backoff(Duration::from_millis(1), Duration::from_millis(200))
}

/// 32 concurrent acquirers × `rounds` each on one name: a counter inside the
/// critical section never sees two holders, every acquisition happens, and
/// fencing tokens strictly increase in the order holders got the lock.
pub async fn mutual_exclusion_rounds(backend: SharedBackend, rounds: usize) {
    const ACQUIRERS: usize = 32;
    let name = unique_name("mutex");
    let inside = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let last_fence = Arc::new(Mutex::new(0u64));
    let mut tasks = Vec::new();
    for _ in 0..ACQUIRERS {
        let lock =
            AsyncLock::with_backend(name.clone(), backend.clone()).with_options(suite_options());
        let (inside, total, last_fence) = (inside.clone(), total.clone(), last_fence.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds {
                let guard = lock.acquire().await.expect("acquire failed");
                let before = inside.fetch_add(1, Ordering::SeqCst);
                assert_eq!(before, 0, "two holders of {:?} at once", lock.name());
                {
                    let mut last = last_fence.lock().unwrap();
                    assert!(
                        guard.fencing_token() > *last,
                        "fencing token {} not above the previous holder's {}",
                        guard.fencing_token(),
                        *last
                    );
                    *last = guard.fencing_token();
                }
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_micros(200)).await;
                let after = inside.fetch_sub(1, Ordering::SeqCst);
                assert_eq!(after, 1, "two holders of {:?} at once", lock.name());
                total.fetch_add(1, Ordering::SeqCst);
                guard
                    .release()
                    .await
                    .expect("release of a held lock failed");
            }
        }));
    }
    for task in tasks {
        if let Err(e) = task.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    assert_eq!(total.load(Ordering::SeqCst), ACQUIRERS * rounds);
}

/// [`mutual_exclusion_rounds`] with 8 rounds (256 acquisitions).
pub async fn mutual_exclusion(backend: SharedBackend) {
    mutual_exclusion_rounds(backend, 8).await
}

/// Many owners calling `Backend::acquire` at the same instant on a fresh
/// name (the first-creation race): exactly one wins.
pub async fn first_creation_race(backend: SharedBackend) {
    for _ in 0..5 {
        let name = unique_name("race");
        let start = Arc::new(tokio::sync::Barrier::new(20));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (backend, name, start) = (backend.clone(), name.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                backend
                    .acquire(&name, &owner(), Duration::from_secs(30))
                    .await
                    .expect("acquire failed")
                    .is_some()
            }));
        }
        let mut winners = 0;
        for task in tasks {
            winners += usize::from(task.await.unwrap());
        }
        assert_eq!(winners, 1, "{winners} owners won the same fresh lock");
    }
}

/// `try_acquire` while the lock is held returns `None` quickly; after
/// release it succeeds.
pub async fn try_acquire_while_held(backend: SharedBackend) {
    let lock = AsyncLock::with_backend(unique_name("try"), backend).with_options(suite_options());
    let guard = lock
        .try_acquire()
        .await
        .unwrap()
        .expect("free lock not taken");
    assert!(
        lock.try_acquire().await.unwrap().is_none(),
        "held lock taken twice"
    );
    assert!(lock
        .acquire_timeout(Duration::from_millis(50))
        .await
        .unwrap()
        .is_none());
    guard.release().await.unwrap();
    let again = lock.try_acquire().await.unwrap();
    assert!(again.is_some(), "released lock not free");
}

/// Another owner can neither release nor extend a held lock.
pub async fn owner_checked_release_and_extend(backend: SharedBackend) {
    let name = unique_name("owner");
    let ttl = Duration::from_secs(30);
    let lease = backend
        .acquire(&name, &owner(), ttl)
        .await
        .unwrap()
        .expect("free lock");
    let impostor = Lease::new(&name, owner(), lease.fencing_token(), lease.expires_at());
    assert!(
        !backend.release(&impostor).await.unwrap(),
        "impostor released the lock"
    );
    assert!(
        backend.extend(&impostor, ttl).await.unwrap().is_none(),
        "impostor extended the lock"
    );
    let info = backend
        .inspect(&name)
        .await
        .unwrap()
        .expect("lock vanished");
    assert_eq!(info.owner, lease.owner());
    assert_eq!(info.fencing_token, lease.fencing_token());
    assert!(backend
        .acquire(&name, &owner(), ttl)
        .await
        .unwrap()
        .is_none());
    // The owner still can.
    let extended = backend
        .extend(&lease, ttl)
        .await
        .unwrap()
        .expect("owner could not extend");
    assert_eq!(extended.fencing_token(), lease.fencing_token());
    assert!(
        backend.release(&lease).await.unwrap(),
        "owner could not release"
    );
    assert!(!backend.release(&lease).await.unwrap(), "released twice");
    assert!(backend.inspect(&name).await.unwrap().is_none());
}

/// Acquiring again with the same owner token (a retried request) returns the
/// same lease instead of "held".
pub async fn same_owner_reacquire_is_idempotent(backend: SharedBackend) {
    let name = unique_name("retry");
    let me = owner();
    let ttl = Duration::from_secs(30);
    let first = backend
        .acquire(&name, &me, ttl)
        .await
        .unwrap()
        .expect("free lock");
    let second = backend
        .acquire(&name, &me, ttl)
        .await
        .unwrap()
        .expect("retry lost the lock");
    assert_eq!(first.fencing_token(), second.fencing_token());
    assert!(backend.release(&second).await.unwrap());
}

/// A lock expires after its ttl (judged by the backend), not before, and then
/// another owner gets it with a higher fencing token; the old owner can
/// neither extend nor release it any more.
pub async fn expiry_frees_lock(backend: SharedBackend) {
    let name = unique_name("expiry");
    let ttl = Duration::from_millis(400);
    let started = Instant::now();
    let first = backend
        .acquire(&name, &owner(), ttl)
        .await
        .unwrap()
        .expect("free lock");
    assert!(backend
        .acquire(&name, &owner(), ttl)
        .await
        .unwrap()
        .is_none());
    let next_owner = owner();
    let second = wait_for(Duration::from_secs(20), || {
        let (backend, name, next_owner) = (backend.clone(), name.clone(), next_owner.clone());
        async move { backend.acquire(&name, &next_owner, ttl).await.unwrap() }
    })
    .await
    .expect("lock never expired");
    assert!(
        started.elapsed() >= ttl,
        "lock taken over after {:?}, before its ttl {ttl:?}",
        started.elapsed()
    );
    assert!(second.fencing_token() > first.fencing_token());
    assert!(
        backend.extend(&first, ttl).await.unwrap().is_none(),
        "expired owner extended"
    );
    assert!(
        !backend.release(&first).await.unwrap(),
        "expired owner released"
    );
    assert!(backend.release(&second).await.unwrap());
}

/// Fencing tokens strictly increase across holders: after release, after
/// expiry and after force_release.
pub async fn fencing_tokens_increase(backend: SharedBackend) {
    let name = unique_name("fence");
    let long = Duration::from_secs(30);
    let mut last = 0u64;
    let mut check = |lease: &Lease| {
        assert!(
            lease.fencing_token() > last,
            "fencing token {} not above {last}",
            lease.fencing_token()
        );
        last = lease.fencing_token();
    };
    for _ in 0..5 {
        let lease = backend
            .acquire(&name, &owner(), long)
            .await
            .unwrap()
            .expect("free");
        check(&lease);
        assert!(backend.release(&lease).await.unwrap());
    }
    let lease = backend
        .acquire(&name, &owner(), long)
        .await
        .unwrap()
        .expect("free");
    check(&lease);
    assert!(backend.force_release(&name).await.unwrap());
    let short = Duration::from_millis(50);
    let lease = backend
        .acquire(&name, &owner(), short)
        .await
        .unwrap()
        .expect("free");
    check(&lease);
    let after_expiry = wait_for(Duration::from_secs(20), || {
        let (backend, name) = (backend.clone(), name.clone());
        async move { backend.acquire(&name, &owner(), long).await.unwrap() }
    })
    .await
    .expect("lock never expired");
    check(&after_expiry);
    assert!(backend.release(&after_expiry).await.unwrap());
}

/// `force_release` frees a held lock whoever holds it, reports whether it
/// did, and the old holder's guard then reports the lock lost.
pub async fn force_release(backend: SharedBackend) {
    let lock = AsyncLock::with_backend(unique_name("force"), backend)
        .with_options(suite_options().renewal(Renewal::Off));
    assert!(
        !lock.force_release().await.unwrap(),
        "freed a lock nobody held"
    );
    let guard = lock.acquire().await.unwrap();
    assert!(lock.force_release().await.unwrap());
    assert!(!lock.is_locked().await.unwrap());
    let next = lock
        .try_acquire()
        .await
        .unwrap()
        .expect("force-released lock not free");
    assert!(next.fencing_token() > guard.fencing_token());
    assert!(matches!(
        guard.extend(Duration::from_secs(5)).await,
        Err(Error::LockLost { .. })
    ));
    assert!(guard.is_lost());
    assert!(matches!(guard.release().await, Err(Error::LockLost { .. })));
    assert!(
        lock.is_locked().await.unwrap(),
        "old holder's release freed the new holder"
    );
    next.release().await.unwrap();
}

/// `is_locked` and `inspect` follow acquire, release and expiry.
pub async fn is_locked(backend: SharedBackend) {
    let lock = AsyncLock::with_backend(unique_name("inspect"), backend.clone())
        .with_options(suite_options());
    assert!(!lock.is_locked().await.unwrap());
    assert!(lock.inspect().await.unwrap().is_none());
    let guard = lock.acquire().await.unwrap();
    assert!(lock.is_locked().await.unwrap());
    let info = lock
        .inspect()
        .await
        .unwrap()
        .expect("held lock not reported");
    assert_eq!(info.name, lock.name());
    assert_eq!(info.fencing_token, guard.fencing_token());
    assert_eq!(info.owner, guard.owner());
    guard.release().await.unwrap();
    assert!(!lock.is_locked().await.unwrap());
    // An expired lock is not reported as held.
    let lease = backend
        .acquire(lock.name(), &owner(), Duration::from_millis(50))
        .await
        .unwrap()
        .expect("free");
    let freed = wait_for(Duration::from_secs(20), || {
        let lock = lock.clone();
        async move { (!lock.is_locked().await.unwrap()).then_some(()) }
    })
    .await;
    assert!(
        freed.is_some(),
        "expired lock {lease:?} still reported as held"
    );
}

/// Names with slashes, dots, `$`, spaces, emoji, NUL, and names up to 64 KiB
/// are valid and distinct; empty and oversize names are `InvalidName`.
pub async fn name_edge_cases(backend: SharedBackend) {
    let base = unique_name("names");
    let suffixes = [
        "/a/b",
        ".dots.",
        "$dollar",
        "with space",
        "emoji-🔒",
        "nul\0byte",
        "nul\0bytf",
        "UPPER",
        "upper",
        "a.b",
        "a_b",
        "a%2Fb",
        "a/b",
        "tab\t",
        "quote\"'",
        "\\back",
    ];
    let locks: Vec<AsyncLock> = suffixes
        .iter()
        .map(|s| {
            AsyncLock::with_backend(format!("{base}{s}"), backend.clone())
                .with_options(suite_options())
        })
        .collect();
    let mut guards = Vec::new();
    for lock in &locks {
        let guard = lock.try_acquire().await.unwrap();
        assert!(
            guard.is_some(),
            "name {:?} clashed with another name",
            lock.name()
        );
        guards.push(guard.unwrap());
    }
    for (lock, guard) in locks.iter().zip(&guards) {
        let info = lock.inspect().await.unwrap().expect("held");
        assert_eq!(info.name, lock.name());
        assert_eq!(info.fencing_token, guard.fencing_token());
        assert!(lock.try_acquire().await.unwrap().is_none());
    }
    for guard in guards {
        guard.release().await.unwrap();
    }
    // The longest valid name, and names differing only in their last byte.
    let prefix_len = MAX_NAME_LEN - 1;
    let mut long = "x".repeat(prefix_len - base.len());
    long.insert_str(0, &base);
    let long_a = AsyncLock::with_backend(format!("{long}a"), backend.clone());
    let long_b = AsyncLock::with_backend(format!("{long}b"), backend.clone());
    assert_eq!(long_a.name().len(), MAX_NAME_LEN);
    let ga = long_a
        .try_acquire()
        .await
        .unwrap()
        .expect("64 KiB name rejected");
    let gb = long_b
        .try_acquire()
        .await
        .unwrap()
        .expect("long names clashed");
    ga.release().await.unwrap();
    gb.release().await.unwrap();
    for bad in [String::new(), format!("{long}ab")] {
        let result = AsyncLock::with_backend(bad, backend.clone())
            .try_acquire()
            .await;
        assert!(
            matches!(result, Err(Error::InvalidName { .. })),
            "{result:?}"
        );
    }
}

/// Two different names never block each other.
pub async fn distinct_names_independent(backend: SharedBackend) {
    let a =
        AsyncLock::with_backend(unique_name("a"), backend.clone()).with_options(suite_options());
    let b = AsyncLock::with_backend(unique_name("b"), backend).with_options(suite_options());
    let ga = a.try_acquire().await.unwrap().expect("a");
    let gb = b.try_acquire().await.unwrap().expect("b while a is held");
    gb.release().await.unwrap();
    assert!(a.is_locked().await.unwrap());
    ga.release().await.unwrap();
}

/// A waiter in `acquire()` gets the lock soon after the holder releases it.
pub async fn waiter_gets_released_lock(backend: SharedBackend) {
    let lock =
        AsyncLock::with_backend(unique_name("handoff"), backend).with_options(suite_options());
    let holder = lock.acquire().await.unwrap();
    let holder_token = holder.fencing_token();
    let waiter = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.acquire().await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!waiter.is_finished(), "waiter got a held lock");
    holder.release().await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("waiter never got the released lock")
        .unwrap()
        .unwrap();
    assert!(next.fencing_token() > holder_token);
    next.release().await.unwrap();
}

/// With a wait timeout, `acquire()` fails with `Error::Timeout` in bounded
/// time while the lock stays held.
pub async fn wait_timeout(backend: SharedBackend) {
    let name = unique_name("timeout");
    let holder = AsyncLock::with_backend(name.clone(), backend.clone())
        .acquire()
        .await
        .unwrap();
    let lock = AsyncLock::with_backend(name, backend)
        .with_options(suite_options().wait_timeout(Some(Duration::from_millis(100))));
    let started = Instant::now();
    let result = lock.acquire().await;
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(started.elapsed() < Duration::from_secs(20));
    holder.release().await.unwrap();
}

/// Renewal keeps a lock held past several ttls; release stops it.
///
/// The ttl leaves room for a slow server under the load of the other cases:
/// an extend that cannot be confirmed within the lease rightly loses it.
pub async fn renewal_keeps_lock(backend: SharedBackend) {
    let ttl = Duration::from_millis(1200);
    let lock = AsyncLock::with_backend(unique_name("renew"), backend).with_options(
        suite_options()
            .ttl(ttl)
            .renewal(Renewal::Every(Duration::from_millis(200))),
    );
    let guard = lock.acquire().await.unwrap();
    let first_expiry = guard.expires_at();
    let until = Instant::now() + ttl * 3;
    while Instant::now() < until {
        assert!(
            lock.try_acquire().await.unwrap().is_none(),
            "renewed lock was taken"
        );
        assert!(!guard.is_lost());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        guard.expires_at() > first_expiry,
        "expires_at not kept current"
    );
    guard.release().await.unwrap();
    assert!(!lock.is_locked().await.unwrap());
}

/// Runs every case against backends made by `make` (one per case).
pub async fn run_all<F, Fut>(mut make: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = SharedBackend>,
{
    mutual_exclusion(make().await).await;
    first_creation_race(make().await).await;
    try_acquire_while_held(make().await).await;
    owner_checked_release_and_extend(make().await).await;
    same_owner_reacquire_is_idempotent(make().await).await;
    expiry_frees_lock(make().await).await;
    fencing_tokens_increase(make().await).await;
    force_release(make().await).await;
    is_locked(make().await).await;
    name_edge_cases(make().await).await;
    distinct_names_independent(make().await).await;
    waiter_gets_released_lock(make().await).await;
    wait_timeout(make().await).await;
    renewal_keeps_lock(make().await).await;
}

/// Counts calls per operation; wraps a backend for tests that check how many
/// round trips the core makes.
#[derive(Debug)]
pub struct CountingBackend {
    inner: SharedBackend,
    /// Calls to `acquire`.
    pub acquires: AtomicU64,
    /// Calls to `extend`.
    pub extends: AtomicU64,
    /// Calls to `release`.
    pub releases: AtomicU64,
}

impl CountingBackend {
    /// Wraps `inner`.
    pub fn new(inner: impl Into<SharedBackend>) -> Arc<Self> {
        Arc::new(CountingBackend {
            inner: inner.into(),
            acquires: AtomicU64::new(0),
            extends: AtomicU64::new(0),
            releases: AtomicU64::new(0),
        })
    }
}

#[async_trait::async_trait]
impl crate::Backend for CountingBackend {
    async fn acquire(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> crate::Result<Option<Lease>> {
        self.acquires.fetch_add(1, Ordering::SeqCst);
        self.inner.acquire(name, owner, ttl).await
    }
    async fn extend(&self, lease: &Lease, ttl: Duration) -> crate::Result<Option<Lease>> {
        self.extends.fetch_add(1, Ordering::SeqCst);
        self.inner.extend(lease, ttl).await
    }
    async fn release(&self, lease: &Lease) -> crate::Result<bool> {
        self.releases.fetch_add(1, Ordering::SeqCst);
        self.inner.release(lease).await
    }
    async fn inspect(&self, name: &str) -> crate::Result<Option<crate::LockInfo>> {
        self.inner.inspect(name).await
    }
    async fn force_release(&self, name: &str) -> crate::Result<bool> {
        self.inner.force_release(name).await
    }
    fn release_signal(&self, name: &str) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        self.inner.release_signal(name)
    }
}

/// Generates one `#[tokio::test]` per conformance case.
///
/// `$make` is an expression evaluated once per case that yields a future of
/// `Option<SharedBackend>`; `None` means "server not available" and the
/// factory is expected to have printed why.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            mutual_exclusion, first_creation_race, try_acquire_while_held,
            owner_checked_release_and_extend, same_owner_reacquire_is_idempotent,
            expiry_frees_lock, fencing_tokens_increase, force_release, is_locked,
            name_edge_cases, distinct_names_independent, waiter_gets_released_lock,
            wait_timeout, renewal_keeps_lock);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                if let Some(backend) = $make.await {
                    $crate::testkit::$case(backend).await;
                }
            }
        )*
    };
}
