//! Fenced writes to an application's own table in the lock file: a stale
//! holder's write is refused after a newer holder wrote.

use rusqlite::{named_params, Connection};
use shylock_core::AsyncLock;
use shylock_sqlite::{FencedSql, SqliteBackend};

fn pay(conn: &Connection, balance: i64, token: u64) -> bool {
    let fence = FencedSql::column("fence");
    let sql = format!(
        "UPDATE accounts SET balance = :balance, {} WHERE id = 42 AND {}",
        fence.assignment(),
        fence.predicate()
    );
    let changed = conn
        .execute(
            &sql,
            named_params! { ":balance": balance, ":fence": i64::try_from(token).unwrap() },
        )
        .unwrap();
    changed == 1
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_holder_write_is_refused_after_a_newer_holder_wrote() {
    let path = std::env::temp_dir().join(format!("shylock-fenced-{}.db", std::process::id()));
    let backend = SqliteBackend::open(&path).unwrap();
    // The application's data lives in the same file as the locks.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER, fence INTEGER);
         INSERT INTO accounts (id, balance) VALUES (42, 0);",
    )
    .unwrap();
    let lock = AsyncLock::with_backend("accounts/42", backend);

    let stale = lock.acquire().await.unwrap();
    assert!(
        pay(&conn, 10, stale.fencing_token()),
        "no fence yet: written"
    );

    assert!(lock.force_release().await.unwrap());
    let newer = lock.acquire().await.unwrap();
    assert!(newer.fencing_token() > stale.fencing_token());
    assert!(pay(&conn, 20, newer.fencing_token()));
    assert!(pay(&conn, 25, newer.fencing_token()), "same holder again");

    assert!(
        !pay(&conn, 99, stale.fencing_token()),
        "stale write refused"
    );
    let (balance, fence): (i64, i64) = conn
        .query_row(
            "SELECT balance, fence FROM accounts WHERE id = 42",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(balance, 25);
    assert_eq!(fence, newer.fencing_token() as i64);
    newer.release().await.unwrap();
    drop(stale);
    drop(conn);
    let _ = std::fs::remove_file(&path);
}
