//! The conformance suites against a 3-shard `ShardedBackend` of memory
//! backends.

use shylock_core::{MemoryBackend, ShardedBackend, SharedBackend};

async fn sharded() -> SharedBackend {
    ShardedBackend::new((0..3).map(|_| MemoryBackend::new()))
        .unwrap()
        .into()
}

shylock_core::conformance_tests!(sharded());
