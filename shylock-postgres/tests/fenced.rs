//! Fenced writes to an application's own table, on a real PostgreSQL
//! server: a stale holder's write is refused after a newer holder wrote.
//!
//! Needs `POSTGRES_URL` (scripts/test.sh sets it and runs these with
//! `--ignored`).

use shylock_core::testkit::{server_url, unique_name, unique_store_name};
use shylock_core::AsyncLock;
use shylock_postgres::{sqlx, FencedSql, PostgresBackend};

#[tokio::test]
#[cfg_attr(
    not(feature = "testcontainers"),
    ignore = "needs PostgreSQL: set POSTGRES_URL"
)]
async fn a_stale_holders_write_is_refused_after_a_newer_holder_wrote() {
    let pool = PostgresBackend::pool_for(&server_url("POSTGRES_URL"))
        .await
        .expect("could not connect to POSTGRES_URL");
    let backend = PostgresBackend::builder(pool.clone())
        .table(unique_store_name("shylock_fenced"))
        .build()
        .await
        .expect("could not set up the lock tables");
    let accounts = unique_store_name("accounts");
    sqlx::raw_sql(&format!(
        "CREATE TABLE {accounts} (id int8 PRIMARY KEY, balance int8 NOT NULL, fence int8);
         INSERT INTO {accounts} (id, balance) VALUES (42, 100);"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let fence = FencedSql::column("fence", 1);
    let debit = format!(
        "UPDATE {accounts} SET balance = balance - 10, {} WHERE id = 42 AND {}",
        fence.assignment(),
        fence.predicate()
    );
    let write = |token: u64| {
        let (pool, debit) = (pool.clone(), debit.clone());
        async move {
            sqlx::query(&debit)
                .bind(i64::try_from(token).unwrap())
                .execute(&pool)
                .await
                .unwrap()
                .rows_affected()
        }
    };

    let lock = AsyncLock::with_backend(unique_name("accounts/42"), backend);
    let stalled = lock.acquire().await.unwrap();
    // A row never fenced takes the first token.
    assert_eq!(write(stalled.fencing_token()).await, 1);
    // The same holder may write again with its token.
    assert_eq!(write(stalled.fencing_token()).await, 1);
    lock.force_release().await.unwrap(); // as if `stalled` had paused past its ttl
    let newer = lock.acquire().await.unwrap();
    assert!(newer.fencing_token() > stalled.fencing_token());
    assert_eq!(write(newer.fencing_token()).await, 1);
    // The stalled holder wakes up and tries its write: refused, nothing changed.
    assert_eq!(write(stalled.fencing_token()).await, 0);
    let (balance, stored): (i64, i64) = sqlx::query_as(&format!(
        "SELECT balance, fence FROM {accounts} WHERE id = 42"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(balance, 70);
    assert_eq!(stored, i64::try_from(newer.fencing_token()).unwrap());
    newer.release().await.unwrap();
    drop(stalled);
    sqlx::raw_sql(&format!("DROP TABLE {accounts}"))
        .execute(&pool)
        .await
        .unwrap();
}
