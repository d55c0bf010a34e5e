//! The `shylock` binary run as an operator runs it, against locks held by
//! another process (this test process, through the library): SQLite always,
//! the ArangoDB fake server always, MongoDB with `MONGODB_URI`, PostgreSQL
//! with `POSTGRES_URL`, and the terminal screens in tmux.

#[path = "../../shylock-arango/tests/fake/mod.rs"]
mod fake;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use shylock::{AsyncLock, AsyncSemaphore, Error, LockOptions, SharedBackend, SqliteBackend};
use shylock_core::testkit::{required_env, unique_store_name};

/// The binary with a clean environment: no store from the caller's shell.
fn shylock(store: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shylock"));
    command
        .env_remove("SHYLOCK_STORE")
        .env_remove("SHYLOCK_DATABASE")
        .env_remove("SHYLOCK_COLLECTION")
        .env_remove("ARANGO_PASSWORD")
        .stdin(Stdio::null());
    if !store.is_empty() {
        command.args(["--store", store]);
    }
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the shylock binary runs");
    (
        status.code().expect("exited, not killed"),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A lock file in a fresh directory, and a backend on it.
fn sqlite_store() -> (PathBuf, SharedBackend) {
    let dir = std::env::temp_dir().join(unique_store_name("shylock-cli"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("locks.db");
    let backend = SqliteBackend::open(&path).unwrap();
    (path, backend.into())
}

/// Waits until `check` passes or `limit` runs out.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// list, inspect and release on any store, with locks held here.
async fn operate_on(store: &str, backend: SharedBackend, extra: &[&str], env: &[(&str, &str)]) {
    let base = || {
        let mut c = shylock(store);
        c.args(extra).envs(env.iter().copied());
        c
    };
    let a = AsyncLock::with_backend("jobs/a", backend.clone())
        .acquire()
        .await
        .unwrap();
    let b = AsyncLock::with_backend("jobs/b", backend.clone())
        .acquire()
        .await
        .unwrap();
    let other = AsyncLock::with_backend("other", backend.clone())
        .acquire()
        .await
        .unwrap();

    // list: a table for people, JSON for scripts; no colour when piped.
    let (code, out, err) = run(base().arg("list"));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("NAME"), "{out}");
    for guard in [&a, &b, &other] {
        assert!(
            out.contains(guard.name()) && out.contains(guard.owner()),
            "{out}"
        );
    }
    assert!(!out.contains('\x1b'), "no escape codes when piped: {out:?}");
    let (code, out, _) = run(base().args(["list", "jobs/", "--json"]));
    assert_eq!(code, 0);
    let rows = json(&out);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(rows[0]["name"], "jobs/a");
    assert_eq!(rows[0]["owner"], a.owner());
    assert_eq!(rows[0]["fencing_token"], a.fencing_token());
    assert!(rows[1]["expires_in_ms"].as_u64().unwrap() > 20_000);
    let (code, out, _) = run(base().args(["list", "nothing/"]));
    assert_eq!((code, out.trim()), (0, "no locks held under \"nothing/\""));

    // inspect: 0 when held, 1 when not.
    let (code, out, _) = run(base().args(["inspect", "jobs/b"]));
    assert_eq!(code, 0);
    assert!(out.contains(b.owner()) && out.contains(&b.fencing_token().to_string()));
    let (code, out, err) = run(base().args(["inspect", "jobs/none", "--json"]));
    assert_eq!(code, 1);
    assert_eq!(json(&out)["held"], false);
    assert!(err.contains("jobs/none is not held"), "{err}");
    let (code, _, err) = run(base().args(["inspect", ""]));
    assert_eq!(code, 2, "an invalid name is a usage error: {err}");

    // inspect --rwlock: readers and writer of a read/write lock.
    let rw = shylock::AsyncRwLock::with_backend("rw/cache", backend.clone());
    let (r1, r2) = (rw.read().await.unwrap(), rw.read().await.unwrap());
    let (code, out, err) = run(base().args(["inspect", "rw/cache", "--rwlock"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("2 readers") && out.contains(r1.owner()),
        "{out}"
    );
    let (code, out, _) = run(base().args(["inspect", "rw/cache", "--rwlock", "--json"]));
    assert_eq!(code, 0);
    assert_eq!(json(&out)["readers"].as_array().unwrap().len(), 2, "{out}");
    assert_eq!(json(&out)["writer"], Value::Null, "{out}");
    r1.release().await.unwrap();
    r2.release().await.unwrap();
    let (code, _, err) = run(base().args(["inspect", "rw/cache", "--rwlock"]));
    assert_eq!(code, 1, "nobody holds it: {err}");

    // release: needs --force, and --yes off a terminal; then frees exactly
    // the holder it showed.
    let (code, _, err) = run(base().args(["release", "jobs/a"]));
    assert_eq!(code, 2);
    assert!(err.contains("--force"), "{err}");
    let (code, _, err) = run(base().args(["release", "jobs/a", "--force"]));
    assert_eq!(code, 2);
    assert!(err.contains("--yes"), "{err}");
    assert!(AsyncLock::with_backend("jobs/a", backend.clone())
        .is_locked()
        .await
        .unwrap());
    let (code, out, err) = run(base().args(["release", "jobs/a", "--force", "--yes"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(a.owner()) && out.contains(&a.fencing_token().to_string()),
        "says who held it: {out}"
    );
    let next = AsyncLock::with_backend("jobs/a", backend.clone())
        .try_acquire()
        .await
        .unwrap()
        .expect("free after release --force");
    assert!(next.fencing_token() > a.fencing_token());
    assert!(matches!(a.release().await, Err(Error::LockLost { .. })));
    let (code, out, _) = run(base().args(["release", "jobs/none", "--force", "--yes", "--json"]));
    assert_eq!(code, 1);
    assert_eq!(json(&out)["released"], false);

    for guard in [next, b, other] {
        guard.release().await.unwrap();
    }
    every_kind(&base, backend).await;
}

/// The label of an owner token (`host:pid` by default).
fn label(owner: &str) -> &str {
    owner.rsplit_once(':').unwrap().0
}

/// `list` and `inspect` show semaphores and lines of waiters too, and
/// holders by their label.
async fn every_kind(base: &dyn Fn() -> Command, backend: SharedBackend) {
    let sem = AsyncSemaphore::with_backend("kinds/pool", 3, backend.clone());
    let p1 = sem.acquire().await.unwrap();
    let worker = LockOptions::default().owner_label("worker-7");
    let p2 = sem.clone().with_options(worker).acquire().await.unwrap();
    assert_eq!(label(p2.owner()), "worker-7");
    let fair = AsyncLock::with_backend("kinds/queue", backend.clone())
        .with_options(LockOptions::default().fair(true));
    let holder = fair.acquire().await.unwrap();
    let t1 = fair.enqueue().await.unwrap();
    let t2 = fair.enqueue().await.unwrap();

    let (code, out, err) = run(base().args(["list", "kinds/"]));
    assert_eq!(code, 0, "{err}");
    let this_process = label(p1.owner());
    assert!(
        this_process.ends_with(&format!(":{}", std::process::id())),
        "the default label is host:pid: {this_process}"
    );
    for expected in [
        "kinds/queue", // the held lock
        "SEMAPHORE",
        "kinds/pool",
        "2/3",
        "worker-7",
        this_process,
        "QUEUE",
    ] {
        assert!(out.contains(expected), "list lacks {expected:?}:\n{out}");
    }
    let queue_row = out.lines().last().unwrap();
    assert!(
        queue_row.starts_with("kinds/queue") && queue_row.trim_end().ends_with(" 2"),
        "{out}"
    );
    let (code, out, _) = run(base().args(["list", "kinds/", "--json"]));
    assert_eq!(code, 0);
    let rows = json(&out);
    let of = |kind: &str| -> Vec<Value> {
        let rows = rows.as_array().unwrap().iter();
        rows.filter(|r| r["kind"] == kind).cloned().collect()
    };
    assert_eq!(of("lock").len(), 1, "{out}");
    assert_eq!(of("lock")[0]["holder"], this_process);
    let semaphores = of("semaphore");
    assert_eq!(semaphores.len(), 1, "{out}");
    assert_eq!(
        (
            semaphores[0]["used"].as_u64(),
            semaphores[0]["permits"].as_u64()
        ),
        (Some(2), Some(3))
    );
    let queues = of("queue");
    assert_eq!(queues.len(), 1, "{out}");
    assert_eq!(
        (queues[0]["name"].as_str(), queues[0]["waiting"].as_u64()),
        (Some("kinds/queue"), Some(2))
    );

    // inspect finds each kind by name.
    let (code, out, _) = run(base().args(["inspect", "kinds/queue"]));
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("held by:       {this_process}")),
        "{out}"
    );
    assert!(out.contains("waiting:       2 in line"), "{out}");
    let (code, out, _) = run(base().args(["inspect", "kinds/queue", "--json"]));
    assert_eq!(code, 0);
    assert_eq!(json(&out)["waiting"], 2);
    let (code, out, _) = run(base().args(["inspect", "kinds/pool"]));
    assert_eq!(code, 0);
    assert!(
        out.starts_with("semaphore kinds/pool: 2 of 3 permits held"),
        "{out}"
    );
    assert!(out.contains(p2.owner()), "{out}");

    // Waiters in line with nobody holding the lock (a moment between two
    // holders) are told apart from nothing at all.
    holder.release().await.unwrap();
    let (code, _, err) = run(base().args(["inspect", "kinds/queue"]));
    assert_eq!(code, 1);
    assert!(err.contains("2 waiting in line"), "{err}");
    assert!(t1.leave().await.unwrap() && t2.leave().await.unwrap());
    p1.release().await.unwrap();
    p2.release().await.unwrap();
    let (code, out, _) = run(base().args(["list", "kinds/"]));
    assert_eq!((code, out.trim()), (0, "no locks held under \"kinds/\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_list_inspect_and_release() {
    let (path, backend) = sqlite_store();
    operate_on(
        &format!("sqlite:{}", path.display()),
        backend.clone(),
        &[],
        &[],
    )
    .await;

    // A semaphore's holders.
    let sem = AsyncSemaphore::with_backend("pool", 3, backend);
    let p1 = sem.acquire().await.unwrap();
    let p2 = sem.acquire().await.unwrap();
    let store = format!("sqlite:{}", path.display());
    let (code, out, _) = run(shylock(&store).args(["inspect", "pool", "--semaphore", "--json"]));
    assert_eq!(code, 0);
    let info = json(&out);
    assert_eq!(info["permits"], 3);
    assert_eq!(info["holders"].as_array().unwrap().len(), 2);
    let (code, out, _) = run(shylock(&store).args(["inspect", "pool", "--semaphore"]));
    assert_eq!(code, 0);
    assert!(
        out.starts_with("semaphore pool: 2 of 3 permits held"),
        "{out}"
    );
    assert!(out.contains(p1.owner()) && out.contains(p2.owner()));
    let (code, _, _) = run(shylock(&store).args(["inspect", "empty", "--semaphore"]));
    assert_eq!(code, 1);

    // An operator who does not know it is a semaphore finds it by name.
    let (code, out, err) = run(shylock(&store).args(["inspect", "pool"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("semaphore pool: 2 of 3 permits held"),
        "{out}"
    );
    assert!(out.contains(p1.owner()) && out.contains(p2.owner()));
    let (code, out, _) = run(shylock(&store).args(["inspect", "pool", "--json"]));
    assert_eq!(code, 0);
    assert_eq!(json(&out)["permits"], 3);
    let (code, out, _) = run(shylock(&store).args(["list", "pool"]));
    assert_eq!(code, 0);
    assert!(out.starts_with("SEMAPHORE") && out.contains("2/3"), "{out}");
    p1.release().await.unwrap();
    p2.release().await.unwrap();
    let (code, _, err) = run(shylock(&store).args(["inspect", "pool"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("no lock or semaphore of that name has a live holder"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arango_list_inspect_and_release_on_the_fake_server() {
    let fake = fake::FakeArango::start().await;
    let backend: SharedBackend = shylock::ArangoBackend::builder(fake.url())
        .basic_auth("root", "secret")
        .database("locks")
        .build()
        .await
        .unwrap()
        .into();
    let url = fake.url();
    // Credentials come from the environment.
    let (code, _, err) = run(shylock(&url).args(["--database", "locks", "list"]));
    assert_eq!(code, 3, "no password: the server refuses");
    assert!(!err.contains("secret"));
    operate_on(
        &url,
        backend,
        &["--database", "locks"],
        &[("ARANGO_PASSWORD", "secret")],
    )
    .await;
}

#[test]
fn usage_and_store_errors_have_their_exit_codes() {
    let (code, _, err) = run(shylock("").arg("list"));
    assert_eq!(code, 2);
    assert!(err.contains("SHYLOCK_STORE"), "{err}");
    let (code, _, err) = run(shylock("redis://x").arg("list"));
    assert_eq!(code, 2);
    assert!(err.contains("sqlite:PATH"), "{err}");
    let (code, _, _) = run(shylock("sqlite:/tmp").args(["list", "--timeout", "5"]));
    assert_eq!(code, 2, "a duration without a unit");
    let (code, _, err) = run(shylock("sqlite:/nonexistent/locks.db").arg("list"));
    assert_eq!(code, 3);
    assert!(err.contains("no lock file"), "{err}");
    let (code, _, err) = run(shylock("mongodb://127.0.0.1:1").arg("list"));
    assert_eq!(code, 2, "no database");
    assert!(err.contains("--database"), "{err}");
    // Nothing listens on port 1: unreachable, within the timeout.
    let started = Instant::now();
    let (code, _, err) =
        run(shylock("mongodb://127.0.0.1:1/app").args(["list", "--timeout", "1s"]));
    assert_eq!(code, 3, "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let (code, _, _) = run(shylock("http://127.0.0.1:1").args(["list", "--timeout", "1s"]));
    assert_eq!(code, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_a_line_per_change_when_piped() {
    let (path, backend) = sqlite_store();
    let mut child = shylock(&format!("sqlite:{}", path.display()))
        .args(["watch", "--interval", "100ms"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next_line = |what: &str| {
        rx.recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no line for {what}"))
    };
    let guard = AsyncLock::with_backend("watched", backend.clone())
        .acquire()
        .await
        .unwrap();
    let line = next_line("the acquire");
    assert!(line.contains(" acquired watched "), "{line}");
    assert!(line.contains(&format!("owner={}", guard.owner())), "{line}");
    assert!(
        line.contains(&format!("fence={}", guard.fencing_token())),
        "{line}"
    );
    guard.release().await.unwrap();
    let line = next_line("the release");
    assert!(line.contains(" released watched "), "{line}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A tmux session running `command`, closed when dropped.
struct Tmux(String);

impl Tmux {
    fn start(command: &str) -> Tmux {
        let session = format!(
            "shylock-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &session,
                "-x",
                "160",
                "-y",
                "30",
                command,
            ])
            .status()
            .expect("tmux runs");
        assert!(status.success());
        Tmux(session)
    }
    /// The screen as a person sees it (text, no escape codes).
    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", self.0.as_str()];
        args.extend_from_slice(keys);
        assert!(Command::new("tmux").args(args).status().unwrap().success());
    }
    fn wait_for(&self, what: &str) -> String {
        let mut last = String::new();
        let seen = eventually(Duration::from_secs(20), || {
            last = self.screen();
            last.contains(what)
        });
        assert!(seen, "the screen never showed {what:?}; it shows:\n{last}");
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

/// The binary's path and the store, quoted for tmux's shell.
fn tmux_command(path: &std::path::Path, rest: &str) -> String {
    format!(
        "{} --store 'sqlite:{}' {rest}; echo \"[exit $?]\"; sleep 60",
        env!("CARGO_BIN_EXE_shylock"),
        path.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tmux"]
async fn tmux_watch_redraws_the_table_in_place() {
    let (path, backend) = sqlite_store();
    let guard = AsyncLock::with_backend("reports/nightly", backend.clone())
        .acquire()
        .await
        .unwrap();
    let tmux = Tmux::start(&tmux_command(&path, "watch --interval 200ms"));
    let screen = tmux.wait_for("reports/nightly");
    println!("the watch screen:\n{screen}");
    assert!(screen.contains("shylock watch"), "{screen}");
    assert!(screen.contains("1 lock held at"), "{screen}");
    let header = screen
        .lines()
        .find(|l| l.starts_with("NAME"))
        .expect("a table header");
    for column in ["OWNER", "FENCE", "EXPIRES IN"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(screen.contains(guard.owner()), "{screen}");
    // Redrawn in place: one header on the screen, however many refreshes.
    std::thread::sleep(Duration::from_millis(600));
    let screen = tmux.screen();
    assert_eq!(screen.matches("shylock watch").count(), 1, "{screen}");

    guard.release().await.unwrap();
    tmux.wait_for("no locks held");
    tmux.keys(&["C-c"]);
    tmux.wait_for("[exit 0]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tmux"]
async fn tmux_release_asks_before_freeing_a_lock() {
    let (path, backend) = sqlite_store();
    let guard = AsyncLock::with_backend("stuck", backend.clone())
        .acquire()
        .await
        .unwrap();
    // Declined: nothing is released.
    let tmux = Tmux::start(&tmux_command(&path, "release stuck --force"));
    let screen = tmux.wait_for("[y/N]");
    assert!(screen.contains(guard.owner()), "shows the holder: {screen}");
    assert!(screen.contains(&format!("fencing token {}", guard.fencing_token())));
    tmux.keys(&["n", "Enter"]);
    tmux.wait_for("[exit 1]");
    assert!(!guard.is_lost());
    drop(tmux);

    // Confirmed: released.
    let tmux = Tmux::start(&tmux_command(&path, "release stuck --force"));
    tmux.wait_for("[y/N]");
    tmux.keys(&["y", "Enter"]);
    let screen = tmux.wait_for("[exit 0]");
    assert!(screen.contains("released stuck"), "{screen}");
    assert!(matches!(guard.release().await, Err(Error::LockLost { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MONGODB_URI"]
async fn mongo_list_inspect_and_release() {
    let uri = required_env("MONGODB_URI");
    let database = unique_store_name("shylock_cli");
    let backend: SharedBackend = shylock::MongoBackend::connect(&uri, &database)
        .await
        .unwrap()
        .into();
    operate_on(&uri, backend.clone(), &["--database", &database], &[]).await;

    // A semaphore found by its name alone.
    let permit = AsyncSemaphore::with_backend("pool", 3, backend)
        .acquire()
        .await
        .unwrap();
    let (code, out, err) = run(shylock(&uri).args(["--database", &database, "inspect", "pool"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("semaphore pool: 1 of 3 permits held"),
        "{out}"
    );
    assert!(out.contains(permit.owner()), "{out}");
    permit.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set POSTGRES_URL"]
async fn postgres_list_inspect_and_release() {
    let url = required_env("POSTGRES_URL");
    let table = unique_store_name("shylock_cli");
    let pool = shylock::PostgresBackend::pool_for(&url).await.unwrap();
    let backend: SharedBackend = shylock::PostgresBackend::builder(pool)
        .table(&table)
        .build()
        .await
        .unwrap()
        .into();
    let collection = format!("public.{table}");
    operate_on(&url, backend.clone(), &["--collection", &collection], &[]).await;

    // A semaphore found by its name alone.
    let permit = AsyncSemaphore::with_backend("pool", 3, backend)
        .acquire()
        .await
        .unwrap();
    let (code, out, err) =
        run(shylock(&url).args(["--collection", &collection, "inspect", "pool"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("semaphore pool: 1 of 3 permits held"),
        "{out}"
    );
    assert!(out.contains(permit.owner()), "{out}");
    permit.release().await.unwrap();

    // A table that does not exist is a clear error, not an empty list.
    let (code, _, err) = run(shylock(&url).args(["--collection", "no_such_table", "list"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("missing"), "{err}");
}
