//! The conformance suite against the in-process backend.

use shylock_core::{MemoryBackend, SharedBackend};

async fn memory() -> Option<SharedBackend> {
    Some(MemoryBackend::new().into())
}

shylock_core::conformance_tests!(memory());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_exclusion_many_rounds() {
    shylock_core::testkit::mutual_exclusion_rounds(MemoryBackend::new().into(), 50).await;
}
