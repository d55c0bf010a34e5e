//! The cap on a line of fair waiters, on the in-process backend.

use std::time::Duration;

use shylock_core::backend::MAX_WAITERS;
use shylock_core::testkit::{a_full_line_refuses_new_owners, op_deadline, seeded_owner};
use shylock_core::{MemoryBackend, SharedBackend};

#[tokio::test]
async fn a_full_line_refuses_new_owners_in_memory() {
    let backend: SharedBackend = MemoryBackend::new().into();
    let line = backend.queues().unwrap();
    for i in 0..MAX_WAITERS {
        line.enqueue(
            "full",
            &seeded_owner(i),
            Duration::from_secs(600),
            op_deadline(),
        )
        .await
        .unwrap();
    }
    a_full_line_refuses_new_owners(backend, "full").await;
}
