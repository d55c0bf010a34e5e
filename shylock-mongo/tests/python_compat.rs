//! Python shylock compatibility mode (`python_shylock_compat(true)`): the
//! conformance cases for single locks, the Python layout read and written,
//! and real Python `shylock` 1.2.1 processes contending with Rust processes
//! for the same names, history-checked.
//!
//! Needs `MONGODB_URI`; the interop test also `SHYLOCK_PYTHON`, a Python
//! with `shylock==1.2.1` and `pymongo` installed (scripts/test.sh installs
//! them into its cached virtualenv and runs these with `--ignored`).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shylock_core::testkit::{required_env, unique_store_name};
use shylock_core::{AsyncLock, Error, LockOptions, SharedBackend};
use shylock_mongo::mongodb::bson::{doc, DateTime, Document};
use shylock_mongo::mongodb::{options::ClientOptions, Client, Database};
use shylock_mongo::{MongoBackend, PYTHON_SHYLOCK_OWNER};

async fn database(name: &str) -> Database {
    let mut options = ClientOptions::parse(required_env("MONGODB_URI"))
        .await
        .expect("invalid MONGODB_URI");
    options.server_selection_timeout = Some(Duration::from_secs(10));
    Client::with_options(options).unwrap().database(name)
}

async fn compat_backend(db: Database) -> MongoBackend {
    MongoBackend::builder(db)
        .python_shylock_compat(true)
        .build()
        .await
        .expect("could not set up the compatible collection")
}

fn run_database() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| unique_store_name("shylock_pycompat"))
}

async fn conformance_backend() -> SharedBackend {
    compat_backend(database(run_database()).await).await.into()
}

// Single locks keep every guarantee in compatibility mode.
shylock_core::conformance_tests!(
    conformance_backend(),
    ignore = "needs MONGODB_URI",
    groups = [locks]
);

/// Read/write locks, semaphores and fair queues are refused with a clear
/// error in compatibility mode, before any document is written: their
/// documents would carry no `name`, which Python's unique index allows
/// only once.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn other_shapes_are_refused_in_compatibility_mode() {
    use shylock_core::{AsyncRwLock, AsyncSemaphore, ErrorKind};
    let backend: SharedBackend = conformance_backend().await;
    let name = shylock_core::testkit::unique_name("compat-refused");
    let rw = AsyncRwLock::with_backend(name.clone(), backend.clone());
    let refused = rw
        .try_read()
        .await
        .expect_err("read/write locks are not offered");
    assert_eq!(refused.kind(), Some(ErrorKind::Misconfigured), "{refused}");
    let refused = rw
        .try_write()
        .await
        .expect_err("read/write locks are not offered");
    assert_eq!(refused.kind(), Some(ErrorKind::Misconfigured), "{refused}");
    let semaphore = AsyncSemaphore::with_backend(name.clone(), 2, backend.clone());
    let refused = semaphore
        .try_acquire()
        .await
        .expect_err("semaphores are not offered");
    assert_eq!(refused.kind(), Some(ErrorKind::Misconfigured), "{refused}");
    let fair =
        AsyncLock::with_backend(name, backend).with_options(LockOptions::default().fair(true));
    let refused = fair
        .try_acquire()
        .await
        .expect_err("fair queues are not offered");
    assert_eq!(refused.kind(), Some(ErrorKind::Misconfigured), "{refused}");
}

/// Python's documents, written as Python shylock 1.2.1 writes them
/// (`insert_one({"name": name, "createdAt": datetime.utcnow()})`), hold the
/// name until deleted or 300 s old; Rust's hold it against Python's insert.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn python_documents_and_rust_documents_exclude_each_other() {
    let db = database(&unique_store_name("shylock_pycompat")).await;
    let backend = compat_backend(db.clone()).await;
    let coll = db.collection::<Document>("shylock");
    let lock = AsyncLock::with_backend("jobs/1", backend.clone());

    // A live Python holder.
    coll.insert_one(doc! { "name": "jobs/1", "createdAt": DateTime::now() })
        .await
        .unwrap();
    assert!(lock.try_acquire().await.unwrap().is_none());
    let info = lock.inspect().await.unwrap().expect("a Python holder");
    assert_eq!(info.owner, PYTHON_SHYLOCK_OWNER);
    assert!(info.expires_at > SystemTime::now() + Duration::from_secs(290));
    // Python releases: `delete_one({"name": name})`.
    coll.delete_one(doc! { "name": "jobs/1" }).await.unwrap();
    let guard = lock.try_acquire().await.unwrap().expect("free again");

    // Held by Rust: Python's insert is a duplicate key.
    let python_insert = coll
        .insert_one(doc! { "name": "jobs/1", "createdAt": DateTime::now() })
        .await;
    assert!(python_insert.is_err(), "Python must see the name as held");
    let stored = coll
        .find_one(doc! { "_id": "jobs/1" })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.get_str("name").unwrap(), "jobs/1");
    assert!(stored.get_datetime("createdAt").is_ok());
    guard.release().await.unwrap();
    // Released: the name is free for Python, the fence stays.
    coll.insert_one(doc! { "name": "jobs/1", "createdAt": DateTime::now() })
        .await
        .expect("Python takes a lock Rust released");
    coll.delete_one(doc! { "name": "jobs/1" }).await.unwrap();

    // A Python holder that crashed 301 s ago holds nothing.
    let old = DateTime::from_millis(DateTime::now().timestamp_millis() - 301_000);
    coll.insert_one(doc! { "name": "jobs/1", "createdAt": old })
        .await
        .unwrap();
    assert!(!lock.is_locked().await.unwrap());
    let taken = lock.try_acquire().await.unwrap();
    assert!(taken.is_some(), "a stale Python document is taken over");
    taken.unwrap().release().await.unwrap();

    // A ttl over Python's 300 s is refused.
    let long = AsyncLock::with_backend("jobs/2", backend)
        .with_options(LockOptions::default().ttl(Duration::from_secs(301)));
    assert!(matches!(
        long.try_acquire().await,
        Err(Error::InvalidOptions { .. })
    ));
    db.drop().await.unwrap();
}

const NAMES: [&str; 2] = ["interop/a", "interop/b"];
const ROUNDS: usize = 6;

const PYTHON_CONTENDER: &str = r#"
import sys, time
from pymongo import MongoClient
from shylock import Lock, ShylockPymongoBackend, configure

uri, db, who, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
names = sys.argv[5:]
configure(ShylockPymongoBackend.create(MongoClient(uri), db))
for i in range(rounds):
    name = names[i % len(names)]
    with Lock(name):
        begin = time.time_ns()
        time.sleep(0.03)
        end = time.time_ns()
    print(name, begin, end, who, flush=True)
"#;

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A Rust contender, run as a child process of
/// `python_and_rust_processes_exclude_each_other`; does nothing otherwise.
#[tokio::test]
#[ignore = "a child of the interop test"]
async fn rust_contender() {
    let Ok(role) = std::env::var("SHYLOCK_INTEROP_ROLE") else {
        return;
    };
    let db = database(&required_env("SHYLOCK_INTEROP_DB")).await;
    let backend = compat_backend(db).await;
    for i in 0..ROUNDS {
        let name = NAMES[i % NAMES.len()];
        let guard = AsyncLock::with_backend(name, backend.clone())
            .with_options(LockOptions::default().ttl(Duration::from_secs(10)))
            .acquire()
            .await
            .unwrap();
        let begin = unix_ns();
        tokio::time::sleep(Duration::from_millis(30)).await;
        let end = unix_ns();
        guard.release().await.unwrap();
        println!("HOLD {name} {begin} {end} {role}");
    }
}

#[tokio::test]
#[ignore = "needs MONGODB_URI and SHYLOCK_PYTHON (Python with shylock==1.2.1 and pymongo)"]
async fn python_and_rust_processes_exclude_each_other() {
    let uri = required_env("MONGODB_URI");
    let python = required_env("SHYLOCK_PYTHON");
    let db_name = unique_store_name("shylock_interop");
    // No side sets the collection up first: all five processes create
    // the indexes at once, each only where none on that key exists.

    let mut children = Vec::new();
    for i in 0..3 {
        let who = format!("python-{i}");
        let mut args = vec![
            "-c".to_owned(),
            PYTHON_CONTENDER.to_owned(),
            uri.clone(),
            db_name.clone(),
            who.clone(),
            ROUNDS.to_string(),
        ];
        args.extend(NAMES.iter().map(|n| n.to_string()));
        let child = tokio::process::Command::new(&python)
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("could not run SHYLOCK_PYTHON");
        children.push((who, child));
    }
    for i in 0..2 {
        let who = format!("rust-{i}");
        let child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "rust_contender", "--nocapture"])
            .env("SHYLOCK_INTEROP_ROLE", &who)
            .env("SHYLOCK_INTEROP_DB", &db_name)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        children.push((who, child));
    }

    // Children still running when this times out are killed as they drop.
    let outputs =
        futures_util::future::join_all(children.into_iter().map(|(who, child)| async move {
            let out = child.wait_with_output().await.unwrap();
            assert!(out.status.success(), "{who} failed: {:?}", out.status);
            (who, String::from_utf8(out.stdout).unwrap())
        }));
    let outputs = tokio::time::timeout(Duration::from_secs(180), outputs)
        .await
        .expect("the contenders did not finish in 180 s");

    let mut holds: HashMap<String, Vec<(u128, u128, String)>> = HashMap::new();
    for (who, stdout) in &outputs {
        let mut served = 0;
        for line in stdout.lines() {
            let line = line.strip_prefix("HOLD ").unwrap_or(line);
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.len() != 4 || !NAMES.contains(&parts[0]) {
                continue;
            }
            served += 1;
            holds.entry(parts[0].to_owned()).or_default().push((
                parts[1].parse().unwrap(),
                parts[2].parse().unwrap(),
                parts[3].to_owned(),
            ));
        }
        assert_eq!(served, ROUNDS, "{who} was served every round");
    }
    for (name, mut h) in holds {
        h.sort();
        for pair in h.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "{name}: {} held until {} but {} began at {}",
                pair[0].2,
                pair[0].1,
                pair[1].2,
                pair[1].0
            );
        }
        let python = h.iter().filter(|x| x.2.starts_with("python")).count();
        println!(
            "{name}: {} holds without overlap ({python} by Python, {} by Rust)",
            h.len(),
            h.len() - python
        );
    }
    database(&db_name).await.drop().await.unwrap();
}
