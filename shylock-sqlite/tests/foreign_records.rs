//! Rows another program wrote into the lock table, with the wrong types,
//! odd values or huge sizes: a clean takeover or a clear error, never a
//! panic and never a lock held by nobody.

use rusqlite::{params, Connection};
use shylock_core::testkit::{
    frees_live_foreign_record, takes_over_foreign_record, temp_db_path, unique_name,
};
use shylock_core::SharedBackend;
use shylock_sqlite::SqliteBackend;

fn far_future_ms() -> i64 {
    4_000_000_000_000
}

/// A backend on a fresh file plus a raw connection to the same file.
fn setup() -> (SharedBackend, Connection) {
    let path = temp_db_path();
    let backend = SqliteBackend::open(&path).unwrap();
    (backend.into(), Connection::open(&path).unwrap())
}

fn insert(
    conn: &Connection,
    name: &str,
    owner: rusqlite::types::Value,
    expires: rusqlite::types::Value,
    fence: rusqlite::types::Value,
) {
    conn.execute(
        "INSERT INTO shylock_locks (name, owner, expires_at_ms, fence) VALUES (?1, ?2, ?3, ?4)",
        params![name.as_bytes(), owner, expires, fence],
    )
    .unwrap();
}

#[tokio::test]
async fn rows_that_cannot_be_a_live_lease_are_taken_over() {
    use rusqlite::types::Value::{Blob, Integer, Real, Text};
    let (backend, conn) = setup();
    let cases = [
        // Expiry as text: SQLite would compare it above every integer.
        (Text("someone".into()), Text("tomorrow".into()), Integer(7)),
        (Text("someone".into()), Real(f64::MAX), Integer(7)),
        (Text("someone".into()), Blob(vec![0xff; 8]), Integer(7)),
        // An owner that is not text.
        (Blob(vec![1, 2, 3]), Integer(far_future_ms()), Integer(7)),
        // A fence that is not a number.
        (Text("someone".into()), Integer(0), Text("seven".into())),
        // A huge owner value (1 MiB), expired.
        (Text("o".repeat(1 << 20)), Integer(1), Integer(1 << 40)),
    ];
    for (i, (owner, expires, fence)) in cases.into_iter().enumerate() {
        let name = unique_name(&format!("foreign-{i}"));
        insert(&conn, &name, owner, expires, fence);
        takes_over_foreign_record(backend.clone(), &name).await;
    }
}

#[tokio::test]
async fn a_live_row_with_a_malformed_fence_can_be_force_released() {
    use rusqlite::types::Value::{Integer, Text};
    let (backend, conn) = setup();
    let name = unique_name("foreign-live");
    insert(
        &conn,
        &name,
        Text("someone".into()),
        Integer(far_future_ms()),
        Text("seven".into()),
    );
    frees_live_foreign_record(backend, &name).await;
}

#[tokio::test]
async fn a_name_stored_as_text_does_not_shadow_the_lock() {
    // Another program wrote the name as TEXT, not BLOB: it is another key.
    let (backend, conn) = setup();
    let name = unique_name("foreign-text-name");
    conn.execute(
        "INSERT INTO shylock_locks (name, owner, expires_at_ms, fence) VALUES (?1, 'x', ?2, 1)",
        params![name, far_future_ms()],
    )
    .unwrap();
    takes_over_foreign_record(backend, &name).await;
}
