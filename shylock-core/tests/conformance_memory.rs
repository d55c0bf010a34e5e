//! The conformance suite (locks, semaphores, fair queues) against the
//! in-process backend.

use shylock_core::{MemoryBackend, SharedBackend};

async fn memory() -> SharedBackend {
    MemoryBackend::new().into()
}

shylock_core::conformance_tests!(memory());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_exclusion_many_rounds() {
    shylock_core::testkit::mutual_exclusion_rounds(MemoryBackend::new().into(), 50).await;
}

#[tokio::test]
async fn clones_share_one_store_and_separate_stores_do_not() {
    use shylock_core::AsyncLock;
    let a = MemoryBackend::new();
    let guard = AsyncLock::with_backend("shared", a.clone())
        .try_acquire()
        .await
        .unwrap();
    assert!(guard.is_some());
    let clone_sees_it = AsyncLock::with_backend("shared", a.clone())
        .is_locked()
        .await
        .unwrap();
    assert!(clone_sees_it, "a clone must share the store");
    let other = AsyncLock::with_backend("shared", MemoryBackend::new());
    assert!(
        !other.is_locked().await.unwrap(),
        "a new backend is a new store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_runs_the_same_list() {
    shylock_core::testkit::run_all(|| async { MemoryBackend::new().into() }).await;
}
