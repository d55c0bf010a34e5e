//! `#[shylock::locked]`: the lock is held across the whole body, released
//! on every path (panics included), and reachable through the companion.

use std::sync::OnceLock;
use std::time::Duration;

use shylock::{locked, Error, MemoryBackend, SharedBackend};

fn store() -> SharedBackend {
    static STORE: OnceLock<MemoryBackend> = OnceLock::new();
    STORE.get_or_init(MemoryBackend::new).clone().into()
}

#[derive(Debug)]
enum AppError {
    Lock(Error),
    Failed,
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Lock(e)
    }
}

struct Tenant {
    id: u32,
}

#[locked("report-{user_id}", backend = store())]
async fn report(user_id: u64, hold: Duration) -> Result<u64, AppError> {
    // Held across an await.
    assert!(report_lock(user_id, hold).is_locked().await.unwrap());
    tokio::time::sleep(hold).await;
    Ok(user_id * 2)
}

#[locked("import-{tenant.id}", nowait, backend = store())]
async fn import(tenant: &Tenant, fail: bool) -> Result<(), AppError> {
    if fail {
        return Err(AppError::Failed); // an early return releases too
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

#[locked("slow-{{braces}}-{n}", timeout = "100ms", ttl = "5s", backend = store())]
async fn slow(n: u8) -> Result<(), AppError> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

#[locked("blocking-{n}", nowait, backend = store())]
fn blocking(n: u8, panic: bool) -> Result<u8, AppError> {
    assert!(!panic, "the body panicked");
    Ok(n)
}

struct Job {
    id: u32,
}

impl Job {
    #[locked("job-{self.id}", backend = store())]
    async fn run(&self) -> Result<u32, AppError> {
        Ok(self.id)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_is_held_for_the_body_and_released_after() {
    assert_eq!(report(21, Duration::ZERO).await.unwrap(), 42);
    assert!(!report_lock(21, Duration::ZERO).is_locked().await.unwrap());
    assert_eq!(report_lock(21, Duration::ZERO).name(), "report-21");
    assert_eq!(Job { id: 5 }.run().await.unwrap(), 5);
    assert_eq!(Job { id: 5 }.run_lock().name(), "job-5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nowait_reports_held_and_early_returns_release() {
    let tenant = Tenant { id: 9 };
    let first = tokio::spawn(async { import(&Tenant { id: 9 }, false).await });
    let lock = import_lock(&tenant, false);
    shylock_core::testkit::wait_for(Duration::from_secs(5), || async {
        lock.is_locked().await.unwrap().then_some(())
    })
    .await
    .expect("the first import never took the lock");
    match import(&tenant, false).await {
        Err(AppError::Lock(Error::Held { name })) => assert_eq!(name, "import-9"),
        other => panic!("expected Held, got {other:?}"),
    }
    first.await.unwrap().unwrap();
    assert!(matches!(import(&tenant, true).await, Err(AppError::Failed)));
    assert!(
        !lock.is_locked().await.unwrap(),
        "an early return kept the lock"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_gives_up_with_timeout() {
    assert_eq!(slow_lock(1).name(), "slow-{braces}-1");
    let first = tokio::spawn(slow(1));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(
        slow(1).await,
        Err(AppError::Lock(Error::Timeout { .. }))
    ));
    first.await.unwrap().unwrap();
}

#[test]
fn blocking_functions_release_even_when_they_panic() {
    assert_eq!(blocking(3, false).unwrap(), 3);
    let panicked = std::panic::catch_unwind(|| blocking(4, true));
    assert!(panicked.is_err());
    // The guard was dropped during the unwind, which released the lock.
    assert!(!blocking_lock(4, true).is_locked().unwrap());
    assert_eq!(blocking(4, false).unwrap(), 4);
}
