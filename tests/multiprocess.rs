//! Several processes racing for one lock, and a holder killed with SIGKILL.
//!
//! The children are this test binary started again with `--ignored --exact
//! child_worker`; the environment tells them which backend to use and what
//! to do. Each child writes begin/end lines to a shared hold log; the test
//! checks that no two critical sections overlap and that fencing tokens
//! strictly increase in log order.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use shylock::{AsyncLock, AsyncMultiLock, AsyncSemaphore, Election, LockOptions, SharedBackend};

mod common;
#[cfg(feature = "mongo")]
use common::mongo_spec;
#[cfg(feature = "postgres")]
use common::postgres_spec;
use common::{backend_from_spec, sqlite_spec, temp_dir, wait_all};

use shylock_core::testkit::{
    check_hold_log, read_hold_log, unique_name, HoldEvent, HoldKind, HoldLog,
};

#[tokio::test]
#[ignore = "entry point of the child processes started by the other tests in this file"]
async fn child_worker() {
    let Ok(spec) = std::env::var("SHYLOCK_CHILD_BACKEND") else {
        eprintln!("child_worker does nothing on its own: the multi-process tests start it");
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap();
    match std::env::var("SHYLOCK_CHILD_MODE").as_deref() {
        Ok("soak") => return soak_worker(&spec).await,
        Ok("until-lost") => return until_lost_worker(&spec).await,
        Ok("candidate") => return candidate_worker(&spec).await,
        Ok("multi") => return multi_worker(&spec).await,
        Ok("sigterm") => return sigterm_worker(&spec).await,
        Ok("fair") => return fair_worker(&spec).await,
        _ => {}
    }
    let id = var("SHYLOCK_CHILD_ID");
    let rounds: usize = var("SHYLOCK_CHILD_ROUNDS").parse().unwrap();
    let ttl = Duration::from_millis(var("SHYLOCK_CHILD_TTL_MS").parse().unwrap());
    let hold_forever = std::env::var("SHYLOCK_CHILD_HOLD_FOREVER").is_ok();
    let backend = backend_from_spec(&spec).await;
    let mut log = HoldLog::open(var("SHYLOCK_CHILD_LOG")).unwrap();
    let options = LockOptions::default()
        .ttl(ttl)
        .backoff(Duration::from_millis(1), Duration::from_millis(50));
    // With SHYLOCK_CHILD_PERMITS the child takes a permit of a semaphore of
    // that many permits instead of the lock.
    let permits: Option<u32> = std::env::var("SHYLOCK_CHILD_PERMITS")
        .ok()
        .map(|p| p.parse().unwrap());
    let lock = AsyncLock::with_backend(var("SHYLOCK_CHILD_LOCK"), backend.clone())
        .with_options(options.clone());
    let semaphore = permits.map(|p| {
        AsyncSemaphore::with_backend(var("SHYLOCK_CHILD_LOCK"), p, backend).with_options(options)
    });
    for _ in 0..rounds {
        let started = Instant::now();
        let guard = match &semaphore {
            Some(semaphore) => semaphore.acquire().await.unwrap(),
            None => lock.acquire().await.unwrap(),
        };
        log.begin(&id, guard.fencing_token(), started.elapsed())
            .unwrap();
        if hold_forever {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        log.end(&id, guard.fencing_token()).unwrap();
        guard.release().await.unwrap();
    }
}

/// Child mode `soak`: `SHYLOCK_CHILD_TASKS` tasks each take random locks
/// among `SHYLOCK_SOAK_NAMES` names under `SHYLOCK_CHILD_LOCK` until
/// `SHYLOCK_SOAK_SECS` have passed, logging every critical section to the
/// name's hold log in `SHYLOCK_CHILD_LOG` (a directory).
async fn soak_worker(spec: &str) {
    let var = |k: &str| std::env::var(k).unwrap();
    let id = var("SHYLOCK_CHILD_ID");
    let tasks: usize = var("SHYLOCK_CHILD_TASKS").parse().unwrap();
    let names: usize = var("SHYLOCK_SOAK_NAMES").parse().unwrap();
    let secs: u64 = var("SHYLOCK_SOAK_SECS").parse().unwrap();
    let dir = PathBuf::from(var("SHYLOCK_CHILD_LOG"));
    let prefix = var("SHYLOCK_CHILD_LOCK");
    let backend = backend_from_spec(spec).await;
    let end = Instant::now() + Duration::from_secs(secs);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (backend, dir, prefix) = (backend.clone(), dir.clone(), prefix.clone());
        let worker = format!("{id}.{t}");
        handles.push(tokio::spawn(async move {
            let mut logs: Vec<HoldLog> = (0..names)
                .map(|n| HoldLog::open(dir.join(format!("{n}.log"))).unwrap())
                .collect();
            let options = LockOptions::default()
                .ttl(Duration::from_secs(10))
                .wait_timeout(Some(Duration::from_secs(30)))
                .backoff(Duration::from_millis(1), Duration::from_millis(20));
            while Instant::now() < end {
                let n = fastrand_index(names);
                let lock = AsyncLock::with_backend(format!("{prefix}/{n}"), backend.clone())
                    .with_options(options.clone());
                let started = Instant::now();
                let guard = lock.acquire().await.unwrap();
                logs[n]
                    .begin(&worker, guard.fencing_token(), started.elapsed())
                    .unwrap();
                if fastrand_index(4) == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                logs[n].end(&worker, guard.fencing_token()).unwrap();
                guard.release().await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

fn fastrand_index(n: usize) -> usize {
    (uuid::Uuid::new_v4().as_u128() % n as u128) as usize
}

/// Child mode `until-lost`: takes `SHYLOCK_CHILD_LOCK` (renewal on), logs
/// the begin line, waits until the guard reports the lock lost, tries to
/// release it, and writes what release answered to `SHYLOCK_CHILD_RESULT`.
async fn until_lost_worker(spec: &str) {
    let var = |k: &str| std::env::var(k).unwrap();
    let backend = backend_from_spec(spec).await;
    let ttl = Duration::from_millis(var("SHYLOCK_CHILD_TTL_MS").parse().unwrap());
    let lock = AsyncLock::with_backend(var("SHYLOCK_CHILD_LOCK"), backend)
        .with_options(LockOptions::default().ttl(ttl));
    let guard = lock.acquire().await.unwrap();
    let mut log = HoldLog::open(var("SHYLOCK_CHILD_LOG")).unwrap();
    log.begin(
        &var("SHYLOCK_CHILD_ID"),
        guard.fencing_token(),
        Duration::ZERO,
    )
    .unwrap();
    let lost = tokio::time::timeout(Duration::from_secs(120), guard.lost()).await;
    let outcome = match (lost, guard.release().await) {
        (Err(_), _) => "never lost".to_owned(),
        (Ok(()), Err(shylock::Error::LockLost { .. })) => "lost; release: LockLost".to_owned(),
        (Ok(()), other) => format!("lost; release: {other:?}"),
    };
    std::fs::write(var("SHYLOCK_CHILD_RESULT"), outcome).unwrap();
}

/// Child mode `candidate`: campaigns in election `SHYLOCK_CHILD_LOCK`
/// forever; while it leads, its leader-only work has written a begin line
/// (with the term) and writes the end line the moment it is cancelled.
async fn candidate_worker(spec: &str) {
    let var = |k: &str| std::env::var(k).unwrap();
    let id = var("SHYLOCK_CHILD_ID");
    let backend = backend_from_spec(spec).await;
    let ttl = Duration::from_millis(var("SHYLOCK_CHILD_TTL_MS").parse().unwrap());
    let campaign = Election::with_backend(var("SHYLOCK_CHILD_LOCK"), id.clone(), backend)
        .with_options(
            LockOptions::default()
                .ttl(ttl)
                .backoff(Duration::from_millis(1), Duration::from_millis(50)),
        )
        .campaign()
        .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(
        HoldLog::open(var("SHYLOCK_CHILD_LOG")).unwrap(),
    ));
    struct End(std::sync::Arc<std::sync::Mutex<HoldLog>>, String, u64);
    impl Drop for End {
        fn drop(&mut self) {
            let _ = self.0.lock().unwrap().end(&self.1, self.2);
        }
    }
    campaign
        .lead(|term| {
            let (log, id) = (log.clone(), id.clone());
            async move {
                log.lock()
                    .unwrap()
                    .begin(&id, term, Duration::ZERO)
                    .unwrap();
                let _end = End(log, id, term);
                std::future::pending::<()>().await;
            }
        })
        .await;
}

/// Child mode `multi`: `SHYLOCK_CHILD_ROUNDS` times, takes a random
/// non-empty subset of `SHYLOCK_SOAK_NAMES` names under
/// `SHYLOCK_CHILD_LOCK` as one multi-lock and logs each name's critical
/// section to that name's hold log in the directory `SHYLOCK_CHILD_LOG`.
async fn multi_worker(spec: &str) {
    let var = |k: &str| std::env::var(k).unwrap();
    let id = var("SHYLOCK_CHILD_ID");
    let rounds: usize = var("SHYLOCK_CHILD_ROUNDS").parse().unwrap();
    let names: usize = var("SHYLOCK_SOAK_NAMES").parse().unwrap();
    let dir = PathBuf::from(var("SHYLOCK_CHILD_LOG"));
    let prefix = var("SHYLOCK_CHILD_LOCK");
    let backend = backend_from_spec(spec).await;
    let mut logs: Vec<HoldLog> = (0..names)
        .map(|n| HoldLog::open(dir.join(format!("{n}.log"))).unwrap())
        .collect();
    let options = LockOptions::default()
        .ttl(Duration::from_secs(10))
        .backoff(Duration::from_millis(1), Duration::from_millis(20));
    for _ in 0..rounds {
        let mut picked: Vec<usize> = (0..names).filter(|_| fastrand_index(2) == 0).collect();
        if picked.is_empty() {
            picked.push(fastrand_index(names));
        }
        let set = AsyncMultiLock::with_backend(
            picked.iter().rev().map(|n| format!("{prefix}/{n}")),
            backend.clone(),
        )
        .with_options(options.clone());
        let guard = set.acquire().await.unwrap();
        for n in &picked {
            let token = guard.fencing_token(&format!("{prefix}/{n}")).unwrap();
            logs[*n].begin(&id, token, Duration::ZERO).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        for n in &picked {
            let token = guard.fencing_token(&format!("{prefix}/{n}")).unwrap();
            logs[*n].end(&id, token).unwrap();
        }
        guard.release().await.unwrap();
    }
}

/// Child mode `sigterm`: holds `SHYLOCK_CHILD_LOCK` (ttl 30 s) until
/// SIGTERM, then calls `release_all` as a shutdown hook would and writes
/// its report to `SHYLOCK_CHILD_RESULT`.
async fn sigterm_worker(spec: &str) {
    let var = |k: &str| std::env::var(k).unwrap();
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    let backend = backend_from_spec(spec).await;
    let guard = AsyncLock::with_backend(var("SHYLOCK_CHILD_LOCK"), backend)
        .with_options(LockOptions::default().ttl(Duration::from_secs(30)))
        .acquire()
        .await
        .unwrap();
    HoldLog::open(var("SHYLOCK_CHILD_LOG"))
        .unwrap()
        .begin("holder", guard.fencing_token(), Duration::ZERO)
        .unwrap();
    term.recv().await;
    let report = shylock::release_all(Duration::from_secs(5)).await;
    let lost = guard.is_lost();
    std::fs::write(
        var("SHYLOCK_CHILD_RESULT"),
        format!("released={} lost={lost}", report.released),
    )
    .unwrap();
}

/// Child mode `fair`: for each slot of `SHYLOCK_CHILD_SLOTS` (in order),
/// waits for the file `go-<slot>` in the directory `SHYLOCK_CHILD_LOG`,
/// joins the line of `SHYLOCK_CHILD_LOCK` (fair, ttl `SHYLOCK_CHILD_TTL_MS`;
/// a fair semaphore's with `SHYLOCK_CHILD_PERMITS`)
/// and writes its place to `queued-<slot>`; then waits for every ticket at
/// once, and for each grant appends `<slot> <fencing token> <unix ms>` to
/// `grants`, holds the lock 20 ms and releases it.
async fn fair_worker(spec: &str) {
    use std::io::Write;
    let var = |k: &str| std::env::var(k).unwrap();
    let dir = PathBuf::from(var("SHYLOCK_CHILD_LOG"));
    let ttl = Duration::from_millis(var("SHYLOCK_CHILD_TTL_MS").parse().unwrap());
    let backend = backend_from_spec(spec).await;
    let options = LockOptions::default().ttl(ttl).fair(true);
    let lock = AsyncLock::with_backend(var("SHYLOCK_CHILD_LOCK"), backend.clone())
        .with_options(options.clone());
    // With SHYLOCK_CHILD_PERMITS: the line of a fair semaphore of that many
    // permits instead.
    let semaphore = std::env::var("SHYLOCK_CHILD_PERMITS").ok().map(|p| {
        AsyncSemaphore::with_backend(var("SHYLOCK_CHILD_LOCK"), p.parse().unwrap(), backend)
            .with_options(options)
    });
    let mut waiters = Vec::new();
    for slot in var("SHYLOCK_CHILD_SLOTS").split(',') {
        wait_for_file(&dir.join(format!("go-{slot}"))).await;
        let ticket = match &semaphore {
            Some(semaphore) => semaphore.enqueue().await.unwrap(),
            None => lock.enqueue().await.unwrap(),
        };
        std::fs::write(
            dir.join(format!("queued-{slot}")),
            ticket.place().to_string(),
        )
        .unwrap();
        let (slot, grants) = (slot.to_owned(), dir.join("grants"));
        waiters.push(tokio::spawn(async move {
            let guard = ticket.wait().await.unwrap();
            let line = format!(
                "{slot} {} {}\n",
                guard.fencing_token(),
                unix_ms(SystemTime::now())
            );
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(grants)
                .unwrap()
                .write_all(line.as_bytes())
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            guard.release().await.unwrap();
        }));
    }
    for waiter in waiters {
        waiter.await.unwrap();
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `(slot, fencing token, unix ms)` of every grant in a fair run.
fn read_grants(dir: &Path) -> Vec<(usize, u64, u64)> {
    std::fs::read_to_string(dir.join("grants"))
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let mut parts = line.split(' ').map(|p| p.parse::<u64>().unwrap());
            let (slot, token, at) = (parts.next(), parts.next(), parts.next());
            (slot.unwrap() as usize, token.unwrap(), at.unwrap())
        })
        .collect()
}

/// Lets `slot` join the line and waits until it did; returns its place.
async fn admit(dir: &Path, slot: usize) -> u64 {
    std::fs::write(dir.join(format!("go-{slot}")), "").unwrap();
    let queued = dir.join(format!("queued-{slot}"));
    wait_for_file(&queued).await;
    // The file is written in one call, but may be read between its
    // creation and the write.
    loop {
        if let Ok(place) = std::fs::read_to_string(&queued).unwrap().parse() {
            return place;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// 8 fair waiters in 4 processes (slots 0..8, process p holds p and p+4)
/// join the line one after another while this process holds the lock;
/// they are granted it in exactly that order.
async fn fair_processes_keep_arrival_order(spec: String, dir: &Path) {
    let race = Race::new(spec.clone(), dir);
    let signals = dir.join(format!("fair-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&signals).unwrap();
    let lock = AsyncLock::with_backend(race.lock.clone(), backend_from_spec(&spec).await)
        .with_options(LockOptions::default().fair(true));
    let holder = lock.acquire().await.unwrap();
    let children = fair_children_in_line(&race, &signals, None).await;
    holder.release().await.unwrap();
    wait_all(children, Duration::from_secs(120));
    grants_in_slot_order(&signals, "granted in arrival order");
}

/// Starts 4 child processes of fair waiters (of a semaphore of `permits`,
/// else of a lock) holding slots p and p + 4, and lets slots 0..8 join the
/// line one after another, checking each one's place.
async fn fair_children_in_line(race: &Race, signals: &Path, permits: Option<u32>) -> Vec<Child> {
    let children = (0..4)
        .map(|p| {
            let mut cmd = race.command(&format!("p{p}"), 0, 10_000);
            cmd.env("SHYLOCK_CHILD_MODE", "fair")
                .env("SHYLOCK_CHILD_SLOTS", format!("{p},{}", p + 4))
                .env("SHYLOCK_CHILD_LOG", signals);
            if let Some(permits) = permits {
                cmd.env("SHYLOCK_CHILD_PERMITS", permits.to_string());
            }
            cmd.spawn().unwrap()
        })
        .collect();
    for slot in 0..8 {
        assert_eq!(admit(signals, slot).await, slot as u64, "place in line");
    }
    children
}

/// The children's grants (slot, fencing token, grant time) by token,
/// checked to be slots 0..8 in that order (`what` names the check).
fn grants_in_slot_order(signals: &Path, what: &str) -> Vec<(usize, u64, u64)> {
    let mut grants = read_grants(signals);
    grants.sort_by_key(|g| g.1);
    let order: Vec<usize> = grants.iter().map(|g| g.0).collect();
    assert_eq!(order, (0..8).collect::<Vec<_>>(), "{what}");
    grants
}

/// 8 fair waiters in 4 processes (as in [`fair_processes_keep_arrival_order`])
/// join the line of a 2-permit fair semaphore one after another while this
/// process holds both permits; permits are granted in exactly that order,
/// and never to more than 2 at once.
async fn fair_semaphore_processes_keep_arrival_order(spec: String, dir: &Path) {
    const HOLD_MS: u64 = 20;
    let race = Race::new(spec.clone(), dir);
    let signals = dir.join(format!("fair-sem-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&signals).unwrap();
    let backend = backend_from_spec(&spec).await;
    let semaphore = AsyncSemaphore::with_backend(race.lock.clone(), 2, backend.clone())
        .with_options(LockOptions::default().fair(true));
    let held = [
        semaphore.acquire().await.unwrap(),
        semaphore.acquire().await.unwrap(),
    ];
    // A waiter of this process goes first and waits for a permit at the
    // gate (the first in line passes to it at once), so the children's
    // places are their slots, whenever their waits start.
    let first = semaphore.enqueue().await.unwrap();
    assert_eq!(first.place(), 0);
    let first = tokio::spawn(first.wait());
    let gate = AsyncLock::with_backend(format!("shylock/semaphore-line/{}", race.lock), backend);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gate.is_locked().await.unwrap() {
        assert!(
            Instant::now() < deadline,
            "the first waiter never took the gate"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let children = fair_children_in_line(&race, &signals, Some(2)).await;
    for guard in held {
        guard.release().await.unwrap();
    }
    first.await.unwrap().unwrap().release().await.unwrap();
    wait_all(children, Duration::from_secs(120));
    let grants = grants_in_slot_order(&signals, "permits granted in arrival order");
    // Each holder keeps its permit HOLD_MS: a third grant within that time
    // of the one two before it would mean three holders at once.
    for w in grants.windows(3) {
        assert!(
            w[2].2 + 2 >= w[0].2.min(w[1].2) + HOLD_MS,
            "three holders of a 2-permit semaphore at once: {grants:?}"
        );
    }
    assert!(semaphore.inspect().await.unwrap().holders.is_empty());
}

/// A queued waiter killed with SIGKILL holds up the line until its ticket
/// expires (renewed every ttl / 3, so between 2/3 ttl and one ttl after the
/// kill), then the next waiter gets the lock.
async fn killed_queued_waiter_is_skipped(spec: String, dir: &Path) {
    const TTL_MS: u64 = 1500;
    let race = Race::new(spec.clone(), dir);
    let signals = dir.join(format!("fair-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&signals).unwrap();
    let lock = AsyncLock::with_backend(race.lock.clone(), backend_from_spec(&spec).await)
        .with_options(LockOptions::default().fair(true));
    let holder = lock.acquire().await.unwrap();
    let spawn = |slot: usize| {
        let mut cmd = race.command(&format!("w{slot}"), 0, TTL_MS);
        cmd.env("SHYLOCK_CHILD_MODE", "fair")
            .env("SHYLOCK_CHILD_SLOTS", slot.to_string())
            .env("SHYLOCK_CHILD_LOG", &signals);
        cmd.spawn().unwrap()
    };
    let mut doomed = spawn(0);
    let survivor = spawn(1);
    assert_eq!(admit(&signals, 0).await, 0);
    assert_eq!(admit(&signals, 1).await, 1);
    doomed.kill().unwrap();
    let killed_at = unix_ms(SystemTime::now());
    doomed.wait().unwrap();
    holder.release().await.unwrap();
    wait_all(vec![survivor], Duration::from_secs(60));
    let grants = read_grants(&signals);
    assert_eq!(grants.len(), 1, "only the survivor was served: {grants:?}");
    let (slot, _, at) = grants[0];
    assert_eq!(slot, 1);
    let after = at.saturating_sub(killed_at);
    println!(
        "the line skipped a SIGKILLed waiter {after} ms after the kill (ticket ttl {TTL_MS} ms)"
    );
    assert!(
        after >= TTL_MS * 6 / 10,
        "the next waiter went ahead of a live ticket ({after} ms after the kill)"
    );
}

struct Race {
    spec: String,
    lock: String,
    log: PathBuf,
}

impl Race {
    fn new(spec: String, dir: &Path) -> Self {
        Race {
            spec,
            lock: unique_name("multiprocess"),
            log: dir.join(format!("{}.log", uuid::Uuid::new_v4())),
        }
    }

    /// Waits (at most 60 s) until at least `count` critical sections have
    /// begun in the hold log and returns their begin lines; `what` is the
    /// failure message.
    fn begins(&self, count: usize, what: &str) -> Vec<HoldEvent> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let begun: Vec<HoldEvent> = read_hold_log(&self.log)
                .unwrap_or_default()
                .into_iter()
                .filter(|e| e.kind == HoldKind::Begin)
                .collect();
            if begun.len() >= count {
                return begun;
            }
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The command line of a child process (not started yet).
    fn command(&self, id: &str, rounds: usize, ttl_ms: u64) -> Command {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--ignored",
            "--exact",
            "child_worker",
            "--test-threads=1",
            "--quiet",
        ])
        .env("SHYLOCK_CHILD_BACKEND", &self.spec)
        .env("SHYLOCK_CHILD_ID", id)
        .env("SHYLOCK_CHILD_ROUNDS", rounds.to_string())
        .env("SHYLOCK_CHILD_TTL_MS", ttl_ms.to_string())
        .env("SHYLOCK_CHILD_LOG", &self.log)
        .env("SHYLOCK_CHILD_LOCK", &self.lock)
        .stdout(Stdio::null());
        cmd
    }
}

/// M processes × K rounds: no overlap, tokens increase, every round ran.
async fn processes_never_overlap(spec: String, dir: &Path) {
    const PROCESSES: usize = 4;
    const ROUNDS: usize = 15;
    let race = Race::new(spec, dir);
    let children = (0..PROCESSES)
        .map(|i| {
            race.command(&format!("p{i}"), ROUNDS, 10_000)
                .spawn()
                .unwrap()
        })
        .collect();
    wait_all(children, Duration::from_secs(120));
    let events = read_hold_log(&race.log).unwrap();
    let report = check_hold_log(&events, &[]);
    assert_eq!(report.acquisitions, PROCESSES * ROUNDS, "{report:?}");
    assert!(report.is_exclusive(), "{report:?}");
}

/// What a killed holder held: the lock, or a permit of a 3-permit
/// semaphore (two more holders keep the other two permits meanwhile).
#[derive(Clone, Copy, Debug)]
enum Kind {
    Lock,
    Permit,
}

impl Kind {
    const PERMITS: u32 = 3;

    /// A child of `race` that takes one lease of this kind (and with
    /// `hold_forever` never gives it back).
    fn spawn(self, race: &Race, id: &str, ttl_ms: u64, hold_forever: bool) -> Child {
        let mut cmd = race.command(id, 1, ttl_ms);
        if let Kind::Permit = self {
            cmd.env("SHYLOCK_CHILD_PERMITS", Self::PERMITS.to_string());
        }
        if hold_forever {
            cmd.env("SHYLOCK_CHILD_HOLD_FOREVER", "1");
        }
        cmd.spawn().unwrap()
    }

    /// How many holders there are before the kill, the victim included.
    fn holders(self) -> usize {
        match self {
            Kind::Lock => 1,
            Kind::Permit => Self::PERMITS as usize,
        }
    }

    /// When the lease with `token` of `name` expires, as the store says.
    async fn expiry(self, backend: SharedBackend, name: &str, token: u64) -> SystemTime {
        match self {
            Kind::Lock => {
                AsyncLock::with_backend(name, backend)
                    .inspect()
                    .await
                    .unwrap()
                    .expect("the killed holder's lock vanished at once")
                    .expires_at
            }
            Kind::Permit => {
                AsyncSemaphore::with_backend(name, Self::PERMITS, backend)
                    .inspect()
                    .await
                    .unwrap()
                    .holders
                    .iter()
                    .find(|h| h.fencing_token == token)
                    .expect("the killed holder's permit vanished at once")
                    .expires_at
            }
        }
    }
}

/// A holder killed with SIGKILL keeps its lease (the lock, or its permit
/// while the other permits stay held) until the lease expires, then
/// another process gets it: not earlier, and not never.
async fn killed_holder_frees_after_ttl(kind: Kind, spec: String, dir: &Path) {
    const TTL_MS: u64 = 1500;
    let race = Race::new(spec.clone(), dir);
    let mut victim = kind.spawn(&race, "victim", TTL_MS, true);
    let others: Vec<Child> = (1..kind.holders())
        .map(|i| kind.spawn(&race, &format!("h{i}"), TTL_MS, true))
        .collect();
    let begun = race.begins(
        kind.holders(),
        &format!("the holders never got their {kind:?} leases"),
    );
    let victim_token = begun
        .iter()
        .find(|e| e.worker == "victim")
        .unwrap()
        .fencing_token;
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    // With its process gone nothing renews the lease: its expiry is final.
    let backend = backend_from_spec(&spec).await;
    let expires_at = kind.expiry(backend, &race.lock, victim_token).await;
    let survivor = kind.spawn(&race, "survivor", TTL_MS, false);
    wait_all(vec![survivor], Duration::from_secs(30));
    let events = read_hold_log(&race.log).unwrap();
    let takeover = events
        .iter()
        .find(|e| e.worker == "survivor" && e.kind == HoldKind::Begin)
        .expect("the survivor never got the killed holder's lease");
    let takeover_at = SystemTime::UNIX_EPOCH + Duration::from_millis(takeover.at_ms);
    // The log has ms resolution; allow that much.
    assert!(
        takeover_at + Duration::from_millis(1) >= expires_at,
        "{kind:?} taken over before the killed holder's lease expired"
    );
    let late = takeover_at.duration_since(expires_at).unwrap_or_default();
    assert!(
        late < Duration::from_secs(10),
        "takeover came {late:?} after expiry"
    );
    assert!(takeover.fencing_token > victim_token);
    if let Kind::Lock = kind {
        let report = check_hold_log(&events, &["victim"]);
        assert!(report.is_exclusive(), "{report:?}");
        assert_eq!(report.acquisitions, 2);
    }
    for mut other in others {
        other.kill().unwrap();
        other.wait().unwrap();
    }
}

/// A holder process paused with SIGSTOP past its ttl: another process
/// takes the lock (with a greater token); resumed, the holder reports the
/// lock lost and its release is `LockLost`, and the new holder keeps it.
async fn paused_holder_learns_it_lost(spec: String, dir: &Path) {
    const TTL_MS: u64 = 1500;
    let race = Race::new(spec.clone(), dir);
    let result = dir.join(format!("{}.result", uuid::Uuid::new_v4()));
    let mut cmd = race.command("paused", 1, TTL_MS);
    cmd.env("SHYLOCK_CHILD_MODE", "until-lost")
        .env("SHYLOCK_CHILD_RESULT", &result);
    let holder = cmd.spawn().unwrap();
    let first_token = race.begins(1, "the holder never got the lock")[0].fencing_token;
    signal(holder.id(), "STOP");
    let backend = backend_from_spec(&spec).await;
    let lock = AsyncLock::with_backend(race.lock.clone(), backend)
        .with_options(LockOptions::default().ttl(Duration::from_secs(30)));
    let taken = lock
        .acquire_timeout(Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the paused holder's lock never expired");
    assert!(taken.fencing_token() > first_token);
    signal(holder.id(), "CONT");
    wait_all(vec![holder], Duration::from_secs(60));
    let outcome = std::fs::read_to_string(&result).unwrap();
    assert_eq!(outcome, "lost; release: LockLost");
    assert!(!taken.is_lost());
    assert!(
        lock.is_locked().await.unwrap(),
        "the late release freed the new holder's lock"
    );
    taken.release().await.unwrap();
}

/// Three candidate processes: the leader is killed with SIGKILL, then the
/// next leader is paused with SIGSTOP past its ttl and resumed. Never two
/// leaders at once (history-checked), terms strictly increase, failover
/// within the ttl plus a backoff step (and scheduling), and the resumed
/// leader's work is cancelled instead of going on.
async fn candidates_never_lead_at_once(spec: String, dir: &Path) {
    const TTL_MS: u64 = 1500;
    let label = label_of(&spec);
    let race = Race::new(spec, dir);
    let mut children: Vec<(String, Child)> = (0..3)
        .map(|i| {
            let id = format!("c{i}");
            let mut cmd = race.command(&id, 0, TTL_MS);
            cmd.env("SHYLOCK_CHILD_MODE", "candidate");
            (id, cmd.spawn().unwrap())
        })
        .collect();
    let wait_begin = |count: usize, what: &str| race.begins(count, what)[count - 1].clone();
    let first = wait_begin(1, "nobody was elected");
    let pid_of = |children: &Vec<(String, Child)>, id: &str| {
        children.iter().find(|(c, _)| c == id).unwrap().1.id()
    };
    // SIGKILL the leader.
    let killed_ms = unix_ms(SystemTime::now());
    let index = children
        .iter()
        .position(|(c, _)| *c == first.worker)
        .unwrap();
    let (_, mut victim) = children.remove(index);
    victim.kill().unwrap();
    victim.wait().unwrap();
    let second = wait_begin(2, "nobody took over from the killed leader");
    let failover = Duration::from_millis(second.at_ms.saturating_sub(killed_ms));
    println!(
        "election {label}: failover after kill -9 of the leader: {failover:?} (ttl {TTL_MS} ms)"
    );
    assert!(
        failover <= Duration::from_millis(TTL_MS + 50 + 1500),
        "failover took {failover:?}"
    );
    assert!(second.fencing_token > first.fencing_token);
    // SIGSTOP the new leader past its ttl.
    signal(pid_of(&children, &second.worker), "STOP");
    let stopped_ms = unix_ms(SystemTime::now());
    let third = wait_begin(3, "nobody took over from the paused leader");
    assert_ne!(third.worker, second.worker);
    assert!(third.fencing_token > second.fencing_token);
    signal(pid_of(&children, &second.worker), "CONT");
    // Resumed, the old leader's work is cancelled (its end line comes).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !read_hold_log(&race.log)
        .unwrap_or_default()
        .iter()
        .any(|e| e.kind == HoldKind::End && e.worker == second.worker && e.at_ms >= stopped_ms)
    {
        assert!(
            Instant::now() < deadline,
            "the resumed leader's work was not cancelled"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    for (_, mut child) in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    // What the paused leader wrote after the pause is late by definition
    // (fenced by its lower term): drop it, and count it as crashed there.
    let events: Vec<_> = read_hold_log(&race.log)
        .unwrap()
        .into_iter()
        .filter(|e| !(e.worker == second.worker && e.at_ms >= stopped_ms))
        .collect();
    let report = check_hold_log(&events, &[&first.worker, &second.worker]);
    assert!(report.is_exclusive(), "{report:?}");
    assert!(report.acquisitions >= 3);
}

/// A holder whose SIGTERM handler calls `release_all`: another process
/// takes the lock at once, not after the 30 s ttl.
async fn sigterm_releases_at_once(spec: String, dir: &Path) {
    let race = Race::new(spec.clone(), dir);
    let result = dir.join(format!("{}.result", uuid::Uuid::new_v4()));
    let mut cmd = race.command("holder", 1, 30_000);
    cmd.env("SHYLOCK_CHILD_MODE", "sigterm")
        .env("SHYLOCK_CHILD_RESULT", &result);
    let holder = cmd.spawn().unwrap();
    race.begins(1, "the holder never got the lock");
    let backend = backend_from_spec(&spec).await;
    let lock = AsyncLock::with_backend(race.lock.clone(), backend);
    assert!(lock.try_acquire().await.unwrap().is_none());
    let sent = Instant::now();
    signal(holder.id(), "TERM");
    let taken = lock
        .acquire_timeout(Duration::from_secs(20))
        .await
        .unwrap()
        .expect("the lock was not freed by the SIGTERM handler");
    let took = sent.elapsed();
    println!("SIGTERM -> release_all -> taken by another process: {took:?} (ttl 30 s)");
    assert!(took < Duration::from_secs(20));
    wait_all(vec![holder], Duration::from_secs(30));
    assert_eq!(
        std::fs::read_to_string(&result).unwrap(),
        "released=1 lost=true"
    );
    taken.release().await.unwrap();
}

fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Soak: processes × tasks × 16 names for `SHYLOCK_SOAK_SECS` (default
/// 20 s; set it higher for a long run). Every name's history is checked:
/// no overlaps, fencing tokens strictly increasing. Prints p50/p99 of the
/// time `acquire()` took.
async fn soak(spec: String, dir: &Path) {
    const PROCESSES: usize = 3;
    const TASKS: usize = 4;
    const NAMES: usize = 16;
    let secs: u64 = std::env::var("SHYLOCK_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let logs = dir.join(format!("soak-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&logs).unwrap();
    let label = label_of(&spec);
    let race = Race::new(spec, dir);
    let children = (0..PROCESSES)
        .map(|p| {
            let mut cmd = race.command(&format!("p{p}"), 0, 0);
            cmd.env("SHYLOCK_CHILD_MODE", "soak")
                .env("SHYLOCK_CHILD_TASKS", TASKS.to_string())
                .env("SHYLOCK_SOAK_NAMES", NAMES.to_string())
                .env("SHYLOCK_SOAK_SECS", secs.to_string())
                .env("SHYLOCK_CHILD_LOG", &logs);
            cmd.spawn().unwrap()
        })
        .collect();
    wait_all(children, Duration::from_secs(secs + 120));
    let mut waits = Vec::new();
    let mut total = 0;
    for n in 0..NAMES {
        let events = read_hold_log(logs.join(format!("{n}.log"))).unwrap_or_default();
        let report = check_hold_log(&events, &[]);
        assert!(report.is_exclusive(), "name {n}: {report:?}");
        total += report.acquisitions;
        waits.extend(
            events
                .iter()
                .filter(|e| e.kind == HoldKind::Begin)
                .map(|e| e.waited_us),
        );
    }
    assert!(total > 0, "the soak made no acquisitions");
    waits.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    let pct = |p: usize| ms(waits[(waits.len() * p / 100).min(waits.len() - 1)]);
    println!(
        "soak {label}: {PROCESSES} processes x {TASKS} tasks x {NAMES} names for {secs} s: \
         {total} acquisitions, 0 overlaps, tokens increasing; acquire p50 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms",
        pct(50),
        pct(99),
        ms(waits[waits.len() - 1])
    );
}

/// 4 processes × 100 (30 over the network) random overlapping subsets of
/// 6 names as multi-locks: all finish (no deadlock), and no name ever has
/// two holders.
async fn multi_locks_never_deadlock(spec: String, dir: &Path) {
    const NAMES: usize = 6;
    let rounds = if label_of(&spec) == "sqlite" { 100 } else { 30 };
    let logs = dir.join(format!("multi-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&logs).unwrap();
    let race = Race::new(spec, dir);
    let children = (0..4)
        .map(|p| {
            let mut cmd = race.command(&format!("p{p}"), rounds, 10_000);
            cmd.env("SHYLOCK_CHILD_MODE", "multi")
                .env("SHYLOCK_SOAK_NAMES", NAMES.to_string())
                .env("SHYLOCK_CHILD_LOG", &logs);
            cmd.spawn().unwrap()
        })
        .collect();
    wait_all(children, Duration::from_secs(300));
    let mut total = 0;
    for n in 0..NAMES {
        let events = read_hold_log(logs.join(format!("{n}.log"))).unwrap_or_default();
        let report = check_hold_log(&events, &[]);
        assert!(report.is_exclusive(), "name {n}: {report:?}");
        total += report.acquisitions;
    }
    assert!(
        total >= 4 * rounds,
        "{total} name holds for {} sets",
        4 * rounds
    );
}

/// The backend a spec names (`sqlite`, `mongo`, `postgres`), for messages.
fn label_of(spec: &str) -> String {
    spec.split(':').next().unwrap_or(spec).to_owned()
}

/// One test of a scenario per backend: `$sqlite` on a lock file in a fresh
/// directory, `$mongo` (ignored: it needs `MONGODB_URI`) on a fresh
/// database, `$postgres` (ignored: it needs `POSTGRES_URL`) on fresh
/// tables. The scenario gets its `$arg`s, then the backend's spec and a
/// directory for logs.
macro_rules! on_each_backend {
    ($($sqlite:ident, $mongo:ident, $postgres:ident => $scenario:ident($($arg:expr),*);)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let (spec, dir) = sqlite_spec();
            $scenario($($arg,)* spec, &dir).await;
        }

        #[cfg(feature = "mongo")]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "needs MONGODB_URI"]
        async fn $mongo() {
            $scenario($($arg,)* mongo_spec(), &temp_dir()).await;
        }

        #[cfg(feature = "postgres")]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "needs PostgreSQL: set POSTGRES_URL"]
        async fn $postgres() {
            $scenario($($arg,)* postgres_spec(), &temp_dir()).await;
        }
    )*};
}

on_each_backend! {
    sqlite_processes_never_overlap, mongo_processes_never_overlap, postgres_processes_never_overlap
        => processes_never_overlap();
    sqlite_killed_holder_frees_after_ttl, mongo_killed_holder_frees_after_ttl, postgres_killed_holder_frees_after_ttl
        => killed_holder_frees_after_ttl(Kind::Lock);
    sqlite_killed_permit_holder_frees_after_ttl, mongo_killed_permit_holder_frees_after_ttl, postgres_killed_permit_holder_frees_after_ttl
        => killed_holder_frees_after_ttl(Kind::Permit);
    sqlite_paused_holder_learns_it_lost, mongo_paused_holder_learns_it_lost, postgres_paused_holder_learns_it_lost
        => paused_holder_learns_it_lost();
    sqlite_soak, mongo_soak, postgres_soak => soak();
    sqlite_candidates_never_lead_at_once, mongo_candidates_never_lead_at_once, postgres_candidates_never_lead_at_once
        => candidates_never_lead_at_once();
    sqlite_multi_locks_never_deadlock, mongo_multi_locks_never_deadlock, postgres_multi_locks_never_deadlock
        => multi_locks_never_deadlock();
    sqlite_fair_processes_keep_arrival_order, mongo_fair_processes_keep_arrival_order, postgres_fair_processes_keep_arrival_order
        => fair_processes_keep_arrival_order();
    sqlite_fair_semaphore_processes_keep_arrival_order, mongo_fair_semaphore_processes_keep_arrival_order, postgres_fair_semaphore_processes_keep_arrival_order
        => fair_semaphore_processes_keep_arrival_order();
    sqlite_killed_queued_waiter_is_skipped, mongo_killed_queued_waiter_is_skipped, postgres_killed_queued_waiter_is_skipped
        => killed_queued_waiter_is_skipped();
}

// SIGTERM handling is the core's, the same on every backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigterm_releases_at_once() {
    let (spec, dir) = sqlite_spec();
    sigterm_releases_at_once(spec, &dir).await;
}
