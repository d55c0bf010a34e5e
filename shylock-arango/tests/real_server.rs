//! The conformance suite against a real ArangoDB.
//!
//! Runs when `ARANGO_URL` is set (e.g. `http://127.0.0.1:8529` from
//! `docker compose up -d arangodb`), with `ARANGO_USER` (default `root`),
//! `ARANGO_PASSWORD` (default empty) and `ARANGO_DB` (default `_system`).
//! Each run uses a fresh random collection. Without `ARANGO_URL` every case
//! prints why it skipped.

use std::sync::OnceLock;

use shylock_arango::ArangoBackend;
use shylock_core::SharedBackend;

fn run_collection() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        format!(
            "shylock_test_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        )
    })
}

async fn real_arango() -> Option<SharedBackend> {
    let Ok(url) = std::env::var("ARANGO_URL") else {
        eprintln!(
            "SKIPPED: real ArangoDB suite not run: ARANGO_URL is not set (start one with \
             `docker compose up -d arangodb`, then ARANGO_URL=http://127.0.0.1:8529 \
             ARANGO_PASSWORD=shylock scripts/test.sh)"
        );
        return None;
    };
    let user = std::env::var("ARANGO_USER").unwrap_or_else(|_| "root".into());
    let password = std::env::var("ARANGO_PASSWORD").unwrap_or_default();
    let db = std::env::var("ARANGO_DB").unwrap_or_else(|_| "_system".into());
    let backend = ArangoBackend::builder(url)
        .basic_auth(user, password)
        .database(db)
        .collection(run_collection())
        .build()
        .await
        .expect("could not set up the lock collection on ARANGO_URL");
    Some(backend.into())
}

shylock_core::conformance_tests!(real_arango());
