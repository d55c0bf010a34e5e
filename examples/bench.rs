//! Benchmarks: cost per lock and per semaphore permit, handoff latency,
//! waiter load and throughput,
//! each beside the raw database doing the same work, measured in one run.
//!
//! ```sh
//! cargo run --release --example bench --features bench -- --backend memory
//! cargo run --release --example bench --features bench -- --backend sqlite
//! MONGODB_URI="mongodb://127.0.0.1:27017/?directConnection=true" \
//!     cargo run --release --example bench --features bench,mongo -- --backend mongo
//! ```
//!
//! Options: `--pairs N` (uncontended pairs, default 2000; 500 on mongo),
//! `--handoffs N` (per waiter count, default 200), `--waiters 1,8,64`
//! (waiter counts of the handoff rows), `--hold-secs N` (waiter load
//! window, default 3), `--only throughput|handoff` (just that section).
//! Prints markdown tables. Machines are noisy:
//! compare the ratios within one run, not absolute numbers across runs.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shylock::backend::{Backend, Deadline};
use shylock::{AsyncLock, AsyncSemaphore, Election, LockOptions, Renewal, SharedBackend};
use shylock_core::testkit::CountingBackend;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Memory,
    Sqlite,
    #[cfg(feature = "mongo")]
    Mongo,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Only {
    Uncontended,
    Idle,
    Throughput,
    Handoff,
}

struct Args {
    kind: Kind,
    /// `--only uncontended|idle|throughput|handoff`: just that section (on a fresh server).
    only: Option<Only>,
    pairs: usize,
    handoffs: usize,
    /// Waiter counts of the handoff rows (`--waiters 1,8,64`).
    waiters: Vec<usize>,
    hold: Duration,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench --backend memory|sqlite|mongo [--pairs N] [--handoffs N] [--hold-secs N] [--only uncontended|idle|throughput|handoff] [--waiters 1,8,64]\n\
         (mongo needs --features mongo and MONGODB_URI)"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut kind = None;
    let (mut pairs, mut handoffs, mut hold) = (None, 200, Duration::from_secs(3));
    let mut only = None;
    let mut waiters = vec![1, 8, 64];
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--backend" => {
                kind = Some(match value().as_str() {
                    "memory" => Kind::Memory,
                    "sqlite" => Kind::Sqlite,
                    #[cfg(feature = "mongo")]
                    "mongo" => Kind::Mongo,
                    #[cfg(not(feature = "mongo"))]
                    "mongo" => {
                        eprintln!("the mongo backend needs: cargo run --release --example bench --features mongo -- --backend mongo");
                        std::process::exit(2)
                    }
                    _ => usage(),
                })
            }
            "--pairs" => pairs = Some(value().parse().unwrap_or_else(|_| usage())),
            "--handoffs" => handoffs = value().parse().unwrap_or_else(|_| usage()),
            "--hold-secs" => {
                hold = Duration::from_secs(value().parse().unwrap_or_else(|_| usage()))
            }
            "--waiters" => {
                waiters = value()
                    .split(',')
                    .map(|n| n.trim().parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--only" => match value().as_str() {
                "uncontended" => only = Some(Only::Uncontended),
                "idle" => only = Some(Only::Idle),
                "throughput" => only = Some(Only::Throughput),
                "handoff" => only = Some(Only::Handoff),
                _ => usage(),
            },
            "--bench" => {} // passed by `cargo bench`-style runners
            _ => usage(),
        }
    }
    let kind = kind.unwrap_or_else(|| usage());
    #[cfg(feature = "mongo")]
    let default_pairs = if kind == Kind::Mongo { 500 } else { 2000 };
    #[cfg(not(feature = "mongo"))]
    let default_pairs = 2000;
    Args {
        kind,
        only,
        waiters,
        pairs: pairs.unwrap_or(default_pairs),
        handoffs,
        hold,
    }
}

/// The backend under test plus what the raw baseline needs.
struct Setup {
    backend: SharedBackend,
    /// Database commands (mongo) or SQL statements (sqlite) sent so far.
    commands: Box<dyn Fn() -> Option<u64>>,
    command_unit: &'static str,
    raw: Raw,
    /// Independent handles on the same store, one per task, behaving like
    /// separate processes (no in-process release signal between them).
    separate: Vec<SharedBackend>,
    /// Handles on the same clients as `separate` that share the process's
    /// release watcher, as handles in one process do by default (MongoDB).
    sharing: Vec<SharedBackend>,
    cleanup: Box<dyn FnOnce()>,
}

enum Raw {
    Memory(shylock::MemoryBackend),
    Sqlite(std::path::PathBuf),
    #[cfg(feature = "mongo")]
    Mongo(shylock::mongo::mongodb::Collection<bson::Document>),
}

async fn setup(kind: Kind) -> Setup {
    match kind {
        Kind::Memory => {
            let backend = shylock::MemoryBackend::new();
            Setup {
                backend: backend.clone().into(),
                commands: Box::new(|| None),
                command_unit: "-",
                raw: Raw::Memory(backend),
                separate: Vec::new(),
                sharing: Vec::new(),
                cleanup: Box::new(|| {}),
            }
        }
        Kind::Sqlite => {
            let dir = std::env::temp_dir().join(format!("shylock-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("locks.db");
            let backend = shylock::SqliteBackend::open(&path).expect("open sqlite");
            let separate = (0..65)
                .map(|_| {
                    shylock::SqliteBackend::open(&path)
                        .expect("open sqlite")
                        .into()
                })
                .collect();
            Setup {
                backend: backend.into(),
                separate,
                sharing: Vec::new(),
                commands: Box::new(|| Some(shylock::sqlite::statements_executed())),
                command_unit: "SQL statements",
                raw: Raw::Sqlite(path),
                cleanup: Box::new(move || {
                    let _ = std::fs::remove_dir_all(dir);
                }),
            }
        }
        #[cfg(feature = "mongo")]
        Kind::Mongo => mongo_setup().await,
    }
}

#[cfg(feature = "mongo")]
async fn mongo_setup() -> Setup {
    use shylock::mongo::mongodb::event::{command::CommandEvent, EventHandler};
    use shylock::mongo::mongodb::{options::ClientOptions, Client};
    use std::future::IntoFuture;
    use std::sync::atomic::AtomicU64;
    let Ok(uri) = std::env::var("MONGODB_URI") else {
        eprintln!("set MONGODB_URI, e.g. MONGODB_URI=\"mongodb://127.0.0.1:27017/?directConnection=true\"");
        std::process::exit(2)
    };
    let counter = Arc::new(AtomicU64::new(0));
    let mut options = ClientOptions::parse(&uri).await.expect("MONGODB_URI");
    let c = counter.clone();
    options.command_event_handler = Some(EventHandler::callback(move |event| {
        if let CommandEvent::Started(_) = event {
            c.fetch_add(1, Ordering::SeqCst);
        }
    }));
    let client = Client::with_options(options).unwrap();
    let db_name = format!("shylock_bench_{}", std::process::id());
    let db = client.database(&db_name);
    let backend = shylock::MongoBackend::new(db.clone())
        .await
        .expect("mongo setup");
    // The raw baseline sends the same commands with the same write and
    // read concern as the backend (majority, 5 s wtimeout) ...
    let raw = db.collection_with_options::<bson::Document>(
        "raw_baseline",
        shylock::mongo::mongodb::options::CollectionOptions::builder()
            .write_concern(
                shylock::mongo::mongodb::options::WriteConcern::builder()
                    .w(shylock::mongo::mongodb::options::Acknowledgment::Majority)
                    .w_timeout(Duration::from_secs(5))
                    .build(),
            )
            .read_concern(shylock::mongo::mongodb::options::ReadConcern::majority())
            .build(),
    );
    // ... on a collection indexed as the backend's is (the TTL index on
    // `expiresAt`, which every write that moves an expiry maintains).
    raw.create_index(
        shylock::mongo::mongodb::IndexModel::builder()
            .keys(bson::doc! { "expiresAt": 1 })
            .options(
                shylock::mongo::mongodb::options::IndexOptions::builder()
                    .expire_after(Duration::from_secs(3600))
                    .build(),
            )
            .build(),
    )
    .await
    .unwrap();
    // Separate clients too, as separate processes would have (each with a
    // change stream of its own); and the same clients as one process uses
    // them (one stream for all).
    let (mut separate, mut sharing) = (Vec::new(), Vec::new());
    for _ in 0..65 {
        let own = Client::with_uri_str(&uri).await.unwrap();
        for (share, handles) in [(false, &mut separate), (true, &mut sharing)] {
            let b = shylock::MongoBackend::builder(own.database(&db_name))
                .create_indexes(false)
                .share_release_watcher(share)
                .build()
                .await
                .unwrap();
            handles.push(b.into());
        }
    }
    let c = counter.clone();
    Setup {
        backend: backend.into(),
        separate,
        sharing,
        commands: Box::new(move || Some(c.load(Ordering::SeqCst))),
        command_unit: "commands",
        raw: Raw::Mongo(raw),
        cleanup: Box::new(move || {
            let rt = tokio::runtime::Handle::current();
            let _ = std::thread::spawn(move || rt.block_on(db.drop().into_future())).join();
        }),
    }
}

struct Stats {
    median: Duration,
    p99: Duration,
    per_sec: f64,
}

fn stats(mut samples: Vec<Duration>, total: Duration) -> Stats {
    if samples.is_empty() {
        samples.push(Duration::ZERO);
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        median: at(0.5),
        p99: at(0.99),
        per_sec: samples.len() as f64 / total.as_secs_f64(),
    }
}

fn us(d: Duration) -> String {
    if d >= Duration::from_millis(10) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    }
}

fn bench_options() -> LockOptions {
    LockOptions::default().ttl(Duration::from_secs(30))
}

/// Uncontended acquire+release through the library.
async fn library_pairs(backend: &SharedBackend, n: usize, options: LockOptions) -> Stats {
    let lock = AsyncLock::with_backend("bench/uncontended", backend.clone()).with_options(options);
    pairs(n, || lock.try_acquire()).await
}

/// The uncontended rows: shylock with its default background renewal,
/// shylock with `Renewal::Off`, and the raw database work, interleaved in
/// rounds. Returns the raw figures.
async fn uncontended(s: &Setup, n: usize, label: &str) -> Stats {
    const ROUNDS: usize = 4;
    let per_round = (n / ROUNDS).max(1);
    let off = bench_options().renewal(Renewal::Off);
    let (mut lib, mut lib_off, mut bare, mut raw) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Each round starts with a different row: a server that slows down as
    // it accumulates writes then burdens no row more than another.
    for round in 0..ROUNDS {
        for row in (0..4).map(|i| (i + round) % 4) {
            match row {
                0 => lib.push(library_pairs(&s.backend, per_round, bench_options()).await),
                1 => lib_off.push(library_pairs(&s.backend, per_round, off.clone()).await),
                2 => bare
                    .push(backend_pairs(&*s.backend, "bench/uncontended/backend", per_round).await),
                _ => raw.push(raw_pairs(&s.raw, per_round).await),
            }
        }
    }
    let [lib, lib_off, bare, raw] = [lib, lib_off, bare, raw].map(|runs| Stats {
        median: runs.iter().map(|r| r.median).sum::<Duration>() / ROUNDS as u32,
        p99: runs.iter().map(|r| r.p99).max().unwrap_or_default(),
        per_sec: runs.iter().map(|r| r.per_sec).sum::<f64>() / ROUNDS as f64,
    });
    println!("## Uncontended acquire + release\n");
    println!("| | median | p99 | pairs/s | ratio to raw (median / p99) |");
    println!("|---|---|---|---|---|");
    for (row, st) in [
        ("shylock", &lib),
        ("shylock, `Renewal::Off`", &lib_off),
        ("the backend's `claim` + `release` alone (no guard)", &bare),
        (&format!("raw {label} (same database work)"), &raw),
    ] {
        println!(
            "| {row} | {} | {} | {:.0} | {:.3} / {:.3} |",
            us(st.median),
            us(st.p99),
            st.per_sec,
            st.median.as_secs_f64() / raw.median.as_secs_f64(),
            st.p99.as_secs_f64() / raw.p99.as_secs_f64(),
        );
    }
    println!();
    raw
}

/// `n` uncontended pairs of a backend's own `claim` and `release` on
/// `name`: the library's database work without its guard, renewal and
/// observability.
async fn backend_pairs<B: Backend + ?Sized>(backend: &B, name: &str, n: usize) -> Stats {
    let owner = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let ttl = Duration::from_secs(30);
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let deadline = Deadline::after(Duration::from_secs(10));
        backend
            .claim(name, owner, ttl, deadline)
            .await
            .unwrap()
            .expect("uncontended lease was held");
        assert!(backend.release(name, owner, deadline).await.unwrap());
        samples.push(t.elapsed());
    }
    stats(samples, start.elapsed())
}

/// `n` timed uncontended pairs of `try_acquire` (which must win) and
/// release, after a warm-up of n / 10.
async fn pairs<F, Fut>(n: usize, try_acquire: F) -> Stats
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = shylock::Result<Option<shylock::AsyncLockGuard>>>,
{
    for _ in 0..n / 10 + 1 {
        try_acquire()
            .await
            .unwrap()
            .expect("uncontended lease was held")
            .release()
            .await
            .unwrap();
    }
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let guard = try_acquire()
            .await
            .unwrap()
            .expect("uncontended lease was held");
        guard.release().await.unwrap();
        samples.push(t.elapsed());
    }
    stats(samples, start.elapsed())
}

/// The same database work without the library.
async fn raw_pairs(raw: &Raw, n: usize) -> Stats {
    let mut samples = Vec::with_capacity(n);
    let owner = "0f8fad5b-d9cb-469f-a165-70867728950e";
    match raw {
        // Without the library, the in-process store is its own backend.
        Raw::Memory(backend) => backend_pairs(backend, "bench/raw", n).await,
        Raw::Sqlite(path) => {
            use rusqlite::{params, TransactionBehavior};
            let mut conn = rusqlite::Connection::open(path).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
            let now = || {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64
            };
            let start = Instant::now();
            for _ in 0..n {
                let t = Instant::now();
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .unwrap();
                let n = now();
                let _fence: i64 = tx
                    .query_row(
                        shylock::sqlite::queries::ACQUIRE,
                        params![b"bench/raw".as_slice(), owner, n + 30_000, n],
                        |r| r.get(0),
                    )
                    .unwrap();
                tx.commit().unwrap();
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .unwrap();
                tx.execute(
                    shylock::sqlite::queries::RELEASE,
                    params![b"bench/raw".as_slice(), owner],
                )
                .unwrap();
                tx.commit().unwrap();
                samples.push(t.elapsed());
            }
            stats(samples, start.elapsed())
        }
        #[cfg(feature = "mongo")]
        Raw::Mongo(collection) => {
            use bson::doc;
            use shylock::mongo::mongodb::options::ReturnDocument;
            let pipeline = shylock::mongo::acquire_pipeline(owner, 30_000, None);
            let start = Instant::now();
            for _ in 0..n {
                let t = Instant::now();
                collection
                    .find_one_and_update(doc! { "_id": "bench/raw" }, pipeline.clone())
                    .upsert(true)
                    .return_document(ReturnDocument::After)
                    .projection(shylock::mongo::queries::lease_projection())
                    .max_time(Duration::from_secs(10))
                    .await
                    .unwrap();
                collection
                    .update_one(
                        doc! { "_id": "bench/raw", "owner": owner },
                        doc! { "$unset": { "owner": "" }, "$currentDate": { "expiresAt": true } },
                    )
                    .await
                    .unwrap();
                samples.push(t.elapsed());
            }
            stats(samples, start.elapsed())
        }
    }
}

/// Commands per uncontended acquire and per release.
async fn commands_per_op(s: &Setup, n: usize) -> Option<(f64, f64)> {
    let lock =
        AsyncLock::with_backend("bench/commands", s.backend.clone()).with_options(bench_options());
    let (mut acquire, mut release) = (0, 0);
    for _ in 0..n {
        let a = (s.commands)()?;
        let guard = lock.try_acquire().await.unwrap().unwrap();
        let b = (s.commands)()?;
        guard.release().await.unwrap();
        let c = (s.commands)()?;
        acquire += b - a;
        release += c - b;
    }
    Some((acquire as f64 / n as f64, release as f64 / n as f64))
}

/// Time from a release returning to the next holder's acquire returning,
/// with `waiters` tasks waiting in `acquire()` while one holds the lock. A
/// task that released waits for someone else to take the lock before it
/// queues again, so every sample is a handoff to a waiter. Also returns
/// the claims all tasks sent per handoff (a task that queues again makes
/// two at once: one try, one after subscribing to wake-ups).
async fn handoff(
    backends: &[SharedBackend],
    waiters: usize,
    handoffs: usize,
    mode: Mode,
) -> (Stats, f64) {
    let counted: Vec<Arc<CountingBackend>> = backends
        .iter()
        .map(|b| CountingBackend::new(b.clone()))
        .collect();
    let backends: Vec<SharedBackend> = counted
        .iter()
        .map(|c| SharedBackend::from_arc(c.clone()))
        .collect();
    let name = format!("bench/handoff/{waiters}/{}", uuid::Uuid::new_v4());
    let last_release: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let samples: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::new()));
    let (generation, _) = tokio::sync::watch::channel(0u64);
    let generation = Arc::new(generation);
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let done_tx = Arc::new(done_tx);
    let start = Instant::now();
    let tasks: Vec<_> = (0..=waiters)
        .map(|i| {
            let backend = backends[i % backends.len()].clone();
            let lock = mode.lock(&name, backend);
            let (last_release, samples, generation, counter) = (
                last_release.clone(),
                samples.clone(),
                generation.clone(),
                counter.clone(),
            );
            let (done_tx, mut done_rx) = (done_tx.clone(), done_rx.clone());
            tokio::spawn(async move {
                let mut turns = generation.subscribe();
                loop {
                    let guard = tokio::select! {
                        guard = mode.acquire(&lock) => guard,
                        _ = done_rx.wait_for(|done| *done) => return,
                    };
                    let got = Instant::now();
                    if let Some(released) = last_release.lock().unwrap().take() {
                        samples
                            .lock()
                            .unwrap()
                            .push(got.saturating_duration_since(released));
                    }
                    let mine = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    generation.send_replace(mine);
                    tokio::time::sleep(Duration::from_micros(500)).await;
                    if let Err(error) = guard.release().await {
                        failed("release", &error);
                    }
                    *last_release.lock().unwrap() = Some(Instant::now());
                    if samples.lock().unwrap().len() >= handoffs {
                        done_tx.send_replace(true);
                        return;
                    }
                    // Queue again only after another task took the lock.
                    tokio::select! {
                        _ = turns.wait_for(|g| *g != mine) => {}
                        _ = done_rx.wait_for(|done| *done) => return,
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let claims: u64 = counted.iter().map(|c| c.claim_count()).sum();
    let per_handoff = claims as f64 / samples.len().max(1) as f64;
    (stats(samples, start.elapsed()), per_handoff)
}

/// Acquire attempts per second that `waiters` idle waiters cause while the
/// lock is held for `hold`, and the database commands behind them.
async fn waiter_load(s: &Setup, waiters: usize, hold: Duration, mode: Mode) -> (f64, Option<f64>) {
    let counting = CountingBackend::new(s.backend.clone());
    let backend = SharedBackend::from_arc(counting.clone());
    let name = format!("bench/load/{waiters}/{}", uuid::Uuid::new_v4());
    let holder = AsyncLock::with_backend(name.clone(), backend.clone())
        .acquire()
        .await
        .unwrap();
    let tasks: Vec<_> = (0..waiters)
        .map(|_| {
            let lock = mode.lock(&name, backend.clone());
            tokio::spawn(async move {
                if let Err(error) = mode.acquire(&lock).await.release().await {
                    failed("release", &error);
                }
            })
        })
        .collect();
    // Let the waiters reach their steady backoff (and the change stream
    // open) before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let a0 = counting.claim_count();
    let c0 = (s.commands)();
    tokio::time::sleep(hold).await;
    let attempts = (counting.claim_count() - a0) as f64 / hold.as_secs_f64();
    let commands = c0.and_then(|c0| (s.commands)().map(|c1| (c1 - c0) as f64 / hold.as_secs_f64()));
    holder.release().await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    (attempts, commands)
}

/// How waiters wait in the handoff, load and fairness rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `acquire()`: backoff with jitter, woken by release signals.
    Default,
    /// `acquire()` with `LockOptions::fair(true)`: a ticket in line.
    Fair,
    /// Python shylock's strategy replayed: `try_acquire()` every 62.5 ms,
    /// no wake-ups.
    PythonPoll,
}

impl Mode {
    fn lock(self, name: &str, backend: SharedBackend) -> AsyncLock {
        let options = bench_options().fair(self == Mode::Fair);
        AsyncLock::with_backend(name.to_owned(), backend).with_options(options)
    }

    /// Acquires, trying again after an error (counted and reported, so an
    /// overloaded server shows in the output instead of ending the run).
    async fn acquire(self, lock: &AsyncLock) -> shylock::AsyncLockGuard {
        loop {
            let attempt = match self {
                Mode::Default | Mode::Fair => lock.acquire().await.map(Some),
                Mode::PythonPoll => lock.try_acquire().await,
            };
            match attempt {
                Ok(Some(guard)) => return guard,
                Ok(None) => tokio::time::sleep(Duration::from_micros(62_500)).await,
                Err(error) => failed("acquire", &error),
            }
        }
    }
}

/// Waits (at most 30 s) until none of `handles` watches releases any more:
/// their change streams closed after their idle period.
async fn streams_closed(handles: &[SharedBackend]) {
    let give_up = Instant::now() + Duration::from_secs(30);
    while Instant::now() < give_up
        && handles
            .iter()
            .any(|h| h.releases_watched_since("bench").is_some())
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

static FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts and reports an operation that failed in a waiting row.
fn failed(operation: &str, error: &shylock::Error) {
    FAILURES.fetch_add(1, Ordering::SeqCst);
    eprintln!("bench: {operation} failed: {error}");
}

/// A line for the output when operations failed since the last call.
fn report_failures() {
    let n = FAILURES.swap(0, Ordering::SeqCst);
    if n > 0 {
        println!("\n({n} acquire or release calls failed during these rows, reported on stderr; their rows are suspect.)\n");
    }
}

/// With 8 waiters taking turns on one lock until `grants` grants: the
/// share of grants that went to the waiter that arrived first among those
/// waiting, and the max and mean wait. In fair mode, arrivals (enqueues)
/// are made one at a time, so their order is the line's order.
async fn fairness(
    backends: &[SharedBackend],
    mode: Mode,
    grants: usize,
) -> (f64, Duration, Duration) {
    use std::collections::BTreeSet;
    let name = format!("bench/fairness/{}", uuid::Uuid::new_v4());
    let arrivals = Arc::new(tokio::sync::Mutex::new(0u64));
    let waiting: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let record: Arc<Mutex<(usize, usize, Vec<Duration>)>> = Arc::default();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let lock = mode.lock(&name, backends[i % backends.len()].clone());
            let (arrivals, waiting, record) = (arrivals.clone(), waiting.clone(), record.clone());
            tokio::spawn(async move {
                loop {
                    let asked = Instant::now();
                    let (seq, guard) = if mode == Mode::Fair {
                        let (seq, ticket) = {
                            let mut next = arrivals.lock().await;
                            let ticket = lock.enqueue().await.unwrap();
                            *next += 1;
                            waiting.lock().unwrap().insert(*next);
                            (*next, ticket)
                        };
                        (seq, ticket.wait().await.unwrap())
                    } else {
                        let seq = {
                            let mut next = arrivals.lock().await;
                            *next += 1;
                            waiting.lock().unwrap().insert(*next);
                            *next
                        };
                        (seq, mode.acquire(&lock).await)
                    };
                    let first = {
                        let mut waiting = waiting.lock().unwrap();
                        let first = waiting.first() == Some(&seq);
                        waiting.remove(&seq);
                        first
                    };
                    let done = {
                        let mut r = record.lock().unwrap();
                        r.0 += 1;
                        r.1 += usize::from(first);
                        r.2.push(asked.elapsed());
                        r.0 >= grants
                    };
                    tokio::time::sleep(Duration::from_micros(500)).await;
                    if let Err(error) = guard.release().await {
                        failed("release", &error);
                    }
                    if done {
                        return;
                    }
                }
            })
        })
        .collect();
    // The first task to finish ends the run; the others are stopped.
    let mut tasks = tasks;
    loop {
        if record.lock().unwrap().0 >= grants {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in tasks.drain(..) {
        t.abort();
        let _ = t.await;
    }
    let r = record.lock().unwrap();
    let waits = &r.2;
    let max = waits.iter().max().copied().unwrap_or_default();
    let mean = waits.iter().sum::<Duration>() / waits.len().max(1) as u32;
    (r.1 as f64 / r.0.max(1) as f64, max, mean)
}

/// MongoDB only: the cost of other command shapes for one acquire and one
/// release, each pair measured in the same run.
#[cfg(feature = "mongo")]
async fn mongo_shapes(raw: &Raw, n: usize) -> Option<[(&'static str, Stats); 3]> {
    use bson::doc;
    use shylock::mongo::mongodb::options::ReturnDocument;
    let Raw::Mongo(collection) = raw else {
        return None;
    };
    let owner = "0f8fad5b-d9cb-469f-a165-70867728950e";
    // The shape shylock sends: findOneAndUpdate with an update pipeline,
    // exactly as the raw baseline sends it.
    let pipeline_stats = raw_pairs(raw, n).await;
    // A classic update: `$expr` filter on the server clock, `$currentDate`
    // with the ttl stored beside it, `$inc` for the fence.
    let free = doc! { "$expr": { "$or": [
        { "$ne": [{ "$type": "$owner" }, "string"] },
        { "$eq": ["$owner", owner] },
        { "$lt": [{ "$add": ["$at", "$ttlMs"] }, "$$NOW"] },
    ]}};
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let mut filter = free.clone();
        filter.insert("_id", "bench/shape/classic");
        collection
            .find_one_and_update(
                filter,
                doc! { "$set": { "owner": owner, "ttlMs": 30_000_i64 }, "$currentDate": { "at": true }, "$inc": { "fence": 1_i64 } },
            )
            .upsert(true)
            .return_document(ReturnDocument::After)
            .projection(doc! { "_id": 0, "owner": 1, "at": 1, "fence": 1 })
            .await
            .unwrap();
        collection
            .update_one(
                doc! { "_id": "bench/shape/classic", "owner": owner },
                doc! { "$unset": { "owner": "" } },
            )
            .await
            .unwrap();
        samples.push(t.elapsed());
    }
    let classic_stats = stats(samples, start.elapsed());
    // Python shylock's pair: insert (a duplicate key means held) and delete.
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        collection
            .insert_one(doc! { "_id": "bench/shape/insert", "owner": owner, "expiresAt": bson::DateTime::now() })
            .await
            .unwrap();
        collection
            .delete_one(doc! { "_id": "bench/shape/insert", "owner": owner })
            .await
            .unwrap();
        samples.push(t.elapsed());
    }
    let insert_stats = stats(samples, start.elapsed());
    Some([
        (
            "findOneAndUpdate, update pipeline (shylock)",
            pipeline_stats,
        ),
        (
            "findOneAndUpdate, classic update ($expr, $currentDate, $inc)",
            classic_stats,
        ),
        ("insert + delete (Python shylock)", insert_stats),
    ])
}

/// The server's part of a cross-process handoff, without the library:
/// `streams` clients each open a change stream as the release watcher does
/// (same filter, `updateLookup`); then, `releases` times, one update frees a
/// document and each stream reports when it delivered the event. Returns the
/// medians over releases of the first, the middle and the last stream's
/// delivery after the update returned: a waiter woken by the release cannot
/// claim before its stream delivered, and its claim adds a round trip.
#[cfg(feature = "mongo")]
async fn stream_fanout(raw: &Raw, streams: usize, releases: usize) -> Option<[Duration; 3]> {
    use bson::doc;
    use shylock::mongo::mongodb::{options::FullDocumentType, Client};
    let Raw::Mongo(collection) = raw else {
        return None;
    };
    let uri = std::env::var("MONGODB_URI").ok()?;
    let db = collection.namespace().db;
    let coll = format!("fanout_{streams}_{}", uuid::Uuid::new_v4().simple());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(i64, Instant)>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    for _ in 0..streams {
        let client = Client::with_uri_str(&uri).await.unwrap();
        let mut stream = client
            .database(&db)
            .collection::<bson::Document>(&coll)
            .watch()
            .pipeline([shylock::mongo::queries::released_events()])
            .full_document(FullDocumentType::UpdateLookup)
            .max_await_time(Duration::from_secs(1))
            .await
            .unwrap();
        let (tx, mut stop) = (tx.clone(), stop_rx.clone());
        readers.push(tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = stream.next_if_any() => next,
                    _ = stop.wait_for(|stop| *stop) => break,
                };
                let event = match next {
                    Ok(Some(event)) => event,
                    Ok(None) if stream.is_alive() => continue,
                    _ => break,
                };
                let seq = event
                    .full_document
                    .and_then(|d| d.get_i64("seq").ok())
                    .unwrap_or(-1);
                if tx.send((seq, Instant::now())).is_err() {
                    break;
                }
            }
            // Closed, not left for the server to time out: later rows share
            // the server.
            drop(stream);
            client.shutdown().await;
        }));
    }
    drop(tx);
    let target = collection
        .client()
        .database(&db)
        .collection_with_options::<bson::Document>(
            &coll,
            shylock::mongo::mongodb::options::CollectionOptions::builder()
                .write_concern(collection.write_concern().cloned())
                .build(),
        );
    let (mut first, mut middle, mut last) = (Vec::new(), Vec::new(), Vec::new());
    for seq in 0..releases as i64 {
        // Taken (an update the streams' filter leaves out), then freed.
        target
            .update_one(
                doc! { "_id": "fanout" },
                doc! { "$set": { "owner": "x", "seq": seq } },
            )
            .upsert(true)
            .await
            .unwrap();
        target
            .update_one(doc! { "_id": "fanout" }, doc! { "$unset": { "owner": "" } })
            .await
            .unwrap();
        let freed = Instant::now();
        let mut arrivals = Vec::with_capacity(streams);
        let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
        while arrivals.len() < streams {
            match tokio::time::timeout_at(give_up, rx.recv()).await {
                Ok(Some((s, at))) if s == seq => arrivals.push(at.saturating_duration_since(freed)),
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        if arrivals.len() < streams {
            continue;
        }
        arrivals.sort();
        first.push(arrivals[0]);
        middle.push(arrivals[streams / 2]);
        last.push(arrivals[streams - 1]);
    }
    stop_tx.send_replace(true);
    for reader in readers {
        let _ = reader.await;
    }
    let _ = target.drop().await;
    let median = |v: Vec<Duration>| stats(v, Duration::from_secs(1)).median;
    Some([median(first), median(middle), median(last)])
}

/// A backend handle that can go dead (every call hangs), as a leader whose
/// process or network died looks to the database.
#[derive(Debug)]
struct DeadSwitch {
    inner: SharedBackend,
    dead: std::sync::atomic::AtomicBool,
}

#[shylock::backend::async_trait]
impl Backend for DeadSwitch {
    async fn claim(
        &self,
        n: &str,
        o: &str,
        t: Duration,
        d: Deadline,
    ) -> shylock::Result<Option<shylock::backend::Grant>> {
        self.gate().await;
        self.inner.claim(n, o, t, d).await
    }
    async fn extend(
        &self,
        n: &str,
        o: &str,
        t: Duration,
        d: Deadline,
    ) -> shylock::Result<Option<std::time::SystemTime>> {
        self.gate().await;
        self.inner.extend(n, o, t, d).await
    }
    async fn release(&self, n: &str, o: &str, d: Deadline) -> shylock::Result<bool> {
        self.gate().await;
        self.inner.release(n, o, d).await
    }
    async fn inspect(&self, n: &str, d: Deadline) -> shylock::Result<Option<shylock::LockInfo>> {
        self.gate().await;
        self.inner.inspect(n, d).await
    }
    async fn list(
        &self,
        p: &str,
        a: Option<&str>,
        l: usize,
        d: Deadline,
    ) -> shylock::Result<Vec<shylock::LockInfo>> {
        self.inner.list(p, a, l, d).await
    }
    async fn force_release(&self, n: &str, d: Deadline) -> shylock::Result<bool> {
        self.inner.force_release(n, d).await
    }
}

impl DeadSwitch {
    async fn gate(&self) {
        if self.dead.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
}

/// Election failover: the leader goes dead; time until a follower leads.
async fn failover(backend: &SharedBackend, ttl: Duration) -> Duration {
    let name = format!("bench/election/{}", uuid::Uuid::new_v4());
    let options = LockOptions::default()
        .ttl(ttl)
        .backoff(Duration::from_millis(5), Duration::from_millis(100));
    let switch = Arc::new(DeadSwitch {
        inner: backend.clone(),
        dead: false.into(),
    });
    let a = Election::with_backend(&name, "a", SharedBackend::from(switch.clone()))
        .with_options(options.clone())
        .campaign()
        .unwrap();
    a.wait_until_leader().await;
    let b = Election::with_backend(&name, "b", backend.clone())
        .with_options(options)
        .campaign()
        .unwrap();
    // Let the leader renew at least once, as a long-running leader does.
    tokio::time::sleep(ttl / 2).await;
    switch.dead.store(true, Ordering::SeqCst);
    let died = Instant::now();
    b.wait_until_leader().await;
    let took = died.elapsed();
    b.stop().await;
    std::mem::forget(a); // its task hangs on the dead handle
    took
}

/// Uncontended permit acquire+release on a 4-permit semaphore.
async fn permit_pairs(backend: &SharedBackend, n: usize) -> Stats {
    let sem = AsyncSemaphore::with_backend("bench/permits", 4, backend.clone())
        .with_options(bench_options());
    pairs(n, || sem.try_acquire()).await
}

/// Commands per uncontended permit acquire and per permit release.
async fn commands_per_permit(s: &Setup, n: usize) -> Option<(f64, f64)> {
    let sem = AsyncSemaphore::with_backend("bench/permit-commands", 4, s.backend.clone())
        .with_options(bench_options());
    let (mut acquire, mut release) = (0, 0);
    for _ in 0..n {
        let a = (s.commands)()?;
        let permit = sem.try_acquire().await.unwrap().unwrap();
        let b = (s.commands)()?;
        permit.release().await.unwrap();
        let c = (s.commands)()?;
        acquire += b - a;
        release += c - b;
    }
    Some((acquire as f64 / n as f64, release as f64 / n as f64))
}

/// `tasks` tasks × `rounds` permit acquire/release on one `permits`-permit
/// semaphore.
async fn permit_throughput(
    backend: &SharedBackend,
    tasks: usize,
    permits: u32,
    rounds: usize,
) -> f64 {
    let sem = AsyncSemaphore::with_backend(
        format!("bench/permit-throughput/{}", uuid::Uuid::new_v4()),
        permits,
        backend.clone(),
    )
    .with_options(bench_options());
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let sem = sem.clone();
            tokio::spawn(async move {
                for _ in 0..rounds {
                    sem.acquire().await.unwrap().release().await.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    (tasks * rounds) as f64 / start.elapsed().as_secs_f64()
}

/// `tasks` tasks × `rounds` acquire/release, on one lock or on one lock each.
async fn throughput(backend: &SharedBackend, tasks: usize, rounds: usize, distinct: bool) -> f64 {
    let base = format!("bench/throughput/{}", uuid::Uuid::new_v4());
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let name = if distinct {
                format!("{base}/{i}")
            } else {
                base.clone()
            };
            let lock = AsyncLock::with_backend(name, backend.clone()).with_options(bench_options());
            tokio::spawn(async move {
                for _ in 0..rounds {
                    lock.acquire().await.unwrap().release().await.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    (tasks * rounds) as f64 / start.elapsed().as_secs_f64()
}

/// The throughput rows: 16 tasks on one lock, on 16 locks, on one
/// 4-permit semaphore.
async fn print_throughput(s: &Setup, label: &str) {
    println!("## Throughput under contention (acquire + release per second)\n");
    let rounds = if cfg!(feature = "mongo") && label == "mongo" {
        20
    } else {
        100
    };
    println!("| 16 tasks × {rounds} rounds | acquisitions/s |");
    println!("|---|---|");
    println!(
        "| one shared lock | {:.0} |",
        throughput(&s.backend, 16, rounds, false).await
    );
    println!(
        "| 16 distinct locks | {:.0} |",
        throughput(&s.backend, 16, rounds, true).await
    );
    println!(
        "| one 4-permit semaphore | {:.0} |",
        permit_throughput(&s.backend, 16, 4, rounds).await
    );
}

/// The handoff table: 1, 8 and 64 waiters in each mode, in round trips.
async fn print_handoff(s: &Setup, args: &Args, round_trip: Duration) {
    println!("## Handoff: release returned → next holder's acquire returned\n");
    println!(
        "Each waiter has its own handle (like separate processes); one round trip \
         (half a raw pair) is {}.\n",
        us(round_trip)
    );
    let handles: &[SharedBackend] = if s.separate.is_empty() {
        std::slice::from_ref(&s.backend)
    } else {
        &s.separate
    };
    let rt = |d: Duration| {
        if round_trip.is_zero() {
            us(d)
        } else {
            format!(
                "{} ({:.1} RT)",
                us(d),
                d.as_secs_f64() / round_trip.as_secs_f64()
            )
        }
    };
    #[cfg(feature = "mongo")]
    if matches!(s.raw, Raw::Mongo(_)) {
        println!(
            "The server's part of a handoff, without the library (measured first: the \
             server slows down through a run): N clients each with a change stream as \
             the release watcher opens it; when the streams delivered one release \
             (after the update returned), median over releases. A woken waiter's claim \
             adds one round trip to its stream's delivery.\n"
        );
        println!("| streams | first delivered | middle | last |");
        println!("|---|---|---|---|");
        for streams in args.waiters.clone() {
            if let Some([first, middle, last]) =
                stream_fanout(&s.raw, streams, (args.handoffs / 2).max(20)).await
            {
                println!(
                    "| {streams} | {} | {} | {} |",
                    rt(first),
                    rt(middle),
                    rt(last)
                );
            }
        }
        println!();
    }
    println!(
        "| waiters | default: median | p99 | claims / handoff | fair: median | p99 | claims / handoff \
         | Python's 62.5 ms poll: median | p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for waiters in args.waiters.clone() {
        let (default, default_claims) =
            handoff(handles, waiters, args.handoffs, Mode::Default).await;
        let (fair, fair_claims) = handoff(handles, waiters, args.handoffs, Mode::Fair).await;
        // The fixed poll is slow: fewer samples.
        let (python, _) = handoff(
            handles,
            waiters,
            (args.handoffs / 4).max(10),
            Mode::PythonPoll,
        )
        .await;
        println!(
            "| {waiters} | {} | {} | {default_claims:.1} | {} | {} | {fair_claims:.1} | {} | {} |",
            rt(default.median),
            rt(default.p99),
            rt(fair.median),
            rt(fair.p99),
            rt(python.median),
            rt(python.p99)
        );
    }
    // The rows above leave one open change stream per handle until it has
    // been idle for a while; each would still cost the server a delivery
    // per release in the rows below.
    streams_closed(handles).await;
    let (shared, shared_claims) = handoff(
        std::slice::from_ref(&s.backend),
        8,
        args.handoffs,
        Mode::Default,
    )
    .await;
    println!(
        "| 8, one shared handle | {} | {} | {shared_claims:.1} | | | | | |",
        rt(shared.median),
        rt(shared.p99)
    );
    if !s.sharing.is_empty() {
        for waiters in args.waiters.iter().copied().filter(|w| *w > 1) {
            let (default, default_claims) =
                handoff(&s.sharing, waiters, args.handoffs, Mode::Default).await;
            let (fair, fair_claims) = handoff(&s.sharing, waiters, args.handoffs, Mode::Fair).await;
            println!(
                "| {waiters}, own clients, one stream in the process | {} | {} | {default_claims:.1} | {} | {} | {fair_claims:.1} | | |",
                rt(default.median),
                rt(default.p99),
                rt(fair.median),
                rt(fair.p99),
            );
        }
    }
    report_failures();
}

/// The idle-waiter rows: attempts and database work per second per waiter
/// while the lock is held.
async fn print_idle(s: &Setup, args: &Args) {
    println!("\n## Idle waiters: load while the lock is held\n");
    println!(
        "| waiters | mode | acquire attempts/s | per waiter | {}/s | per waiter |",
        s.command_unit
    );
    println!("|---|---|---|---|---|---|");
    for waiters in [1, 8, 64] {
        for mode in [Mode::Default, Mode::Fair, Mode::PythonPoll] {
            let (attempts, commands) = waiter_load(s, waiters, args.hold, mode).await;
            println!(
                "| {waiters} | {mode:?} | {attempts:.1} | {:.2} | {} | {} |",
                attempts / waiters as f64,
                commands.map_or("-".to_owned(), |c| format!("{c:.1}")),
                commands.map_or("-".to_owned(), |c| format!("{:.2}", c / waiters as f64))
            );
        }
    }
    println!("\n(Fair waiters also renew their tickets: one write per ttl / 3 each.)\n");
    report_failures();
}

/// The MongoDB command shapes table (nothing on other backends).
async fn print_shapes(s: &Setup, n: usize) {
    #[cfg(feature = "mongo")]
    if let Some(shapes) = mongo_shapes(&s.raw, n).await {
        println!("## MongoDB command shapes: one acquire + one release, raw driver\n");
        println!("| shape | median | p99 | ratio to insert + delete |");
        println!("|---|---|---|---|");
        let base = shapes[2].1.median.as_secs_f64();
        for (label, st) in &shapes {
            println!(
                "| {label} | {} | {} | {:.2} |",
                us(st.median),
                us(st.p99),
                st.median.as_secs_f64() / base
            );
        }
        println!();
    }
    #[cfg(not(feature = "mongo"))]
    let _ = (s, n);
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = parse_args();
    let s = setup(args.kind).await;
    let label = format!("{:?}", args.kind).to_lowercase();
    println!("# shylock benchmark: {label} backend\n");
    match args.only {
        Some(Only::Throughput) => {
            print_throughput(&s, &label).await;
            (s.cleanup)();
            return;
        }
        Some(Only::Uncontended) => {
            uncontended(&s, args.pairs, &label).await;
            print_shapes(&s, args.pairs / 2).await;
            (s.cleanup)();
            return;
        }
        Some(Only::Idle) => {
            print_idle(&s, &args).await;
            (s.cleanup)();
            return;
        }
        Some(Only::Handoff) => {
            let raw = raw_pairs(&s.raw, args.pairs).await;
            print_handoff(&s, &args, raw.median / 2).await;
            (s.cleanup)();
            return;
        }
        None => {}
    }
    println!(
        "{} cores; {} uncontended pairs, {} handoffs per row, {:?} waiter-load window\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        args.pairs,
        args.handoffs,
        args.hold
    );

    let raw = uncontended(&s, args.pairs, &label).await;
    let half = args.pairs / 2;

    println!("## Database work per operation\n");
    match commands_per_op(&s, 100).await {
        Some((a, r)) => {
            println!("| per uncontended acquire | per release | unit |");
            println!("|---|---|---|");
            println!("| {a:.2} | {r:.2} | {} |\n", s.command_unit);
        }
        None => println!("(in-process backend: no database commands)\n"),
    }

    // One round trip: half an uncontended raw pair.
    let round_trip = raw.median / 2;
    print_handoff(&s, &args, round_trip).await;
    let handles: &[SharedBackend] = if s.separate.is_empty() {
        std::slice::from_ref(&s.backend)
    } else {
        &s.separate
    };

    println!("\n## Fairness: 8 waiters taking turns\n");
    println!("| mode | grants to the longest waiter | max wait | mean wait | max / mean |");
    println!("|---|---|---|---|---|");
    for mode in [Mode::Default, Mode::Fair] {
        let (share, max, mean) = fairness(handles, mode, args.handoffs).await;
        println!(
            "| {mode:?} | {:.0} % | {} | {} | {:.1} |",
            share * 100.0,
            us(max),
            us(mean),
            max.as_secs_f64() / mean.as_secs_f64().max(1e-9)
        );
    }

    report_failures();
    print_idle(&s, &args).await;

    print_shapes(&s, half).await;

    print_throughput(&s, &label).await;

    println!("\n## Semaphore permits beside locks (same run)\n");
    let lock_pairs = library_pairs(&s.backend, half, bench_options()).await;
    let permit = permit_pairs(&s.backend, half).await;
    println!("| uncontended acquire + release | median | p99 | pairs/s |");
    println!("|---|---|---|---|");
    println!(
        "| lock | {} | {} | {:.0} |",
        us(lock_pairs.median),
        us(lock_pairs.p99),
        lock_pairs.per_sec
    );
    println!(
        "| permit of a 4-permit semaphore | {} | {} | {:.0} |",
        us(permit.median),
        us(permit.p99),
        permit.per_sec
    );
    println!(
        "| ratio permit / lock | {:.2} | {:.2} | {:.2} |\n",
        permit.median.as_secs_f64() / lock_pairs.median.as_secs_f64(),
        permit.p99.as_secs_f64() / lock_pairs.p99.as_secs_f64(),
        permit.per_sec / lock_pairs.per_sec
    );
    if let Some((a, r)) = commands_per_permit(&s, 100).await {
        println!("| per uncontended permit acquire | per permit release | unit |");
        println!("|---|---|---|");
        println!("| {a:.2} | {r:.2} | {} |\n", s.command_unit);
    }

    println!("## Election failover: leader dead → follower leads\n");
    println!("| ttl | failover (3 runs) | failover / ttl |");
    println!("|---|---|---|");
    for ttl in [Duration::from_secs(1), Duration::from_secs(3)] {
        let mut runs = Vec::new();
        for _ in 0..3 {
            runs.push(failover(&s.backend, ttl).await);
        }
        let worst = runs.iter().max().copied().unwrap_or_default();
        println!(
            "| {ttl:?} | {} | {:.2} |",
            runs.iter()
                .map(|d| format!("{:.2} s", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", "),
            worst.as_secs_f64() / ttl.as_secs_f64()
        );
    }
    println!(
        "\n(client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry: about 15-17 s.)\n"
    );
    (s.cleanup)();
}
