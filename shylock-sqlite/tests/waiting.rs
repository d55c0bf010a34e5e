//! Waiting on SQLite as other processes use the file: what a waiter that
//! cannot win costs them, and wake-ups that survive a busy file.

use std::time::Duration;

use rusqlite::Connection;
use shylock_core::backend::{Deadline, SemaphoreBackend};
use shylock_core::testkit::{temp_db_path, unique_name};
use shylock_sqlite::SqliteBackend;

/// A claim on a full semaphore is answered by a read: it does not wait for
/// the write lock that another process's transaction holds, so it says
/// "full" instead of timing out (and costs the holders nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_semaphore_is_answered_without_the_write_lock() {
    let path = temp_db_path();
    let backend = SqliteBackend::open(&path).unwrap();
    let name = unique_name("full-read");
    let ttl = Duration::from_secs(30);
    let long = || Deadline::after(Duration::from_secs(5));
    backend
        .claim_permit(&name, "a", 1, ttl, long())
        .await
        .unwrap()
        .expect("a free permit");

    // Another process holds the file's write lock.
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();

    let short = Deadline::after(Duration::from_millis(300));
    let full = backend.claim_permit(&name, "b", 1, ttl, short).await;
    assert!(
        matches!(full, Ok(None)),
        "a full semaphore must read as full, got {full:?}"
    );
    let short = Deadline::after(Duration::from_millis(300));
    let mismatch = backend.claim_permit(&name, "b", 2, ttl, short).await;
    assert!(
        matches!(&mismatch, Err(shylock_core::Error::InvalidOptions { .. })),
        "another permit count is refused from the read too, got {mismatch:?}"
    );
    other.execute_batch("COMMIT").unwrap();
    assert!(backend.release_permit(&name, "a", long()).await.unwrap());
    assert!(backend
        .claim_permit(&name, "b", 1, ttl, long())
        .await
        .unwrap()
        .is_some());
}

/// A line of `MAX_WAITERS` live tickets (written directly, as that many
/// waiters would) refuses new owners with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_line_refuses_new_owners() {
    let path = temp_db_path();
    let backend = SqliteBackend::open(&path).unwrap();
    let name = unique_name("full-line");
    let mut conn = Connection::open(&path).unwrap();
    let far = i64::MAX / 2;
    let tx = conn.transaction().unwrap();
    for i in 0..shylock_core::MAX_WAITERS {
        tx.execute(
            "INSERT INTO shylock_tickets (name, owner, seq, expires_at_ms) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![
                name.as_bytes(),
                shylock_core::testkit::seeded_owner(i),
                i64::try_from(i).unwrap() + 1,
                far
            ],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    shylock_core::testkit::a_full_line_refuses_new_owners(backend.into(), &name).await;
}
