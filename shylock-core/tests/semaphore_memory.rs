//! The semaphore conformance suite against the in-process backend.

use shylock_core::{MemoryBackend, SharedBackend};

async fn memory() -> SharedBackend {
    MemoryBackend::new().into()
}

shylock_core::semaphore_conformance_tests!(memory());
