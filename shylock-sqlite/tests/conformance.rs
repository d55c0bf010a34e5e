//! The conformance suite against a SQLite file and an in-memory database.

use shylock_core::SharedBackend;
use shylock_sqlite::SqliteBackend;

use shylock_core::testkit::temp_db_path as temp_db;

async fn file_backend() -> SharedBackend {
    SqliteBackend::open(temp_db()).unwrap().into()
}

mod file {
    use super::*;
    shylock_core::conformance_tests!(file_backend());
}

mod in_memory {
    use super::*;
    async fn memory_backend() -> SharedBackend {
        SqliteBackend::open_in_memory().unwrap().into()
    }
    shylock_core::conformance_tests!(memory_backend());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_on_one_file_exclude_each_other() {
    // Two connections behave like two processes.
    let path = temp_db();
    let a = SqliteBackend::open(&path).unwrap();
    let b = SqliteBackend::open(&path).unwrap();
    let name = shylock_core::testkit::unique_name("two-handles");
    let ga = shylock_core::AsyncLock::with_backend(name.clone(), a)
        .try_acquire()
        .await
        .unwrap();
    assert!(ga.is_some());
    let gb = shylock_core::AsyncLock::with_backend(name, b.clone())
        .try_acquire()
        .await
        .unwrap();
    assert!(gb.is_none(), "a second connection took a held lock");
    drop(ga);
}

/// A release made through another connection (as by another process)
/// wakes a waiter at once, not at its next backoff step: this process's
/// file watcher sees the commit (`PRAGMA data_version`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_release_through_another_connection_wakes_a_waiter() {
    use std::time::Duration;
    let path = temp_db();
    let a = SqliteBackend::open(&path).unwrap();
    let b = SqliteBackend::open(&path).unwrap();
    let name = shylock_core::testkit::unique_name("cross-connection");
    let holder = shylock_core::AsyncLock::with_backend(name.clone(), a)
        .acquire()
        .await
        .unwrap();
    // A waiter that would not poll again for a minute.
    let waiter = shylock_core::AsyncLock::with_backend(name, b).with_options(
        shylock_core::LockOptions::default()
            .backoff(Duration::from_secs(60), Duration::from_secs(60)),
    );
    let waiting = tokio::spawn(async move { waiter.acquire().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    holder.release().await.unwrap();
    let guard = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the release through another connection did not wake the waiter")
        .unwrap();
    guard.release().await.unwrap();
}

/// Two connections on one file, as two processes: the file watcher reads
/// the line at each commit and wakes only the waiter first in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_release_wakes_only_the_fair_waiter_first_in_line() {
    let path = temp_db();
    let side = || SharedBackend::from(SqliteBackend::open(&path).unwrap());
    shylock_core::testkit::a_release_wakes_only_the_first_in_line(side(), side()).await;
}

/// The same two connections: a fair waiter behind another, with the file
/// watched, makes its first attempt at its turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fair_waiter_behind_others_tries_only_at_its_turn() {
    let path = temp_db();
    let side = || SharedBackend::from(SqliteBackend::open(&path).unwrap());
    shylock_core::testkit::a_waiter_behind_others_tries_only_at_its_turn(side(), side()).await;
}

#[test]
fn opening_a_missing_directory_is_a_clear_error() {
    let err = SqliteBackend::open("/nonexistent-dir/for/shylock/locks.db").unwrap_err();
    assert!(matches!(err, shylock_core::Error::Backend { .. }));
    assert!(err.to_string().contains("directory"), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}

mod sharded {
    use super::*;
    async fn sharded_backend() -> SharedBackend {
        shylock_core::ShardedBackend::new((0..3).map(|_| SqliteBackend::open(temp_db()).unwrap()))
            .unwrap()
            .into()
    }
    shylock_core::conformance_tests!(sharded_backend());
}

/// The first in line leaving a free lock wakes the next one, waiting
/// through another connection (as in another process).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_first_waiter_leaving_wakes_the_next() {
    let path = temp_db();
    shylock_core::testkit::a_first_waiter_leaving_wakes_the_next(
        SqliteBackend::open(&path).unwrap().into(),
        SqliteBackend::open(&path).unwrap().into(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_share_a_read_write_lock() {
    use shylock_core::AsyncRwLock;
    use std::time::Duration;
    // Two connections behave like two processes.
    let path = temp_db();
    let a = SqliteBackend::open(&path).unwrap();
    let b = SqliteBackend::open(&path).unwrap();
    let ra = AsyncRwLock::with_backend("rw", a);
    let rb = AsyncRwLock::with_backend("rw", b);
    let r1 = ra.read().await.unwrap();
    let r2 = rb.read().await.unwrap();
    assert!(r2.fencing_token() > r1.fencing_token());
    assert!(rb.try_write().await.unwrap().is_none());
    let writer = tokio::spawn(async move { rb.write_timeout(Duration::from_secs(20)).await });
    let waiting = shylock_core::testkit::wait_for(Duration::from_secs(10), || async {
        ra.inspect().await.unwrap().writer_waiting.then_some(())
    })
    .await;
    assert!(
        waiting.is_some(),
        "the other handle's writer recorded no intent"
    );
    assert!(
        ra.try_read().await.unwrap().is_none(),
        "writer preference across handles"
    );
    r1.release().await.unwrap();
    r2.release().await.unwrap();
    let w = writer.await.unwrap().unwrap().expect("the writer got in");
    assert!(ra.try_read().await.unwrap().is_none());
    w.release().await.unwrap();
    ra.try_read()
        .await
        .unwrap()
        .expect("free again")
        .release()
        .await
        .unwrap();
}
