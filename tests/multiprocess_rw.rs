//! Read/write locks across processes: 2 writers and 6 readers in 4
//! processes on one name, history-checked.
//!
//! The children are this test binary started again with `--ignored --exact
//! child_worker`. Each task writes begin/end lines (worker `pN.wK` for a
//! writer, `pN.rK` for a reader) to a shared hold log; appends are ordered,
//! so the log is the order of entering and leaving. Readers keep arriving
//! until the test sees every writer served, so a writer can only be served
//! if new readers stop entering while it waits (writer preference).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shylock::{AsyncRwLock, LockOptions};
use shylock_core::testkit::{read_hold_log, unique_name, HoldEvent, HoldKind, HoldLog};

mod common;
#[cfg(feature = "mongo")]
use common::mongo_spec;
#[cfg(feature = "postgres")]
use common::postgres_spec;
use common::{backend_from_spec, sqlite_spec, temp_dir, wait_all};

/// Processes, and the roles of each one's tasks: 2 writers, 6 readers.
const ROLES: [&str; 4] = ["wr", "wr", "rr", "rr"];
/// Write rounds of each writer task.
const WRITES: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "entry point of the child processes started by the other tests in this file"]
async fn child_worker() {
    let Ok(spec) = std::env::var("SHYLOCK_CHILD_BACKEND") else {
        eprintln!("child_worker does nothing on its own: the read/write tests start it");
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap();
    let (id, roles, name) = (
        var("SHYLOCK_CHILD_ID"),
        var("SHYLOCK_CHILD_ROLES"),
        var("SHYLOCK_CHILD_LOCK"),
    );
    let (log, stop) = (
        PathBuf::from(var("SHYLOCK_CHILD_LOG")),
        PathBuf::from(var("SHYLOCK_CHILD_STOP")),
    );
    let backend = backend_from_spec(&spec).await;
    let ttl = Duration::from_millis(var("SHYLOCK_CHILD_TTL_MS").parse().unwrap());
    let options = LockOptions::default()
        .ttl(ttl)
        .backoff(Duration::from_millis(1), Duration::from_millis(20));
    let mut tasks = Vec::new();
    for (k, role) in roles.chars().enumerate() {
        let rw =
            AsyncRwLock::with_backend(name.clone(), backend.clone()).with_options(options.clone());
        let worker = format!("{id}.{role}{k}");
        let (log, stop) = (log.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut log = HoldLog::open(&log).unwrap();
            if role == 'w' {
                for _ in 0..WRITES {
                    let started = Instant::now();
                    let guard = rw.write().await.unwrap();
                    log.begin(&worker, guard.fencing_token(), started.elapsed())
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    log.end(&worker, guard.fencing_token()).unwrap();
                    guard.release().await.unwrap();
                    // Give readers a moment, as a real writer between jobs.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            } else {
                // Readers arrive again at once and hold for a while, so
                // that without writer preference some reader would always
                // be inside. The hold is longer than a claim takes on a
                // loaded test server (SecantusDB late in a CI run: 15 ms
                // was not), or readers would enter one after another.
                while !stop.exists() {
                    let started = Instant::now();
                    let guard = rw.read().await.unwrap();
                    log.begin(&worker, guard.fencing_token(), started.elapsed())
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    log.end(&worker, guard.fencing_token()).unwrap();
                    guard.release().await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

fn is_writer(event: &HoldEvent) -> bool {
    event.worker.contains(".w")
}

/// What the history shows.
#[derive(Debug, Default)]
struct Report {
    writes: usize,
    reads: usize,
    /// The most readers inside at once.
    most_readers: usize,
    /// Readers that entered after the last writer left.
    reads_after_last_write: usize,
}

/// Checks the log: a writer enters only when nobody is inside and nobody
/// enters before it leaves; every critical section ends; a writer's token
/// is greater than every token that entered before it and less than every
/// token that enters after it.
fn check(events: &[HoldEvent]) -> Report {
    let mut report = Report::default();
    let mut readers_inside: Vec<(&str, u64)> = Vec::new();
    let mut writer_inside: Option<(&str, u64)> = None;
    let mut highest_before = 0u64;
    let mut last_writer_token: Option<u64> = None;
    for (at, event) in events.iter().enumerate() {
        let me = (event.worker.as_str(), event.fencing_token);
        match (event.kind, is_writer(event)) {
            (HoldKind::Begin, writer) => {
                assert!(
                    writer_inside.is_none(),
                    "line {at}: {me:?} entered while writer {writer_inside:?} was inside"
                );
                if let Some(token) = last_writer_token {
                    assert!(
                        event.fencing_token > token,
                        "line {at}: {me:?} entered after a writer with token {token}, with a lower token"
                    );
                }
                if writer {
                    assert!(
                        readers_inside.is_empty(),
                        "line {at}: writer {me:?} entered while readers {readers_inside:?} were inside"
                    );
                    assert!(
                        event.fencing_token > highest_before,
                        "line {at}: writer {me:?} got a token below {highest_before}, granted before it"
                    );
                    writer_inside = Some(me);
                    last_writer_token = Some(event.fencing_token);
                    report.writes += 1;
                    report.reads_after_last_write = 0;
                } else {
                    readers_inside.push(me);
                    report.most_readers = report.most_readers.max(readers_inside.len());
                    report.reads += 1;
                    report.reads_after_last_write += 1;
                }
                highest_before = highest_before.max(event.fencing_token);
            }
            (HoldKind::End, true) => {
                assert_eq!(writer_inside.take(), Some(me), "line {at}: unmatched end");
            }
            (HoldKind::End, false) => {
                let place = readers_inside.iter().position(|r| *r == me);
                let place = place.unwrap_or_else(|| panic!("line {at}: unmatched end {me:?}"));
                readers_inside.remove(place);
            }
        }
    }
    assert!(
        writer_inside.is_none() && readers_inside.is_empty(),
        "sections never ended: writer {writer_inside:?}, readers {readers_inside:?}"
    );
    report
}

/// Waits (at most `limit`) until `count` writer sections have begun.
fn wait_for_writes(log: &Path, count: usize, limit: Duration) {
    wait_for_sections(
        log,
        true,
        count,
        limit,
        "writes were served while readers kept arriving",
    );
}

/// Waits (at most `limit`) until `count` writer (or reader) sections have
/// begun; `what` is for the failure message.
fn wait_for_sections(
    log: &Path,
    writers: bool,
    count: usize,
    limit: Duration,
    what: &str,
) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let begun = read_hold_log(log)
            .unwrap_or_default()
            .iter()
            .filter(|e| e.kind == HoldKind::Begin && is_writer(e) == writers)
            .count();
        if begun >= count {
            return begun;
        }
        assert!(
            Instant::now() < deadline,
            "only {begun} of {count} {what} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// With `ttl_ms` short (2 s), a waiting writer's recorded intent lapses
/// unless the writer attempts again within its ttl, also where releases
/// are watched and waiters otherwise pause for seconds.
async fn writers_and_readers_in_four_processes(ttl_ms: u64, spec: String, dir: &Path) {
    let (name, log, stop) = (
        unique_name("multiprocess-rw"),
        dir.join("rw.log"),
        dir.join("stop"),
    );
    let children = ROLES
        .iter()
        .enumerate()
        .map(|(i, roles)| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--ignored",
                    "--exact",
                    "child_worker",
                    "--test-threads=1",
                    "--quiet",
                ])
                .env("SHYLOCK_CHILD_BACKEND", &spec)
                .env("SHYLOCK_CHILD_ID", format!("p{i}"))
                .env("SHYLOCK_CHILD_ROLES", roles)
                .env("SHYLOCK_CHILD_LOCK", &name)
                .env("SHYLOCK_CHILD_LOG", &log)
                .env("SHYLOCK_CHILD_STOP", &stop)
                .env("SHYLOCK_CHILD_TTL_MS", ttl_ms.to_string())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let writers = ROLES.iter().map(|r| r.matches('w').count()).sum::<usize>();
    // Readers keep arriving all along: every writer must be served anyway.
    wait_for_writes(&log, writers * WRITES, Duration::from_secs(90));
    // Then the readers alone for a while: 6 tasks re-entering at once
    // overlap. (While writers keep coming, writer preference may keep
    // every reader out: that is its price, not a fault.)
    let reads = wait_for_sections(&log, false, 0, Duration::ZERO, "");
    wait_for_sections(
        &log,
        false,
        reads + 12,
        Duration::from_secs(60),
        "reads after the writes",
    );
    std::fs::write(&stop, b"").unwrap();
    wait_all(children, Duration::from_secs(60));
    let report = check(&read_hold_log(&log).unwrap());
    eprintln!("read/write history: {report:?}");
    assert_eq!(report.writes, writers * WRITES, "{report:?}");
    assert!(
        report.most_readers >= 2,
        "readers never overlapped: {report:?}"
    );
    // Nothing is left held.
    let backend = backend_from_spec(&spec).await;
    let info = AsyncRwLock::with_backend(name, backend)
        .inspect()
        .await
        .unwrap();
    assert!(info.is_free() && !info.writer_waiting, "{info:?}");
}

/// One test per backend and ttl: `$sqlite` on a lock file in a fresh
/// directory, `$mongo` and `$postgres` (ignored: they need a server) on a
/// fresh store.
macro_rules! on_each_backend {
    ($($sqlite:ident, $mongo:ident, $postgres:ident => $ttl_ms:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let (spec, dir) = sqlite_spec();
            writers_and_readers_in_four_processes($ttl_ms, spec, &dir).await;
        }

        #[cfg(feature = "mongo")]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "needs MONGODB_URI"]
        async fn $mongo() {
            writers_and_readers_in_four_processes($ttl_ms, mongo_spec(), &temp_dir()).await;
        }

        #[cfg(feature = "postgres")]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "needs PostgreSQL: set POSTGRES_URL"]
        async fn $postgres() {
            writers_and_readers_in_four_processes($ttl_ms, postgres_spec(), &temp_dir()).await;
        }
    )*};
}

on_each_backend! {
    sqlite_writers_and_readers_in_four_processes, mongo_writers_and_readers_in_four_processes,
        postgres_writers_and_readers_in_four_processes => 10_000;
    sqlite_writers_are_served_with_a_short_ttl, mongo_writers_are_served_with_a_short_ttl,
        postgres_writers_are_served_with_a_short_ttl => 2_000;
}
