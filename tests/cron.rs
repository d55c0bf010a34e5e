//! The README's cron program (`examples/cron.rs`) run as a user runs it: a
//! whole process, 20 times in a row against one store. After every exit the
//! lock must be free, so every run does the job instead of skipping it, both
//! with the scoped `try_run` and with a guard simply dropped on the last
//! line of `main`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use shylock::{AsyncLock, SharedBackend};

const RUNS: usize = 20;

/// The features this test was built with, so building the example reuses
/// the same build of the library.
fn features() -> Vec<&'static str> {
    let mut features = vec!["sqlite"];
    if cfg!(feature = "mongo") {
        features.push("mongo");
    }
    if cfg!(feature = "arango") {
        features.push("arango");
    }
    if cfg!(feature = "macros") {
        features.push("macros");
    }
    if cfg!(feature = "testkit") {
        features.push("testkit");
    }
    if cfg!(feature = "metrics") {
        features.push("metrics");
    }
    if cfg!(feature = "bench") {
        features.push("bench");
    }
    features
}

/// The example binary, built (once per test binary) beside this one.
fn example() -> &'static PathBuf {
    static EXAMPLE: OnceLock<PathBuf> = OnceLock::new();
    EXAMPLE.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--example",
                "cron",
                "--no-default-features",
            ])
            .args(["--features", &features().join(",")])
            .arg("--manifest-path")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .status()
            .expect("could not run cargo to build the cron example");
        assert!(status.success(), "building the cron example failed");
        // This test runs from target/<profile>/deps/; examples are built
        // into target/<profile>/examples/.
        let profile_dir = std::env::current_exe()
            .unwrap()
            .parent()
            .and_then(|deps| deps.parent())
            .unwrap()
            .to_path_buf();
        let path = profile_dir
            .join("examples")
            .join(format!("cron{}", std::env::consts::EXE_SUFFIX));
        assert!(path.exists(), "no cron example at {}", path.display());
        path
    })
}

/// Runs the example `RUNS` times against `store` (the guard dropped when
/// `mode` is `drop`) and checks, after each exit, that it did the job and
/// left the lock free.
async fn run_cron(store: &str, mode: Option<&str>, env: &[(&str, &str)], backend: SharedBackend) {
    let lock = AsyncLock::with_backend("nightly-report", backend);
    for run in 1..=RUNS {
        let output = Command::new(example())
            .arg(store)
            .args(mode)
            .envs(env.iter().copied())
            .output()
            .expect("could not start the cron example");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "run {run}/{RUNS} failed ({}):\n{stdout}{stderr}",
            output.status
        );
        assert!(
            stdout.contains("ran nightly-report"),
            "run {run}/{RUNS} skipped the job, so the run before it left the lock held:\n{stdout}{stderr}"
        );
        assert!(
            !lock.is_locked().await.unwrap(),
            "run {run}/{RUNS} ({mode:?}) exited with nightly-report still locked"
        );
    }
}

fn sqlite_store(tag: &str) -> (String, SharedBackend) {
    let dir = std::env::temp_dir().join(format!("shylock-cron-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("locks.db");
    let backend = shylock::SqliteBackend::open(&path).unwrap().into();
    (format!("sqlite:{}", path.display()), backend)
}

#[tokio::test]
async fn sqlite_try_run_frees_the_lock_on_every_exit() {
    let (store, backend) = sqlite_store("try-run");
    run_cron(&store, None, &[], backend).await;
}

#[tokio::test]
async fn sqlite_guard_dropped_at_end_of_main_frees_the_lock_on_every_exit() {
    let (store, backend) = sqlite_store("drop");
    run_cron(&store, Some("drop"), &[], backend).await;
}

#[cfg(feature = "mongo")]
mod mongo {
    use super::*;

    async fn mongo_store() -> (String, String, SharedBackend) {
        let uri = std::env::var("MONGODB_URI")
            .expect("the MongoDB cron tests need MONGODB_URI (scripts/test.sh sets it)");
        let database = format!("cron_{}", uuid::Uuid::new_v4().simple());
        let backend = shylock::MongoBackend::connect(&uri, &database)
            .await
            .unwrap()
            .into();
        (uri, database, backend)
    }

    #[tokio::test]
    #[ignore = "needs MONGODB_URI"]
    async fn mongo_try_run_frees_the_lock_on_every_exit() {
        let (uri, database, backend) = mongo_store().await;
        run_cron(&uri, None, &[("CRON_DATABASE", &database)], backend).await;
    }

    #[tokio::test]
    #[ignore = "needs MONGODB_URI"]
    async fn mongo_guard_dropped_at_end_of_main_frees_the_lock_on_every_exit() {
        let (uri, database, backend) = mongo_store().await;
        run_cron(&uri, Some("drop"), &[("CRON_DATABASE", &database)], backend).await;
    }
}

/// A guard dropped as its runtime ends, as at the end of a
/// `#[tokio::test]`, frees its lock: 20 rounds, each on a runtime of its
/// own that ends right after the drop, and the next round (another
/// runtime, another backend handle on the same file) takes the lock.
#[test]
fn sqlite_guard_dropped_as_a_test_runtime_ends_frees_the_lock() {
    let (store, _) = sqlite_store("test-runtime");
    let path = store.strip_prefix("sqlite:").unwrap().to_owned();
    for round in 1..=RUNS {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let path = path.clone();
        runtime.block_on(async move {
            let backend = shylock::SqliteBackend::open(&path).unwrap();
            let guard = AsyncLock::with_backend("end-of-test", backend)
                .try_acquire()
                .await
                .unwrap();
            assert!(guard.is_some(), "round {round}: the lock was still held");
            // The guard is dropped here, and the runtime ends with the block.
        });
        drop(runtime);
    }
}
