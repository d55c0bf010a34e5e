//! Fault injection against a real MongoDB-wire server: a stalled server, cut
//! connections, and a database killed with SIGKILL and restarted mid-hold.
//!
//! Each test starts its own SecantusDB (path in `SECANTUSD`, set by
//! scripts/test.sh) with a storage directory, so it can be killed and
//! restarted with its data, and puts a [`FaultProxy`] between one client
//! and the server. Without `SECANTUSD` cargo reports these as ignored.
//!
//! Measured bounds are printed (`cargo test -- --nocapture` shows them).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use shylock_core::testkit::{required_env, unique_name, unique_store_name, wait_for, FaultProxy};
use shylock_core::{AsyncLock, AsyncLockGuard, Error, ErrorKind, LockOptions, SharedBackend};
use shylock_mongo::mongodb::{options::ClientOptions, Client};
use shylock_mongo::MongoBackend;
use tokio::time::Instant;

/// A SecantusDB process on a fixed loopback port with an on-disk store.
struct Server {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Server {
    async fn start() -> Server {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = std::env::temp_dir().join(unique_store_name("shylock-faults"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Server {
            port,
            dir,
            child: None,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let binary = required_env("SECANTUSD");
        let log = std::fs::File::create(self.dir.join("server.log")).unwrap();
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--storage-path")
            .arg(self.dir.join("data"))
            // Journaled commits, as a MongoDB replica set makes for
            // `w: majority` writes: what the server acknowledged survives
            // SIGKILL.
            .arg("--sync-on-commit")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("could not start SECANTUSD");
        self.child = Some(child);
        let port = self.port;
        let up = wait_for(Duration::from_secs(60), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        assert!(up.is_some(), "SecantusDB did not start; see {:?}", self.dir);
    }

    /// SIGKILL: no shutdown, no flush beyond what the server already made
    /// durable.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn backend_at(addr: std::net::SocketAddr, db: &str) -> SharedBackend {
    let uri = format!("mongodb://{addr}/?directConnection=true");
    let mut options = ClientOptions::parse(&uri).await.unwrap();
    options.server_selection_timeout = Some(Duration::from_secs(5));
    options.connect_timeout = Some(Duration::from_secs(2));
    options.heartbeat_freq = Some(Duration::from_millis(500));
    let client = Client::with_options(options).unwrap();
    // Each handle stands in for a process of its own: no watcher shared
    // with the other handles on the same server.
    MongoBackend::builder(client.database(db))
        .share_release_watcher(false)
        .build()
        .await
        .expect("could not set up the lock collection")
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
#[ignore = "needs SECANTUSD (path to secantusd-py; scripts/test.sh sets it)"]
async fn a_stalled_server_bounds_every_wait_and_the_holder_learns_first() {
    let server = Server::start().await;
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let db = unique_store_name("faults");
    let via_proxy = backend_at(proxy.addr(), &db).await;
    let direct = backend_at(server.addr(), &db).await;

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

    // Another client, straight to the server, tries for the held lock all
    // along and takes it as soon as the database lets it.
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
    // The wait bound holds even when one operation may take longer (the
    // default operation timeout is 10 s).
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
        "the rival took the lock {:?} before the holder learned it lost it",
        lost_at - taken_at
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
#[ignore = "needs SECANTUSD (path to secantusd-py; scripts/test.sh sets it)"]
async fn connections_cut_inside_the_ttl_do_not_lose_the_lock() {
    let server = Server::start().await;
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let db = unique_store_name("faults");
    let via_proxy = backend_at(proxy.addr(), &db).await;
    let direct = backend_at(server.addr(), &db).await;
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
#[ignore = "needs SECANTUSD (path to secantusd-py; scripts/test.sh sets it)"]
async fn a_restart_inside_the_ttl_keeps_the_lock() {
    let mut server = Server::start().await;
    let db = unique_store_name("faults");
    let backend = backend_at(server.addr(), &db).await;
    let name = unique_name("restart-short");
    let lock = AsyncLock::with_backend(&name, backend.clone()).with_options(options(10_000, 2000));
    let guard = lock.acquire().await.unwrap();
    let token = guard.fencing_token();
    let expiry_before = guard.expires_at();

    server.kill();
    let down_at = Instant::now();
    server.spawn().await;
    println!("restart: the server was down for {:?}", down_at.elapsed());
    // Renewal reaches the restarted server and keeps the lease.
    let renewed = wait_for(Duration::from_secs(15), || async {
        (guard.expires_at() > expiry_before).then_some(())
    })
    .await;
    assert!(renewed.is_some(), "no renewal reached the restarted server");
    let info = lock
        .inspect()
        .await
        .unwrap()
        .expect("the lock did not survive the restart");
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
        "the fencing counter went back after a restart"
    );
    next.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs SECANTUSD (path to secantusd-py; scripts/test.sh sets it)"]
async fn a_server_down_past_the_ttl_loses_the_lock_before_anyone_takes_it() {
    let mut server = Server::start().await;
    let db = unique_store_name("faults");
    let backend = backend_at(server.addr(), &db).await;
    let name = unique_name("restart-long");
    let lock = AsyncLock::with_backend(&name, backend.clone()).with_options(options(2000, 1000));
    let guard = std::sync::Arc::new(lock.acquire().await.unwrap());
    let lost = lost_at(&guard);

    server.kill();
    let lost_at = lost.await.unwrap();
    server.spawn().await;
    let rival = AsyncLock::with_backend(&name, backend.clone()).with_options(options(2000, 2000));
    let taken = rival
        .acquire_timeout(Duration::from_secs(20))
        .await
        .unwrap()
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
