//! Fenced writes to an application's own documents in the lock's
//! database: a stale holder's write is refused after a newer holder wrote.
//!
//! Needs `MONGODB_URI`; scripts/test.sh runs it with `--ignored`.

use std::time::Duration;

use shylock_core::testkit::{server_url, unique_store_name};
use shylock_core::AsyncLock;
use shylock_mongo::mongodb::bson::{doc, Document};
use shylock_mongo::mongodb::{options::ClientOptions, Client};
use shylock_mongo::{update_one_fenced, MongoBackend};

#[tokio::test]
#[cfg_attr(not(feature = "testcontainers"), ignore = "needs MONGODB_URI")]
async fn stale_holder_write_is_refused_after_a_newer_holder_wrote() {
    let mut options = ClientOptions::parse(server_url("MONGODB_URI"))
        .await
        .expect("invalid MONGODB_URI");
    options.server_selection_timeout = Some(Duration::from_secs(10));
    let db = Client::with_options(options)
        .unwrap()
        .database(&unique_store_name("shylock_fenced"));
    let backend = MongoBackend::builder(db.clone()).build().await.unwrap();
    let accounts = db.collection::<Document>("accounts");
    accounts
        .insert_one(doc! { "_id": 42, "balance": 0 })
        .await
        .unwrap();
    let lock = AsyncLock::with_backend("accounts/42", backend);

    let stale = lock.acquire().await.unwrap();
    let first = update_one_fenced(
        &accounts,
        doc! { "_id": 42 },
        doc! { "$set": { "balance": 10 } },
        stale.fencing_token(),
    )
    .await
    .unwrap();
    assert!(
        first,
        "the first holder writes a document with no fence yet"
    );

    // The first holder stalls; an operator (or its expiry) frees the lock
    // and a newer holder takes it and writes.
    assert!(lock.force_release().await.unwrap());
    let newer = lock.acquire().await.unwrap();
    assert!(newer.fencing_token() > stale.fencing_token());
    for balance in [20, 25] {
        let written = update_one_fenced(
            &accounts,
            doc! { "_id": 42 },
            doc! { "$set": { "balance": balance } },
            newer.fencing_token(),
        )
        .await
        .unwrap();
        assert!(written, "the newer holder writes, more than once");
    }

    let late = update_one_fenced(
        &accounts,
        doc! { "_id": 42 },
        doc! { "$set": { "balance": 99 } },
        stale.fencing_token(),
    )
    .await
    .unwrap();
    assert!(!late, "the stale holder's write is refused");
    let stored = accounts
        .find_one(doc! { "_id": 42 })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.get_i32("balance").unwrap(), 25);
    assert_eq!(
        stored.get_i64("fence").unwrap(),
        newer.fencing_token() as i64
    );
    newer.release().await.unwrap();
    assert!(
        stale.release().await.is_err(),
        "the stale guard knows it lost"
    );
    db.drop().await.unwrap();
}
