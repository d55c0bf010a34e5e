//! The backend conformance suite (feature `testkit`) and test helpers.
//!
//! Plain async functions that take a backend and panic when it breaks the
//! [`Backend`](crate::backend::Backend) contract. Every backend crate runs
//! all of them, most simply with
//! [`conformance_tests!`](crate::conformance_tests), which turns the cases
//! of every capability into one `#[tokio::test]` each:
//!
//! ```text
//! async fn backend() -> shylock::SharedBackend {
//!     shylock::MemoryBackend::new().into()
//! }
//! shylock::backend::conformance_tests!(backend());
//! // A suite that needs a server: skipped (reported as ignored by cargo)
//! // unless run with `--ignored`, which scripts/test.sh does when the
//! // server is there.
//! // shylock::backend::conformance_tests!(real_server(), ignore = "needs MY_DB_URL");
//! ```
//!
//! Every case uses lock names with a random prefix, so cases may share one
//! database.

mod cases;
#[cfg(feature = "testcontainers")]
mod containers;
mod counting;
mod foreign;
mod hold_log;
mod line_cap;
mod one_permit;
mod proxy;

pub use cases::*;
#[cfg(feature = "testcontainers")]
pub use containers::server_url;
pub use counting::CountingBackend;
pub use foreign::{frees_live_foreign_record, takes_over_foreign_record};
pub use hold_log::{
    check_hold_log, parse_hold_line, read_hold_log, HoldEvent, HoldKind, HoldLog, HoldReport,
};
pub use line_cap::{a_full_line_refuses_new_owners, seeded_owner};
pub use one_permit::OnePermit;
pub use proxy::FaultProxy;

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{Deadline, Grant, SharedBackend};

/// A name no other case or run uses.
pub fn unique_name(label: &str) -> String {
    format!("shylock-test/{label}/{}", uuid::Uuid::new_v4())
}

/// A fresh database, collection or file name: `prefix` plus 12 random hex
/// digits (valid as a MongoDB database and an ArangoDB collection name).
pub fn unique_store_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A path for a fresh SQLite lock file under the system temp directory.
pub fn temp_db_path() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("shylock-tests");
    std::fs::create_dir_all(&dir).expect("could not create the test directory");
    dir.join(format!("{}.db", uuid::Uuid::new_v4()))
}

/// A fresh owner token.
pub fn owner() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A deadline for one operation of a suite case: generous, so only a hung
/// backend reaches it.
pub fn op_deadline() -> Deadline {
    Deadline::after(Duration::from_secs(30))
}

/// One `claim` of `name` by `owner` that must win; panics otherwise.
pub async fn claim_or_panic(
    backend: &SharedBackend,
    name: &str,
    owner: &str,
    ttl: Duration,
) -> Grant {
    backend
        .claim(name, owner, ttl, op_deadline())
        .await
        .unwrap_or_else(|e| panic!("claim of {name:?} failed: {e}"))
        .unwrap_or_else(|| panic!("claim of the free lock {name:?} was refused"))
}

/// The value of environment variable `var`, or a panic that says which
/// server the test needs and how to get one. For suites marked
/// `#[ignore = "needs ..."]`: they run only when asked to, and then a
/// missing server is a failure, never a silent pass.
pub fn required_env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "this test needs {var}; scripts/test.sh sets it when it can start the server \
             (see README, Testing)"
        )
    })
}

/// The URL of the server a suite needs: the environment variable `var`
/// (`MONGODB_URI`, `ARANGO_URL`, `POSTGRES_URL`). With feature
/// `testcontainers`, a server started in a container when `var` is unset;
/// without it, as [`required_env`].
#[cfg(not(feature = "testcontainers"))]
pub fn server_url(var: &str) -> String {
    required_env(var)
}

/// Polls `attempt` every 10 ms until it yields `Some` or `limit` passes.
pub async fn wait_for<T, F, Fut>(limit: Duration, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = attempt().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Panics unless readers enter `rw` at once: no writer's intent shows in
/// `inspect`, and a `try_read` wins (its lease is released again). For
/// checking that a writer that gave up holds nobody back.
pub async fn assert_readers_enter(rw: &crate::AsyncRwLock) {
    assert!(
        !rw.inspect().await.unwrap().writer_waiting,
        "a writer that gave up still holds readers back"
    );
    rw.try_read()
        .await
        .unwrap()
        .expect("readers enter again once the writer gave up")
        .release()
        .await
        .unwrap();
}

/// Calls `$callback!($($args)*; case, case, ...)` with the list of
/// conformance cases of one group: `locks` (the single-lock contract),
/// `semaphores`, `queues`, `rwlocks`, or `one_permit_locks` (the lock cases that also
/// apply to a one-permit semaphore: all but listing, which semaphores do
/// not have).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    (locks; $callback:path; $($args:tt)*) => {
        $crate::__conformance_cases!(@locks $callback; [$($args)*];
            list_live_holders, generated_names_never_collide);
    };
    (one_permit_locks; $callback:path; $($args:tt)*) => {
        $crate::__conformance_cases!(@locks $callback; [$($args)*];);
    };
    (@locks $callback:path; [$($args:tt)*]; $($listing:ident),*) => {
        $callback!($($args)*;
            mutual_exclusion, first_creation_race, try_acquire_while_held,
            owner_checked_release_and_extend, same_owner_reclaim_is_idempotent,
            dropped_guard_frees_lock_for_next_acquire,
            expiry_frees_lock, expired_lease_cannot_be_extended, fencing_tokens_increase,
            force_release, is_locked, name_edge_cases,
            distinct_names_independent, waiter_gets_released_lock,
            release_wakes_waiter_at_once, wait_timeout, renewal_keeps_lock,
            cancelled_acquires_leave_the_lock_free, $($listing),*);
    };
    (semaphores; $callback:path; $($args:tt)*) => {
        $callback!($($args)*;
            semaphore_limits_holders, semaphore_expired_permits_are_reclaimed,
            semaphore_owner_checked, semaphore_reclaim_is_idempotent,
            semaphore_permit_count_mismatch, semaphore_inspect_and_bad_input,
            semaphore_release_wakes_waiter, semaphore_list_by_prefix,
            fair_semaphore_grants_permits_in_arrival_order,
            fair_semaphore_try_acquire_respects_the_line,
            fair_semaphore_timeouts_and_cancels_leave_nothing,
            fair_semaphore_crashed_waiter_holds_the_line_one_ttl);
    };
    (queues; $callback:path; $($args:tt)*) => {
        $callback!($($args)*;
            fair_waiters_granted_in_arrival_order, expired_ticket_is_skipped,
            tickets_are_owner_checked_and_idempotent,
            fair_try_acquire_respects_the_line_and_others_barge,
            cancelled_tickets_leave_the_line, fair_acquire_and_timeout_leave_no_ticket,
            concurrent_first_enqueues_all_get_a_place, queue_list_by_prefix,
            the_holder_wins_again_and_takes_no_ticket);
    };
    (rwlocks; $callback:path; $($args:tt)*) => {
        $callback!($($args)*;
            rwlock_readers_share, rwlock_writer_excludes, rwlock_writer_preference,
            rwlock_expired_reader_not_counted, rwlock_owner_checked, rwlock_fencing_order,
            rwlock_cancelled_attempts_leave_nothing, rwlock_release_wakes_waiters);
    };
}

/// Generates one `#[tokio::test]` per conformance case, for every
/// capability: the lock cases, the semaphore cases, the fair-queue cases,
/// the read/write lock cases, and (module `one_permit`) the lock cases run against a one-permit
/// semaphore through [`OnePermit`]. Cases of a capability the backend does
/// not offer ([`Backend::semaphores`](crate::backend::Backend::semaphores),
/// [`Backend::queues`](crate::backend::Backend::queues),
/// [`Backend::rwlocks`](crate::backend::Backend::rwlocks) answer `None`) say
/// so on stderr and check nothing else.
///
/// `$make` is an expression evaluated once per case that yields a future of
/// [`SharedBackend`]. With `ignore = "reason"` every case is marked
/// `#[ignore]`: for suites that need a server, run with `--ignored` when it
/// is there. With `groups = [..]` only the named groups (`locks`,
/// `semaphores`, `queues`, `rwlocks`) are generated, for a suite split over several
/// test binaries.
///
/// ```text
/// shylock::backend::conformance_tests!(backend());
/// shylock::backend::conformance_tests!(server(), ignore = "needs MY_DB_URL");
/// shylock::backend::conformance_tests!(server(), ignore = "needs MY_DB_URL", groups = [semaphores]);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@groups [] $make; locks semaphores queues rwlocks);
    };
    ($make:expr, ignore = $why:literal) => {
        $crate::conformance_tests!(@groups [#[ignore = $why]] $make; locks semaphores queues rwlocks);
    };
    ($make:expr, groups = [$($group:ident),* $(,)?]) => {
        $crate::conformance_tests!(@groups [] $make; $($group)*);
    };
    ($make:expr, ignore = $why:literal, groups = [$($group:ident),* $(,)?]) => {
        $crate::conformance_tests!(@groups [#[ignore = $why]] $make; $($group)*);
    };
    (@groups $attrs:tt $make:expr; $($group:ident)*) => {
        $( $crate::conformance_tests!(@group $group $attrs $make); )*
    };
    (@group locks $attrs:tt $make:expr) => {
        $crate::__conformance_cases!(locks; $crate::conformance_tests; @emit $attrs $make);
    };
    (@group queues $attrs:tt $make:expr) => {
        $crate::__conformance_cases!(queues; $crate::conformance_tests; @emit $attrs $make);
    };
    (@group rwlocks $attrs:tt $make:expr) => {
        $crate::__conformance_cases!(rwlocks; $crate::conformance_tests; @emit $attrs $make);
    };
    (@group semaphores $attrs:tt $make:expr) => {
        $crate::__conformance_cases!(semaphores; $crate::conformance_tests; @emit $attrs $make);
        mod one_permit {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_cases!(one_permit_locks; $crate::conformance_tests; @emit_one_permit $attrs $make);
        }
    };
    (@emit $attrs:tt $make:expr; $($case:ident),* $(,)?) => {
        $( $crate::conformance_tests!(@one $attrs $make; $case); )*
    };
    (@emit_one_permit $attrs:tt $make:expr; $($case:ident),* $(,)?) => {
        $( $crate::conformance_tests!(@one_permit $attrs $make; $case); )*
    };
    (@one [$($attr:tt)*] $make:expr; $case:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        $($attr)*
        async fn $case() {
            let backend: $crate::SharedBackend = $make.await;
            $crate::testkit::$case(backend).await;
        }
    };
    (@one_permit [$($attr:tt)*] $make:expr; $case:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        $($attr)*
        async fn $case() {
            let backend: $crate::SharedBackend = $make.await;
            if backend.semaphores().is_none() {
                eprintln!("one_permit::{}: not run, the {} backend offers no semaphores",
                    stringify!($case), backend.kind());
                return;
            }
            $crate::testkit::$case($crate::testkit::OnePermit::wrap(backend)).await;
        }
    };
}

macro_rules! define_run_all {
    (; $($case:ident),* $(,)?) => {
        /// Runs every lock conformance case, in the order of the one
        /// list, against backends made by `make` (one per case).
        pub async fn run_all<F, Fut>(mut make: F)
        where
            F: FnMut() -> Fut,
            Fut: Future<Output = SharedBackend>,
        {
            $( $case(make().await).await; )*
        }
    };
}

crate::__conformance_cases!(locks; define_run_all;);
