//! The conformance suite against a real PostgreSQL server.
//!
//! Needs `POSTGRES_URL` (scripts/test.sh starts a throwaway cluster, sets
//! it and runs these with `--ignored`). Without it cargo reports them as
//! ignored; run with `--ignored` and no server, they fail and say what is
//! missing. Every run uses tables of its own.

use std::sync::OnceLock;
use std::time::Duration;

use shylock_core::backend::{Backend, RwLockBackend};
use shylock_core::testkit::{op_deadline, server_url, unique_name, unique_store_name, wait_for};
use shylock_core::{AsyncRwLock, LockOptions, SharedBackend};
use shylock_postgres::{sqlx, PostgresBackend, StatementMode};

/// One table name per test run.
fn run_table() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| unique_store_name("shylock_test"))
}

async fn backend_with(mode: StatementMode) -> PostgresBackend {
    let pool = PostgresBackend::pool_for(&server_url("POSTGRES_URL"))
        .await
        .expect("could not connect to POSTGRES_URL");
    PostgresBackend::builder(pool)
        .table(run_table())
        .statement_mode(mode)
        .build()
        .await
        .expect("could not set up the lock tables")
}

async fn postgres() -> SharedBackend {
    backend_with(StatementMode::Prepared).await.into()
}

#[cfg(not(feature = "testcontainers"))]
shylock_core::conformance_tests!(postgres(), ignore = "needs PostgreSQL: set POSTGRES_URL");
#[cfg(feature = "testcontainers")]
shylock_core::conformance_tests!(postgres());

mod unprepared {
    use super::*;
    async fn unprepared() -> SharedBackend {
        backend_with(StatementMode::Unprepared).await.into()
    }
    #[cfg(not(feature = "testcontainers"))]
    shylock_core::conformance_tests!(
        unprepared(),
        ignore = "needs PostgreSQL: set POSTGRES_URL",
        groups = [locks, queues, rwlocks]
    );
    #[cfg(feature = "testcontainers")]
    shylock_core::conformance_tests!(unprepared(), groups = [locks, queues, rwlocks]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "testcontainers"),
    ignore = "needs PostgreSQL: set POSTGRES_URL"
)]
async fn many_backends_starting_at_once_set_up_cleanly() {
    let url = server_url("POSTGRES_URL");
    let table = unique_store_name("setup_race");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (url, table) = (url.clone(), table.clone());
        tasks.push(tokio::spawn(async move {
            let pool = PostgresBackend::pool_for(&url).await?;
            PostgresBackend::builder(pool).table(table).build().await
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("concurrent setup failed");
    }
}

/// Fences keep increasing after the row is gone (released, swept or
/// force-released): they come from a sequence, not from the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "testcontainers"),
    ignore = "needs PostgreSQL: set POSTGRES_URL"
)]
async fn fences_increase_across_row_removal_and_long_names() {
    let backend = backend_with(StatementMode::Prepared).await;
    // The `backend` label of metrics and spans.
    assert_eq!(backend.kind(), "postgres");
    let name = unique_name("fence-removal");
    let ttl = Duration::from_secs(30);
    let first = backend
        .claim(&name, "a", ttl, op_deadline())
        .await
        .unwrap()
        .unwrap();
    assert!(backend.release(&name, "a", op_deadline()).await.unwrap());
    let second = backend
        .claim(&name, "b", ttl, op_deadline())
        .await
        .unwrap()
        .unwrap();
    assert!(second.fencing_token > first.fencing_token);
    assert!(backend.force_release(&name, op_deadline()).await.unwrap());
    let third = backend
        .claim(&name, "c", ttl, op_deadline())
        .await
        .unwrap()
        .unwrap();
    assert!(third.fencing_token > second.fencing_token);
    // A long name is keyed by its digest and listed by its full name.
    let long = format!("{}/{}", unique_name("long"), "x".repeat(3000));
    assert!(backend
        .claim(&long, "d", ttl, op_deadline())
        .await
        .unwrap()
        .is_some());
    assert!(backend
        .claim(&long, "e", ttl, op_deadline())
        .await
        .unwrap()
        .is_none());
    let listed = backend
        .list(&long[..40], None, 10, op_deadline())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, long);
    assert!(backend.release(&long, "d", op_deadline()).await.unwrap());
}

/// Rows that ended long ago (crashed holders, releases) are swept by later
/// releases; the grace period is simulated by moving their expiry back.
/// The `xmax` of `name`'s row in the table `<table><suffix>`: set by a row
/// lock as by an update, so it shows whether a statement locked the row.
async fn row_xmax(backend: &PostgresBackend, suffix: &str, name: &str) -> String {
    sqlx::query_scalar(&format!(
        "SELECT xmax::text FROM {}{suffix} WHERE key = $1",
        backend.location()
    ))
    .bind(shylock_postgres::key_of(name))
    .fetch_one(backend.pool())
    .await
    .unwrap()
}

/// A claim that loses takes no row lock: the row's `xmax` (set by a row
/// lock as by an update) stays as the holder's claim left it, so the
/// waiters a release wakes in many processes write nothing, flush nothing
/// and do not queue behind each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "testcontainers"),
    ignore = "needs PostgreSQL: set POSTGRES_URL"
)]
async fn a_losing_claim_locks_and_writes_nothing() {
    let backend = backend_with(StatementMode::Prepared).await;
    let name = unique_name("losing-claim");
    let ttl = Duration::from_secs(30);
    let won = backend.claim(&name, "holder", ttl, op_deadline()).await;
    assert!(won.unwrap().is_some());
    let before = row_xmax(&backend, "", &name).await;
    for i in 0..3 {
        let loser = format!("loser-{i}");
        let lost = backend.claim(&name, &loser, ttl, op_deadline()).await;
        assert!(lost.unwrap().is_none(), "a held lock was claimed");
    }
    let after = row_xmax(&backend, "", &name).await;
    assert_eq!(after, before, "a losing claim locked the row");
    let again = backend.claim(&name, "holder", ttl, op_deadline()).await;
    assert!(
        again.unwrap().is_some(),
        "the holder's claim sent again lost"
    );
    assert!(backend
        .release(&name, "holder", op_deadline())
        .await
        .unwrap());
    let next = backend.claim(&name, "next", ttl, op_deadline()).await;
    assert!(
        next.unwrap().is_some(),
        "a released lock could not be claimed"
    );
}

/// The same for a permit: a claim on a full semaphore locks and writes
/// nothing, and a permit freed is granted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "testcontainers"),
    ignore = "needs PostgreSQL: set POSTGRES_URL"
)]
async fn a_claim_on_a_full_semaphore_locks_and_writes_nothing() {
    use shylock_core::backend::SemaphoreBackend;
    let backend = backend_with(StatementMode::Prepared).await;
    let name = unique_name("full-semaphore");
    let ttl = Duration::from_secs(30);
    for holder in ["a", "b"] {
        let won = backend
            .claim_permit(&name, holder, 2, ttl, op_deadline())
            .await;
        assert!(won.unwrap().is_some(), "a free permit was refused");
    }
    let before = row_xmax(&backend, "_semaphores", &name).await;
    for i in 0..3 {
        let loser = format!("loser-{i}");
        let lost = backend
            .claim_permit(&name, &loser, 2, ttl, op_deadline())
            .await;
        assert!(lost.unwrap().is_none(), "a third permit of two was granted");
    }
    let after = row_xmax(&backend, "_semaphores", &name).await;
    assert_eq!(after, before, "a refused permit claim locked the row");
    let again = backend
        .claim_permit(&name, "a", 2, ttl, op_deadline())
        .await;
    assert!(
        again.unwrap().is_some(),
        "a holder's claim sent again was refused"
    );
    assert!(backend
        .release_permit(&name, "a", op_deadline())
        .await
        .unwrap());
    let next = backend
        .claim_permit(&name, "c", 2, ttl, op_deadline())
        .await;
    assert!(next.unwrap().is_some(), "a freed permit was not granted");
}

/// The same for a read/write lock: a reader refused while a writer holds
/// it locks and writes nothing, and enters once the writer left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "testcontainers"),
    ignore = "needs PostgreSQL: set POSTGRES_URL"
)]
async fn a_refused_reader_locks_and_writes_nothing() {
    let backend = backend_with(StatementMode::Prepared).await;
    let name = unique_name("refused-reader");
    let ttl = Duration::from_secs(30);
    let won = backend.claim_write(&name, "writer", ttl, true, op_deadline());
    assert!(
        won.await.unwrap().is_some(),
        "a free write lease was refused"
    );
    let before = row_xmax(&backend, "_rwlocks", &name).await;
    for (i, writers_first) in [(0, true), (1, false), (2, true)] {
        let reader = format!("reader-{i}");
        let refused = backend.claim_read(&name, &reader, ttl, writers_first, op_deadline());
        assert!(
            refused.await.unwrap().is_none(),
            "a reader entered beside the writer"
        );
    }
    let after = row_xmax(&backend, "_rwlocks", &name).await;
    assert_eq!(after, before, "a refused reader locked the row");
    assert!(backend
        .release_rw(&name, "writer", op_deadline())
        .await
        .unwrap());
    let entered = backend.claim_read(&name, "reader-3", ttl, true, op_deadline());
    assert!(
        entered.await.unwrap().is_some(),
        "a reader was refused a free lock"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "testcontainers"),
    ignore = "needs PostgreSQL: set POSTGRES_URL"
)]
async fn releases_sweep_expired_rows() {
    let backend = PostgresBackend::builder(
        PostgresBackend::pool_for(&server_url("POSTGRES_URL"))
            .await
            .unwrap(),
    )
    .table(unique_store_name("sweep"))
    .build()
    .await
    .unwrap();
    let ttl = Duration::from_millis(50);
    for i in 0..6 {
        let name = format!("crashed/{i}");
        backend
            .claim(&name, "dead", ttl, op_deadline())
            .await
            .unwrap()
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    sqlx::query(&format!(
        "UPDATE {} SET expires_at = expires_at - interval '1 hour'",
        backend.location()
    ))
    .execute(backend.pool())
    .await
    .unwrap();
    for _ in 0..2 {
        backend
            .claim("live", "me", Duration::from_secs(30), op_deadline())
            .await
            .unwrap()
            .unwrap();
        assert!(backend.release("live", "me", op_deadline()).await.unwrap());
    }
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", backend.location()))
        .fetch_one(backend.pool())
        .await
        .unwrap();
    // Only the row of the lock just released (it ended now) is left.
    assert_eq!(rows, 1, "rows that ended long ago were left behind");

    // Read/write locks: rows of crashed readers and writers, and of a
    // writer that waited, are swept by later read/write releases.
    for i in 0..6 {
        let name = format!("crashed/{i}");
        let grant = if i % 2 == 0 {
            backend
                .claim_read(&name, "dead", ttl, true, op_deadline())
                .await
        } else {
            backend
                .claim_write(&name, "dead", ttl, true, op_deadline())
                .await
        };
        assert!(grant.unwrap().is_some());
        if i == 1 {
            assert!(backend
                .claim_write(&name, "waiting", ttl, true, op_deadline())
                .await
                .unwrap()
                .is_none());
        }
    }
    let rw_table = format!("{}_rwlocks", backend.location());
    sqlx::query(&format!(
        "UPDATE {rw_table} SET expires_at = expires_at - interval '1 hour'"
    ))
    .execute(backend.pool())
    .await
    .unwrap();
    for _ in 0..2 {
        let ttl = Duration::from_secs(30);
        assert!(backend
            .claim_write("live", "me", ttl, true, op_deadline())
            .await
            .unwrap()
            .is_some());
        assert!(backend
            .release_rw("live", "me", op_deadline())
            .await
            .unwrap());
    }
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {rw_table}"))
        .fetch_one(backend.pool())
        .await
        .unwrap();
    assert_eq!(
        rows, 1,
        "read/write rows that ended long ago were left behind"
    );
}

/// A release through another backend handle (as by another process)
/// reaches this process's listener and wakes a waiter at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "testcontainers"),
    ignore = "needs PostgreSQL: set POSTGRES_URL"
)]
async fn a_release_by_another_connection_wakes_a_waiter() {
    let a = backend_with(StatementMode::Prepared).await;
    let b = process_side().await;
    let name = unique_name("cross-connection");
    let holder = shylock_core::AsyncLock::with_backend(name.clone(), a)
        .acquire()
        .await
        .unwrap();
    let waiter = shylock_core::AsyncLock::with_backend(name, b).with_options(
        shylock_core::LockOptions::default()
            .backoff(Duration::from_secs(60), Duration::from_secs(60)),
    );
    let waiting = tokio::spawn(async move { waiter.acquire().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.release().await.unwrap();
    let guard = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the release did not wake the waiter")
        .unwrap();
    guard.release().await.unwrap();
}

#[test]
fn bounds() {
    fn send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    send_sync::<PostgresBackend>();
    send_sync::<shylock_postgres::PostgresBackendBuilder>();
}

#[test]
fn bad_names_are_clear_errors() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        for builder in [
            PostgresBackend::builder(pool.clone()).table(""),
            PostgresBackend::builder(pool.clone()).table("x".repeat(60)),
            PostgresBackend::builder(pool.clone()).channel("bad channel"),
            PostgresBackend::builder(pool.clone()).schema(""),
        ] {
            let err = builder.build().await.unwrap_err();
            assert!(
                matches!(err, shylock_core::Error::InvalidOptions { .. }),
                "{err}"
            );
        }
    });
}

/// A handle with a listener of its own, as another process has.
async fn process_side() -> SharedBackend {
    let pool = PostgresBackend::pool_for(&server_url("POSTGRES_URL"))
        .await
        .unwrap();
    let backend = PostgresBackend::builder(pool)
        .table(run_table())
        .share_release_listener(false)
        .build()
        .await
        .unwrap();
    assert!(
        backend
            .release_listener_ready(Duration::from_secs(10))
            .await
    );
    backend.into()
}

/// The holder's side and the waiters' side, like two processes: a release
/// names the first live ticket, and only that waiter is woken.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "testcontainers"),
    ignore = "needs PostgreSQL: set POSTGRES_URL"
)]
async fn a_release_wakes_only_the_fair_waiter_first_in_line() {
    shylock_core::testkit::a_release_wakes_only_the_first_in_line(
        process_side().await,
        process_side().await,
    )
    .await;
}

/// Two sides as two processes: a fair waiter behind another, while the
/// listener works, sends no claim before its turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "testcontainers"),
    ignore = "needs PostgreSQL: set POSTGRES_URL"
)]
async fn a_fair_waiter_behind_others_tries_only_at_its_turn() {
    shylock_core::testkit::a_waiter_behind_others_tries_only_at_its_turn(
        process_side().await,
        process_side().await,
    )
    .await;
}

/// The first in line leaving a free lock wakes the next one, in another
/// process (leaving notifies the new first ticket).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "testcontainers"),
    ignore = "needs PostgreSQL: set POSTGRES_URL"
)]
async fn a_first_waiter_leaving_wakes_the_next_in_another_process() {
    shylock_core::testkit::a_first_waiter_leaving_wakes_the_next(
        process_side().await,
        process_side().await,
    )
    .await;
}

/// A line of `MAX_WAITERS` live tickets (written directly, as that many
/// waiters would) refuses new owners with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "testcontainers"),
    ignore = "needs PostgreSQL: set POSTGRES_URL"
)]
async fn a_full_line_refuses_new_owners() {
    let backend = backend_with(StatementMode::Prepared).await;
    let name = unique_name("full-line");
    let pool = PostgresBackend::pool_for(&server_url("POSTGRES_URL"))
        .await
        .unwrap();
    let owners: Vec<String> = (0..shylock_core::MAX_WAITERS)
        .map(shylock_core::testkit::seeded_owner)
        .collect();
    // Arrival numbers below any the fence sequence gives out.
    let seqs: Vec<i64> = (-(shylock_core::MAX_WAITERS as i64)..0).collect();
    sqlx::query(&format!(
        "INSERT INTO {}_tickets (key, owners, seqs, expiries, expires_at)
         SELECT $1, $2, $3, array_fill(now() + interval '1 hour', ARRAY[cardinality($2)]),
                now() + interval '1 hour'",
        run_table()
    ))
    .bind(name.as_bytes())
    .bind(&owners)
    .bind(&seqs)
    .execute(&pool)
    .await
    .unwrap();
    shylock_core::testkit::a_full_line_refuses_new_owners(backend.into(), &name).await;
}

/// A reader whose process died (never released, never renewed) frees its
/// share after its ttl, judged by the server's clock: the writer waiting
/// in another process starts its lease no earlier than the reader's lease
/// ended, both as the server reported them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "testcontainers"),
    ignore = "needs PostgreSQL: set POSTGRES_URL"
)]
async fn a_crashed_readers_share_frees_itself_after_its_ttl() {
    let other = process_side().await;
    let crashed = backend_with(StatementMode::Prepared).await;
    let name = unique_name("rw-crashed");
    let reader = crashed
        .claim_read(
            &name,
            "crashed",
            Duration::from_secs(1),
            true,
            op_deadline(),
        )
        .await
        .unwrap()
        .expect("a free read/write lock takes a reader");
    drop(crashed);
    let writer_ttl = Duration::from_secs(30);
    let rw =
        AsyncRwLock::with_backend(name, other).with_options(LockOptions::default().ttl(writer_ttl));
    assert!(
        rw.try_write().await.unwrap().is_none(),
        "the reader's share is live"
    );
    let w = rw
        .write_timeout(Duration::from_secs(20))
        .await
        .unwrap()
        .expect("the crashed reader's share never freed");
    assert!(
        w.expires_at() - writer_ttl >= reader.expires_at,
        "the writer entered before the reader's lease ended by the server's clock"
    );
    assert!(w.fencing_token() > reader.fencing_token);
    let info = rw.inspect().await.unwrap();
    assert!(info.readers.is_empty(), "{info:?}");
    assert_eq!(info.writer.map(|h| h.owner).as_deref(), Some(w.owner()));
    w.release().await.unwrap();
}

/// Two backends as two processes: a writer waiting in one, whose pauses
/// are a minute long, takes the lock soon after the last reader in the
/// other leaves (the release's notification wakes it); readers waiting
/// there behind that writer are woken when it leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "testcontainers"),
    ignore = "needs PostgreSQL: set POSTGRES_URL"
)]
async fn rwlock_releases_wake_waiters_in_another_process() {
    let (a, b) = (process_side().await, process_side().await);
    let name = unique_name("rw-cross");
    let ttl = Duration::from_secs(30);
    let slow = LockOptions::default()
        .ttl(ttl)
        .backoff(Duration::from_secs(60), Duration::from_secs(60));
    let reader = AsyncRwLock::with_backend(name.clone(), a.clone())
        .read()
        .await
        .unwrap();
    let writing = AsyncRwLock::with_backend(name.clone(), b.clone()).with_options(slow.clone());
    let waiting = tokio::spawn(async move { writing.write().await.unwrap() });
    // Each refused attempt of the writer renews its intent for a ttl: once
    // its last attempt is a while past by the server's clock, it pauses.
    let pool = PostgresBackend::pool_for(&server_url("POSTGRES_URL"))
        .await
        .unwrap();
    let paused = format!(
        "SELECT clock_timestamp() - (intent_until - $2 * interval '1 millisecond')
                    >= interval '300 milliseconds'
         FROM {}_rwlocks WHERE key = $1 AND intent IS NOT NULL",
        run_table()
    );
    let writer_pauses = wait_for(Duration::from_secs(10), || async {
        let row: Option<bool> = sqlx::query_scalar(&paused)
            .bind(name.as_bytes())
            .bind(ttl.as_millis() as i64)
            .fetch_optional(&pool)
            .await
            .unwrap();
        row.filter(|p| *p)
    })
    .await;
    assert!(writer_pauses.is_some(), "the writer recorded no intent");
    reader.release().await.unwrap();
    let w = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the reader's release did not wake the writer in the other process")
        .unwrap();

    let mut readers = Vec::new();
    for _ in 0..2 {
        let reading = AsyncRwLock::with_backend(name.clone(), a.clone()).with_options(slow.clone());
        readers.push(tokio::spawn(async move { reading.read().await.unwrap() }));
    }
    // The readers are refused (nothing to await in the store: a refused
    // reader writes nothing); a short pause lets them reach their wait.
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.release().await.unwrap();
    for r in readers {
        tokio::time::timeout(Duration::from_secs(20), r)
            .await
            .expect("the writer's release did not wake the readers in the other process")
            .unwrap()
            .release()
            .await
            .unwrap();
    }
}
