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

use shylock::{AsyncLock, LockOptions, SharedBackend};
use shylock_core::testkit::{
    check_hold_log, read_hold_log, required_env, unique_name, unique_store_name, HoldKind, HoldLog,
};

/// Builds the backend named by `spec` (`sqlite:<path>` or `mongo:<uri>|<db>`).
async fn backend_from_spec(spec: &str) -> SharedBackend {
    if let Some(path) = spec.strip_prefix("sqlite:") {
        return shylock::SqliteBackend::open(path).unwrap().into();
    }
    #[cfg(feature = "mongo")]
    if let Some(rest) = spec.strip_prefix("mongo:") {
        let (uri, db) = rest.split_once('|').unwrap();
        let client = shylock::mongo::mongodb::Client::with_uri_str(uri)
            .await
            .unwrap();
        return shylock::MongoBackend::builder(client.database(db))
            .build()
            .await
            .unwrap()
            .into();
    }
    panic!("unknown backend spec {spec:?}")
}

#[tokio::test]
#[ignore = "entry point of the child processes started by the other tests in this file"]
async fn child_worker() {
    let Ok(spec) = std::env::var("SHYLOCK_CHILD_BACKEND") else {
        eprintln!("child_worker does nothing on its own: the multi-process tests start it");
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap();
    let id = var("SHYLOCK_CHILD_ID");
    let rounds: usize = var("SHYLOCK_CHILD_ROUNDS").parse().unwrap();
    let ttl = Duration::from_millis(var("SHYLOCK_CHILD_TTL_MS").parse().unwrap());
    let hold_forever = std::env::var("SHYLOCK_CHILD_HOLD_FOREVER").is_ok();
    let backend = backend_from_spec(&spec).await;
    let mut log = HoldLog::open(var("SHYLOCK_CHILD_LOG")).unwrap();
    let lock = AsyncLock::with_backend(var("SHYLOCK_CHILD_LOCK"), backend).with_options(
        LockOptions::default()
            .ttl(ttl)
            .backoff(Duration::from_millis(1), Duration::from_millis(50)),
    );
    for _ in 0..rounds {
        let started = Instant::now();
        let guard = lock.acquire().await.unwrap();
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

    fn spawn(&self, id: &str, rounds: usize, ttl_ms: u64, hold_forever: bool) -> Child {
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
        if hold_forever {
            cmd.env("SHYLOCK_CHILD_HOLD_FOREVER", "1");
        }
        cmd.spawn().unwrap()
    }
}

fn wait_all(children: Vec<Child>, limit: Duration) {
    let deadline = Instant::now() + limit;
    for mut child in children {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                if !status.success() {
                    let output = child.wait_with_output().unwrap();
                    panic!(
                        "a worker process failed: {status}\n{}{}",
                        String::from_utf8_lossy(&output.stdout),
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("a worker process did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// M processes × K rounds: no overlap, tokens increase, every round ran.
async fn processes_never_overlap(spec: String, dir: &Path) {
    const PROCESSES: usize = 4;
    const ROUNDS: usize = 15;
    let race = Race::new(spec, dir);
    let children = (0..PROCESSES)
        .map(|i| race.spawn(&format!("p{i}"), ROUNDS, 10_000, false))
        .collect();
    wait_all(children, Duration::from_secs(120));
    let events = read_hold_log(&race.log).unwrap();
    let report = check_hold_log(&events, &[]);
    assert_eq!(report.acquisitions, PROCESSES * ROUNDS, "{report:?}");
    assert!(report.is_exclusive(), "{report:?}");
}

/// A holder killed with SIGKILL keeps the lock until its lease expires,
/// then another process gets it: not earlier, and not never.
async fn killed_holder_frees_after_ttl(spec: String, dir: &Path) {
    const TTL_MS: u64 = 1500;
    let race = Race::new(spec.clone(), dir);
    let mut victim = race.spawn("victim", 1, TTL_MS, true);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !read_hold_log(&race.log)
        .map(|e| e.iter().any(|e| e.kind == HoldKind::Begin))
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "the victim never got the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    let backend = backend_from_spec(&spec).await;
    let lock = AsyncLock::with_backend(race.lock.clone(), backend);
    // With its process gone nothing renews the lease: its expiry is final.
    let expires_at = lock
        .inspect()
        .await
        .unwrap()
        .expect("the killed holder's lock vanished at once")
        .expires_at;
    let survivor = race.spawn("survivor", 1, TTL_MS, false);
    wait_all(vec![survivor], Duration::from_secs(30));
    let events = read_hold_log(&race.log).unwrap();
    let takeover = events
        .iter()
        .find(|e| e.worker == "survivor" && e.kind == HoldKind::Begin)
        .expect("the survivor never got the lock");
    let takeover_at = SystemTime::UNIX_EPOCH + Duration::from_millis(takeover.at_ms);
    // The log has ms resolution; allow that much.
    assert!(
        takeover_at + Duration::from_millis(1) >= expires_at,
        "lock taken over before the killed holder's lease expired"
    );
    let late = takeover_at.duration_since(expires_at).unwrap_or_default();
    assert!(
        late < Duration::from_secs(10),
        "takeover came {late:?} after expiry"
    );
    let report = check_hold_log(&events, &["victim"]);
    assert!(report.is_exclusive(), "{report:?}");
    assert_eq!(report.acquisitions, 2);
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shylock-mp-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_processes_never_overlap() {
    let dir = temp_dir();
    let spec = format!("sqlite:{}", dir.join("locks.db").display());
    processes_never_overlap(spec, &dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_holder_frees_after_ttl() {
    let dir = temp_dir();
    let spec = format!("sqlite:{}", dir.join("locks.db").display());
    killed_holder_frees_after_ttl(spec, &dir).await;
}

/// `mongo:<uri>|<db>` for a fresh database; panics when no server is
/// configured (these tests are `#[ignore]`d and run only when one is).
#[cfg(feature = "mongo")]
fn mongo_spec() -> String {
    let uri = required_env("MONGODB_URI");
    format!("mongo:{uri}|{}", unique_store_name("shylock_mp"))
}

#[cfg(feature = "mongo")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MONGODB_URI"]
async fn mongo_processes_never_overlap() {
    processes_never_overlap(mongo_spec(), &temp_dir()).await;
}

#[cfg(feature = "mongo")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MONGODB_URI"]
async fn mongo_killed_holder_frees_after_ttl() {
    killed_holder_frees_after_ttl(mongo_spec(), &temp_dir()).await;
}
