//! The conformance suite through a transaction pooler: PgBouncer with
//! `pool_mode = transaction` in front of the server, at
//! `POSTGRES_POOLER_URL` (scripts/test.sh starts one when pgbouncer is
//! installed or installable).
//!
//! Statements go unprepared (values as literals over the simple protocol),
//! as PgBouncer before 1.21 does not keep prepared statements across the
//! server connections it hands out. `LISTEN` cannot work through it (and
//! would harm other clients), so the backend does not listen there and
//! waiters poll, which the suite's wake-up cases must survive; with a
//! direct pool for the listener (`listen_pool`), wake-ups work again.

use std::sync::OnceLock;
use std::time::Duration;

use shylock_core::testkit::{required_env, unique_name, unique_store_name};
use shylock_core::SharedBackend;
use shylock_postgres::{PostgresBackend, StatementMode};

fn run_table() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| unique_store_name("shylock_pooled"))
}

async fn pooled() -> PostgresBackend {
    let pool = PostgresBackend::pool_for(&required_env("POSTGRES_POOLER_URL"))
        .await
        .expect("could not connect to POSTGRES_POOLER_URL");
    PostgresBackend::builder(pool)
        .table(run_table())
        .statement_mode(StatementMode::Unprepared)
        .build()
        .await
        .expect("could not set up the lock tables through the pooler")
}

async fn through_pooler() -> SharedBackend {
    pooled().await.into()
}

shylock_core::conformance_tests!(
    through_pooler(),
    ignore = "needs PgBouncer in transaction mode: set POSTGRES_POOLER_URL"
);

/// Statements through the pooler, `LISTEN` on a direct connection: a
/// release wakes a waiter that would otherwise not poll for a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PgBouncer in transaction mode: set POSTGRES_POOLER_URL"]
async fn a_direct_listen_pool_wakes_waiters_behind_the_pooler() {
    let pool = PostgresBackend::pool_for(&required_env("POSTGRES_POOLER_URL"))
        .await
        .unwrap();
    let direct = PostgresBackend::pool_for(&required_env("POSTGRES_URL"))
        .await
        .unwrap();
    let backend = PostgresBackend::builder(pool)
        .table(run_table())
        .statement_mode(StatementMode::Unprepared)
        .listen_pool(direct)
        .build()
        .await
        .unwrap();
    assert!(
        backend
            .release_listener_ready(Duration::from_secs(10))
            .await
    );
    let holder_side = pooled().await;
    let name = unique_name("pooled-wake");
    let holder = shylock_core::AsyncLock::with_backend(name.clone(), holder_side)
        .acquire()
        .await
        .unwrap();
    let waiter = shylock_core::AsyncLock::with_backend(name, backend).with_options(
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

/// Unprepared statements mean a transaction pooler: the listener is not
/// started on the pooler (its `LISTEN` would leave notifications on server
/// connections other clients get), so waiters poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PgBouncer in transaction mode: set POSTGRES_POOLER_URL"]
async fn no_listen_through_the_pooler() {
    let backend = pooled().await;
    assert!(!backend.release_listener_ready(Duration::from_secs(2)).await);
}
