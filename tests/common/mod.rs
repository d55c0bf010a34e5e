//! What the multi-process tests share: building a backend from a spec
//! string passed to a child process, fresh stores, and waiting for the
//! children.
#![allow(dead_code)] // each test binary uses part of it

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use shylock::SharedBackend;

/// Builds the backend named by `spec` (`sqlite:<path>`, `mongo:<uri>|<db>`
/// or `postgres:<url>|<table>`).
pub(crate) async fn backend_from_spec(spec: &str) -> SharedBackend {
    if let Some(path) = spec.strip_prefix("sqlite:") {
        return shylock::SqliteBackend::open(path).unwrap().into();
    }
    #[cfg(feature = "mongo")]
    if let Some(rest) = spec.strip_prefix("mongo:") {
        let (uri, db) = rest.split_once('|').unwrap();
        let client = shylock::mongo::mongodb::Client::with_uri_str(uri)
            .await
            .unwrap();
        return shylock::MongoBackend::builder(client.database(db))
            .build()
            .await
            .unwrap()
            .into();
    }
    #[cfg(feature = "postgres")]
    if let Some(rest) = spec.strip_prefix("postgres:") {
        let (url, table) = rest.split_once('|').unwrap();
        let pool = shylock::PostgresBackend::pool_for(url).await.unwrap();
        return shylock::PostgresBackend::builder(pool)
            .table(table)
            .build()
            .await
            .unwrap()
            .into();
    }
    panic!("unknown backend spec {spec:?}")
}

pub(crate) fn wait_all(children: Vec<Child>, limit: Duration) {
    let deadline = Instant::now() + limit;
    for mut child in children {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                if !status.success() {
                    let output = child.wait_with_output().unwrap();
                    panic!(
                        "a worker process failed: {status}\n{}{}",
                        String::from_utf8_lossy(&output.stdout),
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("a worker process did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub(crate) fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shylock-mp-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `sqlite:<path>` of a lock file in a fresh directory, and the directory.
pub(crate) fn sqlite_spec() -> (String, PathBuf) {
    let dir = temp_dir();
    (format!("sqlite:{}", dir.join("locks.db").display()), dir)
}

/// `postgres:<url>|<table>` for fresh tables; panics when no server is
/// configured (the tests that use it are `#[ignore]`d).
#[cfg(feature = "postgres")]
pub(crate) fn postgres_spec() -> String {
    use shylock_core::testkit::{required_env, unique_store_name};
    let url = required_env("POSTGRES_URL");
    format!("postgres:{url}|{}", unique_store_name("shylock_mp"))
}

/// `mongo:<uri>|<db>` for a fresh database; panics when no server is
/// configured (the tests that use it are `#[ignore]`d and run only when
/// one is).
#[cfg(feature = "mongo")]
pub(crate) fn mongo_spec() -> String {
    use shylock_core::testkit::{required_env, unique_store_name};
    let uri = required_env("MONGODB_URI");
    format!("mongo:{uri}|{}", unique_store_name("shylock_mp"))
}
