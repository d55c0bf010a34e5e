//! A backend outlives the runtime that built it: one built inside one
//! `#[tokio::test]`-like runtime is used from a second runtime after the
//! first is gone, and from a thread with no runtime at all.
//!
//! Needs `MONGODB_URI` (scripts/test.sh runs these with `--ignored`).

use std::time::Duration;

use shylock_core::testkit::{required_env, unique_name, unique_store_name};
use shylock_core::{AsyncLock, Lock};
use shylock_mongo::mongodb::Client;
use shylock_mongo::MongoBackend;

/// A runtime like the one `#[tokio::test]` gives each test.
fn test_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
#[ignore = "needs MONGODB_URI"]
fn a_backend_from_connect_works_after_its_runtime_is_gone() {
    let uri = required_env("MONGODB_URI");
    let database = unique_store_name("shylock_runtimes");
    let name = unique_name("runtimes");

    let first = test_runtime();
    let (backend, first_token) = first.block_on(async {
        let backend = MongoBackend::connect(&uri, &database)
            .await
            .expect("connect");
        let guard = AsyncLock::with_backend(&name, backend.clone())
            .acquire()
            .await
            .unwrap();
        let token = guard.fencing_token();
        guard.release().await.unwrap();
        (backend, token)
    });
    drop(first);

    // Another test's runtime: the same backend answers at once.
    let second = test_runtime();
    let second_token = second.block_on(async {
        let lock = AsyncLock::with_backend(&name, backend.clone());
        let guard = tokio::time::timeout(Duration::from_secs(10), lock.try_acquire())
            .await
            .expect("the backend answers on a second runtime")
            .expect("no error on a second runtime")
            .expect("the lock is free");
        assert!(lock.is_locked().await.unwrap());
        let token = guard.fencing_token();
        guard.release().await.unwrap();
        token
    });
    drop(second);
    assert!(second_token > first_token);

    // And with no runtime at all: the blocking lock on the same backend.
    assert!(tokio::runtime::Handle::try_current().is_err());
    let guard = Lock::with_backend(&name, backend)
        .try_acquire()
        .unwrap()
        .expect("the lock is free");
    assert!(guard.fencing_token() > second_token);
    guard.release().unwrap();
}

#[test]
#[ignore = "needs MONGODB_URI"]
fn a_client_whose_runtime_is_gone_gives_an_error_that_says_so() {
    let uri = required_env("MONGODB_URI");
    let database = unique_store_name("shylock_runtimes");

    // The user's own client, created on a runtime that then ends.
    let first = test_runtime();
    let backend = first.block_on(async {
        let client = Client::with_uri_str(&uri).await.unwrap();
        MongoBackend::new(client.database(&database)).await.unwrap()
    });
    drop(first);

    let second = test_runtime();
    let error = second.block_on(async {
        AsyncLock::with_backend(unique_name("runtimes"), backend)
            .try_acquire()
            .await
            .expect_err("the client's runtime is gone")
    });
    let message = error.to_string();
    assert!(message.contains("runtime"), "{message}");
    assert!(message.contains("client_blocking"), "{message}");
}
