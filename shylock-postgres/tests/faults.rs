//! Fault injection against a real PostgreSQL: a stalled server, cut
//! connections, and the server stopped with `pg_ctl stop -m immediate` (a
//! crash: no checkpoint, recovery from the WAL at the next start) and
//! started again mid-hold.
//!
//! Each test creates its own throwaway cluster with `initdb` (binaries in
//! `SHYLOCK_PG_BIN`, set by scripts/test.sh; as root, the command prefix in
//! `SHYLOCK_PG_RUN_AS` runs them as another user, since initdb refuses
//! root) and puts a [`FaultProxy`] between one client and the server.
//! Without `SHYLOCK_PG_BIN` cargo reports these as ignored.
//!
//! Measured bounds are printed (`cargo test -- --nocapture` shows them).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use shylock_core::testkit::{required_env, unique_name, unique_store_name, wait_for, FaultProxy};
use shylock_core::{AsyncLock, AsyncLockGuard, Error, ErrorKind, LockOptions, SharedBackend};
use shylock_postgres::PostgresBackend;
use tokio::time::Instant;

/// A throwaway cluster on a fixed loopback port.
struct Server {
    port: u16,
    dir: PathBuf,
    running: bool,
}

/// `binary` from `SHYLOCK_PG_BIN`, run as the user `SHYLOCK_PG_RUN_AS` names.
fn pg(binary: &str) -> Command {
    let path = format!("{}/{binary}", required_env("SHYLOCK_PG_BIN"));
    let prefix = std::env::var("SHYLOCK_PG_RUN_AS").unwrap_or_default();
    let mut words = prefix.split_whitespace();
    let mut command = match words.next() {
        Some(first) => {
            let mut c = Command::new(first);
            c.args(words);
            c.arg(&path);
            c
        }
        None => Command::new(&path),
    };
    command.stdout(std::process::Stdio::null());
    command
}

fn run(command: &mut Command, what: &str) {
    let status = command.status().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(status.success(), "{what} failed: {status}");
}

impl Server {
    async fn start() -> Server {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = std::env::temp_dir().join(unique_store_name("shylock-pg-faults"));
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(user) = std::env::var("SHYLOCK_PG_RUN_AS")
            .ok()
            .and_then(|p| p.split_whitespace().nth(2).map(str::to_owned))
        {
            run(Command::new("chown").arg(&user).arg(&dir), "chown");
        }
        run(
            pg("initdb")
                .arg("-D")
                .arg(dir.join("data"))
                .args(["-A", "trust", "-U", "postgres"]),
            "initdb",
        );
        let mut server = Server {
            port,
            dir,
            running: false,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        run(
            pg("pg_ctl")
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-o", &options, "-w", "-l"])
                .arg(self.dir.join("server.log"))
                .arg("start"),
            "pg_ctl start",
        );
        self.running = true;
    }

    /// A crash: `pg_ctl stop -m immediate`.
    fn crash(&mut self) {
        run(
            pg("pg_ctl")
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "immediate", "stop"]),
            "pg_ctl stop",
        );
        self.running = false;
    }

    fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.running {
            let _ = pg("pg_ctl")
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "immediate", "stop"])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A backend at `addr` with a listener of its own, as a process has.
async fn backend_at(addr: std::net::SocketAddr, table: &str) -> SharedBackend {
    let pool = PostgresBackend::pool_for(&format!("postgres://postgres@{addr}/postgres"))
        .await
        .unwrap();
    PostgresBackend::builder(pool)
        .table(table)
        .share_release_listener(false)
        .build()
        .await
        .expect("could not set up the lock tables")
        .into()
}

fn options(ttl_ms: u64, op_timeout_ms: u64) -> LockOptions {
    LockOptions::default()
        .ttl(Duration::from_millis(ttl_ms))
        .operation_timeout(Duration::from_millis(op_timeout_ms))
        .backoff(Duration::from_millis(5), Duration::from_millis(50))
}

/// Runs `op`, checks it ended within `bound` + 1 s, prints the time taken.
async fn within<T>(what: &str, bound: Duration, op: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = op.await;
    let took = started.elapsed();
    println!("stalled server: {what} returned after {took:?} (bound {bound:?})");
    assert!(
        took <= bound + Duration::from_secs(1),
        "{what} took {took:?}, over its bound {bound:?} + 1 s"
    );
    out
}

fn timed_out<T: std::fmt::Debug>(what: &str, r: shylock_core::Result<T>) {
    match r {
        Err(e) => assert_eq!(e.kind(), Some(ErrorKind::TimedOut), "{what}: {e}"),
        Ok(v) => panic!("{what} succeeded against a stalled server: {v:?}"),
    }
}

/// Records when `guard` learns it lost the lock.
fn lost_at(guard: &std::sync::Arc<AsyncLockGuard>) -> tokio::task::JoinHandle<Instant> {
    let guard = guard.clone();
    tokio::spawn(async move {
        guard.lost().await;
        Instant::now()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL binaries: set SHYLOCK_PG_BIN (scripts/test.sh sets it)"]
async fn a_stalled_server_bounds_every_wait_and_the_holder_learns_first() {
    let server = Server::start().await;
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let table = unique_store_name("faults");
    let via_proxy = backend_at(proxy.addr(), &table).await;
    let direct = backend_at(server.addr(), &table).await;

    let held_name = unique_name("stall-held");
    let busy_name = unique_name("stall-busy");
    let opts = options(3000, 1000);
    let holder = AsyncLock::with_backend(&held_name, via_proxy.clone()).with_options(opts.clone());
    let guard = std::sync::Arc::new(holder.acquire().await.unwrap());
    let spare = holder.clone().with_options(opts.clone());
    let _busy = AsyncLock::with_backend(&busy_name, direct.clone())
        .acquire()
        .await
        .unwrap();
    let lost = lost_at(&guard);

    let rival = AsyncLock::with_backend(&held_name, direct.clone()).with_options(
        options(30_000, 5000).backoff(Duration::from_millis(1), Duration::from_millis(5)),
    );
    proxy.stall();
    let stalled_at = Instant::now();
    let rival_task = {
        let rival = rival.clone();
        tokio::spawn(async move {
            let guard = rival.acquire_timeout(Duration::from_secs(20)).await;
            (guard, Instant::now())
        })
    };

    let one_op = Duration::from_secs(1);
    timed_out(
        "extend",
        within("extend", one_op, guard.extend(Duration::from_secs(3))).await,
    );
    let busy_default = AsyncLock::with_backend(&busy_name, via_proxy.clone());
    let waited = within(
        "acquire_timeout(2 s), default operation timeout",
        Duration::from_secs(2),
        busy_default.acquire_timeout(Duration::from_secs(2)),
    )
    .await;
    assert!(matches!(waited, Ok(None)), "{waited:?}");
    let busy = AsyncLock::with_backend(&busy_name, via_proxy.clone()).with_options(opts.clone());
    let waited = within(
        "acquire_timeout(2 s), operation timeout 1 s",
        Duration::from_secs(2),
        busy.acquire_timeout(Duration::from_secs(2)),
    )
    .await;
    assert!(
        matches!(&waited, Err(e) if e.kind() == Some(ErrorKind::TimedOut)),
        "{waited:?}"
    );
    timed_out(
        "try_acquire",
        within("try_acquire", one_op, busy.try_acquire()).await,
    );
    timed_out(
        "is_locked",
        within("is_locked", one_op, busy.is_locked()).await,
    );
    timed_out("inspect", within("inspect", one_op, spare.inspect()).await);
    timed_out(
        "force_release",
        within("force_release", one_op, busy.force_release()).await,
    );

    let (taken, taken_at) = rival_task.await.unwrap();
    let taken = taken
        .unwrap()
        .expect("the stalled holder's lock never expired");
    let lost_at = lost.await.unwrap();
    println!(
        "stalled server: holder knew it lost {:?} after the stall began, the rival took over after {:?}",
        lost_at - stalled_at,
        taken_at - stalled_at
    );
    assert!(
        lost_at <= taken_at,
        "the rival took the lock before the holder learned it lost it"
    );
    assert!(taken.fencing_token() > guard.fencing_token());

    proxy.resume();
    let reachable = wait_for(Duration::from_secs(15), || async {
        spare.is_locked().await.ok()
    })
    .await;
    assert_eq!(reachable, Some(true), "the proxy path did not recover");
    let guard = std::sync::Arc::try_unwrap(guard).unwrap();
    assert!(matches!(guard.release().await, Err(Error::LockLost { .. })));
    assert!(
        rival.is_locked().await.unwrap(),
        "the late release freed the new holder's lock"
    );
    taken.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL binaries: set SHYLOCK_PG_BIN (scripts/test.sh sets it)"]
async fn connections_cut_inside_the_ttl_do_not_lose_the_lock() {
    let server = Server::start().await;
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let table = unique_store_name("faults");
    let via_proxy = backend_at(proxy.addr(), &table).await;
    let direct = backend_at(server.addr(), &table).await;
    let name = unique_name("cut");
    let guard = AsyncLock::with_backend(&name, via_proxy)
        .with_options(options(3000, 1000))
        .acquire()
        .await
        .unwrap();
    let rival = AsyncLock::with_backend(&name, direct).with_options(options(3000, 1000));
    let end = Instant::now() + Duration::from_secs(8);
    let mut cuts = 0;
    while Instant::now() < end {
        proxy.cut();
        cuts += 1;
        for _ in 0..3 {
            assert!(
                rival.try_acquire().await.unwrap().is_none(),
                "another client got the lock while its holder's connections were cut"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!(
        "cut connections: {cuts} cuts in 8 s, {} connections opened",
        proxy.connections_accepted()
    );
    assert!(!guard.is_lost(), "cut connections lost the lock");
    guard.release().await.unwrap();
    assert!(!rival.is_locked().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL binaries: set SHYLOCK_PG_BIN (scripts/test.sh sets it)"]
async fn a_crash_and_restart_inside_the_ttl_keeps_the_lock() {
    let mut server = Server::start().await;
    let table = unique_store_name("faults");
    let backend = backend_at(server.addr(), &table).await;
    let name = unique_name("restart-short");
    let lock = AsyncLock::with_backend(&name, backend.clone()).with_options(options(10_000, 2000));
    let guard = lock.acquire().await.unwrap();
    let token = guard.fencing_token();
    let expiry_before = guard.expires_at();

    server.crash();
    let down_at = Instant::now();
    server.spawn();
    println!("restart: the server was down for {:?}", down_at.elapsed());
    let renewed = wait_for(Duration::from_secs(15), || async {
        (guard.expires_at() > expiry_before).then_some(())
    })
    .await;
    assert!(renewed.is_some(), "no renewal reached the restarted server");
    let info = wait_for(Duration::from_secs(10), || async {
        lock.inspect().await.ok()
    })
    .await
    .expect("inspect failed after the restart")
    .expect("the lock did not survive the crash");
    assert_eq!(info.owner, guard.owner());
    assert!(!guard.is_lost(), "a restart inside the ttl lost the lock");
    let rival = AsyncLock::with_backend(&name, backend.clone()).with_options(options(10_000, 2000));
    assert!(rival.try_acquire().await.unwrap().is_none());
    guard.release().await.unwrap();
    let next = rival
        .try_acquire()
        .await
        .unwrap()
        .expect("released lock not free");
    assert!(
        next.fencing_token() > token,
        "the fencing counter went back after a crash"
    );
    next.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL binaries: set SHYLOCK_PG_BIN (scripts/test.sh sets it)"]
async fn a_server_down_past_the_ttl_loses_the_lock_before_anyone_takes_it() {
    let mut server = Server::start().await;
    let table = unique_store_name("faults");
    let backend = backend_at(server.addr(), &table).await;
    let name = unique_name("restart-long");
    let lock = AsyncLock::with_backend(&name, backend.clone()).with_options(options(2000, 1000));
    let guard = std::sync::Arc::new(lock.acquire().await.unwrap());
    let lost = lost_at(&guard);

    server.crash();
    let lost_at = lost.await.unwrap();
    server.spawn();
    let rival = AsyncLock::with_backend(&name, backend.clone()).with_options(options(2000, 2000));
    let taken = wait_for(Duration::from_secs(20), || async {
        rival.try_acquire().await.ok().flatten()
    })
    .await
    .expect("the lock was not free after the restart");
    let taken_at = Instant::now();
    assert!(lost_at <= taken_at);
    assert!(
        taken.fencing_token() > guard.fencing_token(),
        "fencing token {} after the restart is not above the old holder's {}",
        taken.fencing_token(),
        guard.fencing_token()
    );
    let guard = std::sync::Arc::try_unwrap(guard).unwrap();
    assert!(matches!(guard.release().await, Err(Error::LockLost { .. })));
    assert!(rival.is_locked().await.unwrap());
    taken.release().await.unwrap();
}
