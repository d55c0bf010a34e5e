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
use shylock_core::testkit::{server_url, unique_store_name};
use shylock_core::SharedBackend;

fn run_collection() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| unique_store_name("shylock_test"))
}

async fn real_arango() -> SharedBackend {
    let url = server_url("ARANGO_URL");
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

#[cfg(not(feature = "testcontainers"))]
shylock_core::conformance_tests!(
    real_arango(),
    ignore = "needs ARANGO_URL (a real ArangoDB; docker compose up -d arangodb)"
);
#[cfg(feature = "testcontainers")]
shylock_core::conformance_tests!(real_arango(),);

/// The fenced write of `FencedAql`'s docs on a collection of the
/// application's own: a stale holder's write is refused after a newer
/// holder wrote.
#[tokio::test]
#[cfg_attr(
    not(feature = "testcontainers"),
    ignore = "needs ARANGO_URL (a real ArangoDB; docker compose up -d arangodb)"
)]
async fn fenced_write_of_a_stale_holder_is_refused() {
    use serde_json::{json, Value};
    use shylock_arango::FencedAql;
    use shylock_core::AsyncLock;

    let url = server_url("ARANGO_URL");
    let user = std::env::var("ARANGO_USER").unwrap_or_else(|_| "root".into());
    let password = std::env::var("ARANGO_PASSWORD").unwrap_or_default();
    let db = std::env::var("ARANGO_DB").unwrap_or_else(|_| "_system".into());
    let accounts = unique_store_name("shylock_accounts");
    let http = reqwest::Client::new();
    let call = |path: String, body: Value| {
        let request = http
            .post(format!("{url}/_db/{db}{path}"))
            .basic_auth(&user, Some(&password))
            .body(body.to_string());
        async move {
            let body = request.send().await.unwrap().bytes().await.unwrap();
            serde_json::from_slice::<Value>(&body).unwrap()
        }
    };
    call("/_api/collection".into(), json!({ "name": accounts })).await;
    call(
        format!("/_api/document/{accounts}"),
        json!({ "_key": "42", "balance": 0 }),
    )
    .await;
    let fence = FencedAql::new("a", "fence");
    let query = format!(
        "FOR a IN @@coll FILTER a._key == @key {} UPDATE a WITH {{ balance: @balance, {} }} IN @@coll RETURN true",
        fence.filter(),
        fence.assignment()
    );
    let write = |balance: i64, token: u64| {
        let answer = call(
            "/_api/cursor".into(),
            json!({
                "query": query,
                "bindVars": { "@coll": accounts, "key": "42", "balance": balance, "fence": token },
            }),
        );
        async move {
            let answer = answer.await;
            assert_eq!(answer["error"], false, "{answer}");
            answer["result"].as_array().unwrap().len() == 1
        }
    };

    let lock = AsyncLock::with_backend("accounts/42", real_arango().await);
    let stale = lock.acquire().await.unwrap();
    assert!(write(10, stale.fencing_token()).await);
    assert!(lock.force_release().await.unwrap());
    let newer = lock.acquire().await.unwrap();
    assert!(write(20, newer.fencing_token()).await);
    assert!(write(25, newer.fencing_token()).await, "same holder again");
    assert!(
        !write(99, stale.fencing_token()).await,
        "stale write refused"
    );
    newer.release().await.unwrap();
    drop(stale);
}
