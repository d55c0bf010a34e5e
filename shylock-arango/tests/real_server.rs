//! The conformance suite against a real ArangoDB.
//!
//! Runs when `ARANGO_URL` is set (e.g. `http://127.0.0.1:8529` from
//! `docker compose up -d arangodb`), with `ARANGO_USER` (default `root`),
//! `ARANGO_PASSWORD` (default empty) and `ARANGO_DB` (default `_system`).
//! Each run uses a fresh random collection. Without `ARANGO_URL` cargo
//! reports every case as ignored; scripts/test.sh runs them with
//! `--ignored` when `ARANGO_URL` is set.

use std::sync::OnceLock;

use shylock_arango::ArangoBackend;
use shylock_core::testkit::{required_env, unique_store_name};
use shylock_core::SharedBackend;

fn run_collection() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| unique_store_name("shylock_test"))
}

async fn real_arango() -> SharedBackend {
    let url = required_env("ARANGO_URL");
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
    backend.into()
}

shylock_core::conformance_tests!(
    real_arango(),
    ignore = "needs ARANGO_URL (a real ArangoDB; docker compose up -d arangodb)"
);
