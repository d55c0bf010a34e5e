//! Every public type of every crate of the workspace can be named through
//! `shylock::` alone, under the feature that brings its crate in: a program
//! that depends on `shylock` only can hold any of them in a struct field.

#![allow(dead_code, clippy::too_many_arguments)]

use std::collections::BTreeSet;

/// The types shylock-core exports, named from the facade. Compiling is the
/// test.
fn _core(
    _: shylock::AsyncLock,
    _: shylock::AsyncLockGuard,
    _: shylock::Lock,
    _: shylock::LockGuard,
    _: shylock::AsyncTicket,
    _: shylock::Ticket,
    _: shylock::AsyncSemaphore,
    _: shylock::Semaphore,
    _: shylock::AsyncMultiLock,
    _: shylock::AsyncMultiLockGuard,
    _: shylock::MultiLock,
    _: shylock::AsyncReentrantLock,
    _: shylock::AsyncReentrantGuard,
    _: shylock::ReentrantLock,
    _: shylock::AsyncRwLock,
    _: shylock::AsyncReadGuard,
    _: shylock::AsyncWriteGuard,
    _: shylock::RwLock,
    _: shylock::RwPreference,
    _: shylock::RwLockInfo,
    _: shylock::Election,
    _: shylock::Campaign,
    _: shylock::LeaderInfo,
    _: shylock::Role,
    _: shylock::LockOptions,
    _: shylock::Renewal,
    _: shylock::Error,
    _: shylock::ErrorKind,
    _: shylock::BoxError,
    _: shylock::Result<()>,
    _: shylock::LockInfo,
    _: shylock::SemaphoreInfo,
    _: shylock::QueueInfo,
    _: shylock::MemoryBackend,
    _: shylock::ShardedBackend,
    _: shylock::SharedBackend,
    _: shylock::ReleaseAllReport,
) {
}

/// The blocking twins, by their one naming scheme.
fn _blocking(
    _: shylock::blocking::Lock,
    _: shylock::blocking::LockGuard,
    _: shylock::blocking::Ticket,
    _: shylock::blocking::Semaphore,
    _: shylock::blocking::MultiLock,
    _: shylock::blocking::MultiLockGuard,
    _: shylock::blocking::ReentrantLock,
    _: shylock::blocking::ReentrantGuard,
    _: shylock::blocking::RwLock,
    _: shylock::blocking::ReadGuard,
    _: shylock::blocking::WriteGuard,
) {
}

/// The names the root re-exports from [`shylock::blocking`] are the same
/// types.
fn _blocking_at_the_root(
    lock: shylock::Lock,
    guard: shylock::LockGuard,
    ticket: shylock::Ticket,
    semaphore: shylock::Semaphore,
    multi: shylock::MultiLock,
    reentrant: shylock::ReentrantLock,
    rwlock: shylock::RwLock,
) -> (
    shylock::blocking::Lock,
    shylock::blocking::LockGuard,
    shylock::blocking::Ticket,
    shylock::blocking::Semaphore,
    shylock::blocking::MultiLock,
    shylock::blocking::ReentrantLock,
    shylock::blocking::RwLock,
) {
    (lock, guard, ticket, semaphore, multi, reentrant, rwlock)
}

/// The old guard names, deprecated for one release, still name the same
/// types.
#[allow(deprecated)]
fn _deprecated(
    a: shylock::MultiLockGuard,
    b: shylock::BlockingMultiLockGuard,
    c: shylock::ReentrantGuard,
    d: shylock::BlockingReentrantGuard,
) -> (
    shylock::AsyncMultiLockGuard,
    shylock::blocking::MultiLockGuard,
    shylock::AsyncReentrantGuard,
    shylock::blocking::ReentrantGuard,
) {
    (a, b, c, d)
}

/// What backend authors implement and receive.
fn _backend(
    _: &dyn shylock::backend::Backend,
    _: shylock::backend::Grant,
    _: shylock::backend::LockInfo,
    _: shylock::backend::SemaphoreInfo,
    _: &dyn shylock::backend::RwLockBackend,
    _: shylock::backend::RwLockInfo,
    _: shylock::backend::Access,
    _: shylock::backend::QueueInfo,
    _: shylock::backend::SharedBackend,
    _: shylock::backend::Deadline,
    _: shylock::backend::ReleaseSignals,
) {
}

#[cfg(feature = "testkit")]
fn _testkit(
    _: shylock::backend::testkit::CountingBackend,
    _: shylock::backend::testkit::OnePermit,
    _: shylock::backend::testkit::FaultProxy,
    _: shylock::backend::testkit::HoldLog,
    _: shylock::backend::testkit::HoldEvent,
    _: shylock::backend::testkit::HoldKind,
    _: shylock::backend::testkit::HoldReport,
) {
}

#[cfg(feature = "sqlite")]
fn _sqlite(
    _: shylock::SqliteBackend,
    _: shylock::sqlite::SqliteBackend,
    _: shylock::sqlite::FencedSql,
) {
}

#[cfg(feature = "mongo")]
fn _mongo(
    _: shylock::MongoBackend,
    _: shylock::mongo::MongoBackend,
    _: shylock::mongo::MongoBackendBuilder,
    _: shylock::mongo::mongodb::Client,
    _: shylock::mongo::FencedUpdate,
) {
}

#[cfg(feature = "arango")]
fn _arango(
    _: shylock::ArangoBackend,
    _: shylock::arango::ArangoBackend,
    _: shylock::arango::ArangoBackendBuilder,
    _: shylock::arango::HttpClient,
    _: shylock::arango::FencedAql,
) {
}

#[cfg(feature = "tower")]
fn _tower(
    _: shylock::tower::LockLayer<fn(&http::Request<()>) -> String>,
    _: shylock::tower::LockService<(), fn(&http::Request<()>) -> String>,
    _: shylock::tower::RequestLock,
    _: shylock::tower::Policy,
) {
}

#[cfg(feature = "postgres")]
fn _postgres(
    _: shylock::PostgresBackend,
    _: shylock::postgres::PostgresBackend,
    _: shylock::postgres::PostgresBackendBuilder,
    _: shylock::postgres::StatementMode,
    _: shylock::postgres::FencedSql,
    _: shylock::postgres::sqlx::PgPool,
) {
}

/// The names a `pub use` list in `source` exports, by their last path
/// segment (`pub use a::{B, c::D};` gives `B` and `D`).
fn exported_names(source: &str, from: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = source;
    while let Some(start) = rest.find("pub use ") {
        let statement = &rest[start + "pub use ".len()..];
        let end = statement.find(';').expect("a pub use ends with ;");
        let path = statement[..end].split_whitespace().collect::<String>();
        rest = &statement[end..];
        if !path.starts_with(from) {
            continue;
        }
        let list = match (path.find('{'), path.rfind('}')) {
            (Some(open), Some(close)) => path[open + 1..close].to_owned(),
            _ => path,
        };
        for item in list.split(',').filter(|item| !item.is_empty()) {
            let name = item.rsplit("::").next().unwrap();
            if name != "*" {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// A name shylock-core adds at its root later fails here until the facade
/// re-exports it too.
#[test]
fn the_facade_re_exports_everything_at_the_root_of_shylock_core() {
    let root = env!("CARGO_MANIFEST_DIR");
    let core = std::fs::read_to_string(format!("{root}/shylock-core/src/lib.rs")).unwrap();
    let facade = std::fs::read_to_string(format!("{root}/src/lib.rs")).unwrap();
    let mut core_names = exported_names(&core, "");
    // For backend authors: re-exported as `shylock::backend::async_trait`.
    core_names.remove("async_trait");
    let facade_names = exported_names(&facade, "shylock_core::");
    let missing: Vec<_> = core_names.difference(&facade_names).collect();
    assert!(
        missing.is_empty(),
        "shylock-core exports {missing:?}, which src/lib.rs does not re-export"
    );
}
