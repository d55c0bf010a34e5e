//! A program without async builds the MongoDB backend with the blocking
//! constructors and uses blocking locks; no test here creates a runtime.
//!
//! Needs `MONGODB_URI` (scripts/test.sh runs these with `--ignored`).

use shylock_core::testkit::{required_env, unique_name, unique_store_name};
use shylock_core::Lock;
use shylock_mongo::MongoBackend;

#[test]
#[ignore = "needs MONGODB_URI"]
fn connect_blocking_gives_a_backend_that_outlives_its_thread() {
    let uri = required_env("MONGODB_URI");
    let database = unique_store_name("shylock_blocking");
    // Built on a thread that ends at once: the client lives on shylock's
    // background runtime, not in the builder's scope.
    let backend = std::thread::spawn(move || MongoBackend::connect_blocking(&uri, &database))
        .join()
        .unwrap()
        .expect("connect_blocking");
    assert!(tokio::runtime::Handle::try_current().is_err());
    let lock = Lock::with_backend(unique_name("blocking"), backend.clone());
    let guard = lock.acquire().unwrap();
    assert!(lock.try_acquire().unwrap().is_none());
    let token = guard.fencing_token();
    guard.release().unwrap();
    let again = lock.try_acquire().unwrap().expect("free after release");
    assert!(again.fencing_token() > token);
    again.release().unwrap();
}

#[test]
#[ignore = "needs MONGODB_URI"]
fn builder_settings_work_without_async() {
    let uri = required_env("MONGODB_URI");
    let client = MongoBackend::client_blocking(&uri).expect("client_blocking");
    let backend = MongoBackend::builder(client.database(&unique_store_name("shylock_blocking")))
        .collection("locks_blocking")
        .build_blocking()
        .expect("build_blocking");
    assert!(backend.namespace().ends_with(".locks_blocking"));
    let lock = Lock::with_backend(unique_name("blocking-builder"), backend);
    lock.acquire().unwrap().release().unwrap();
}

#[test]
fn an_invalid_uri_is_an_error_not_a_panic() {
    let error = MongoBackend::connect_blocking("postgres://nope", "app").unwrap_err();
    assert!(error.to_string().contains("mongodb://"), "{error}");
}
