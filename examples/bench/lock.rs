//! Uncontended acquire + release of a lock or a permit, through the
//! library, through the backend alone and as raw database work; the
//! database work per operation; and (MongoDB) other command shapes.

use std::time::{Duration, Instant};

use shylock::backend::{Backend, Deadline};
use shylock::{AsyncLock, AsyncRwLock, AsyncSemaphore, LockOptions, Renewal, SharedBackend};

use crate::report::{stats, us, CpuMark, Stats};
use crate::setup::{Raw, Setup};

pub(crate) fn bench_options() -> LockOptions {
    LockOptions::default().ttl(Duration::from_secs(30))
}

/// Uncontended acquire+release through the library.
pub(crate) async fn library_pairs(
    backend: &SharedBackend,
    n: usize,
    options: LockOptions,
) -> Stats {
    let lock = AsyncLock::with_backend("bench/uncontended", backend.clone()).with_options(options);
    pairs(n, || lock.try_acquire()).await
}

/// The uncontended rows: shylock with its default background renewal,
/// shylock with `Renewal::Off`, and the raw database work, interleaved in
/// rounds. Returns the raw figures.
pub(crate) async fn uncontended(s: &Setup, n: usize, label: &str) -> Stats {
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
        cpu: runs
            .iter()
            .map(|r| r.cpu)
            .sum::<Option<Duration>>()
            .map(|total| total / ROUNDS as u32),
    });
    println!("## Uncontended acquire + release\n");
    println!("| | median | p99 | pairs/s | ratio to raw (median / p99) | client CPU per pair |");
    println!("|---|---|---|---|---|---|");
    for (row, st) in [
        ("shylock", &lib),
        ("shylock, `Renewal::Off`", &lib_off),
        ("the backend's `claim` + `release` alone (no guard)", &bare),
        (&format!("raw {label} (same database work)"), &raw),
    ] {
        println!(
            "| {row} | {} | {} | {:.0} | {:.3} / {:.3} | {} |",
            us(st.median),
            us(st.p99),
            st.per_sec,
            st.median.as_secs_f64() / raw.median.as_secs_f64(),
            st.p99.as_secs_f64() / raw.p99.as_secs_f64(),
            st.cpu.map_or("-".to_owned(), us),
        );
    }
    println!();
    raw
}

/// `n` uncontended pairs of a backend's own `claim` and `release` on
/// `name`: the library's database work without its guard, renewal and
/// observability.
pub(crate) async fn backend_pairs<B: Backend + ?Sized>(backend: &B, name: &str, n: usize) -> Stats {
    let owner = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let ttl = Duration::from_secs(30);
    let mut samples = Vec::with_capacity(n);
    let (start, cpu) = (Instant::now(), CpuMark::now());
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
    stats(samples, start.elapsed()).with_cpu(cpu, n)
}

/// `n` timed uncontended pairs of `try_acquire` (which must win) and
/// release, after a warm-up of n / 10.
pub(crate) async fn pairs<F, Fut>(n: usize, try_acquire: F) -> Stats
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
    let (start, cpu) = (Instant::now(), CpuMark::now());
    for _ in 0..n {
        let t = Instant::now();
        let guard = try_acquire()
            .await
            .unwrap()
            .expect("uncontended lease was held");
        guard.release().await.unwrap();
        samples.push(t.elapsed());
    }
    stats(samples, start.elapsed()).with_cpu(cpu, n)
}

/// The same database work without the library.
pub(crate) async fn raw_pairs(raw: &Raw, n: usize) -> Stats {
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
            let (start, cpu) = (Instant::now(), CpuMark::now());
            for _ in 0..n {
                let t = Instant::now();
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .unwrap();
                let n = now();
                let _fence: i64 = tx
                    .prepare_cached(shylock::sqlite::queries::ACQUIRE)
                    .unwrap()
                    .query_row(
                        params![b"bench/raw".as_slice(), owner, n + 30_000, n],
                        |r| r.get(0),
                    )
                    .unwrap();
                tx.commit().unwrap();
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .unwrap();
                tx.prepare_cached(shylock::sqlite::queries::RELEASE)
                    .unwrap()
                    .execute(params![b"bench/raw".as_slice(), owner])
                    .unwrap();
                tx.commit().unwrap();
                samples.push(t.elapsed());
            }
            stats(samples, start.elapsed()).with_cpu(cpu, n)
        }
        #[cfg(feature = "mongo")]
        Raw::Mongo(collection) => {
            use bson::doc;
            use shylock::mongo::mongodb::options::ReturnDocument;
            let pipeline = shylock::mongo::acquire_pipeline(owner, 30_000, None);
            let (start, cpu) = (Instant::now(), CpuMark::now());
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
            stats(samples, start.elapsed()).with_cpu(cpu, n)
        }
        #[cfg(feature = "postgres")]
        Raw::Postgres(backend) => {
            use shylock::postgres::sqlx;
            let sql = backend.statements();
            let key = b"bench/raw".to_vec();
            let (start, cpu) = (Instant::now(), CpuMark::now());
            for i in 0..n {
                let t = Instant::now();
                let _grant = sqlx::query(&sql.claim)
                    .bind(&key)
                    .bind(owner)
                    .bind(30_000_i64)
                    .bind(None::<Vec<u8>>)
                    .fetch_optional(backend.pool())
                    .await
                    .unwrap()
                    .expect("raw claim refused");
                sqlx::query(&sql.release)
                    .bind(&key)
                    .bind(owner)
                    .bind(format!("{i:016x}"))
                    .fetch_one(backend.pool())
                    .await
                    .unwrap();
                samples.push(t.elapsed());
            }
            stats(samples, start.elapsed()).with_cpu(cpu, n)
        }
    }
}

/// PostgreSQL only: `pg_try_advisory_lock` + `pg_advisory_unlock` on one
/// held connection (session locks need it), the usual alternative.
#[cfg(feature = "postgres")]
pub(crate) async fn advisory_pairs(raw: &Raw, n: usize) -> Option<Stats> {
    use shylock::postgres::sqlx;
    let Raw::Postgres(backend) = raw else {
        return None;
    };
    let mut conn = backend.pool().acquire().await.unwrap();
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(7_i64)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert!(got);
        let _: bool = sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
            .bind(7_i64)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        samples.push(t.elapsed());
    }
    Some(stats(samples, start.elapsed()))
}

/// Commands per uncontended acquire and per release.
pub(crate) async fn commands_per_op(s: &Setup, n: usize) -> Option<(f64, f64)> {
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

/// Uncontended permit acquire+release on a 4-permit semaphore.
pub(crate) async fn permit_pairs(backend: &SharedBackend, n: usize) -> Stats {
    let sem = AsyncSemaphore::with_backend("bench/permits", 4, backend.clone())
        .with_options(bench_options());
    pairs(n, || sem.try_acquire()).await
}

/// Uncontended read (or write) acquire+release of a read/write lock.
pub(crate) async fn rw_pairs(backend: &SharedBackend, n: usize, write: bool) -> Stats {
    let rw = AsyncRwLock::with_backend("bench/rw", backend.clone()).with_options(bench_options());
    if write {
        pairs(n, || async {
            Ok(rw
                .try_write()
                .await?
                .map(shylock::AsyncWriteGuard::into_inner))
        })
        .await
    } else {
        pairs(n, || async {
            Ok(rw
                .try_read()
                .await?
                .map(shylock::AsyncReadGuard::into_inner))
        })
        .await
    }
}

/// Read acquire+release pairs per second of `tasks` tasks sharing one
/// read/write lock for `run`.
pub(crate) async fn reader_throughput(backend: &SharedBackend, tasks: usize, run: Duration) -> f64 {
    let rw = AsyncRwLock::with_backend("bench/rw-readers", backend.clone())
        .with_options(bench_options());
    let end = Instant::now() + run;
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let rw = rw.clone();
            tokio::spawn(async move {
                let mut done = 0_u64;
                while Instant::now() < end {
                    rw.read().await.unwrap().release().await.unwrap();
                    done += 1;
                }
                done
            })
        })
        .collect();
    let started = Instant::now();
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Commands per uncontended permit acquire and per permit release.
pub(crate) async fn commands_per_permit(s: &Setup, n: usize) -> Option<(f64, f64)> {
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

/// MongoDB only: the cost of other command shapes for one acquire and one
/// release, each pair measured in the same run.
#[cfg(feature = "mongo")]
pub(crate) async fn mongo_shapes(raw: &Raw, n: usize) -> Option<[(&'static str, Stats); 3]> {
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

/// The MongoDB command shapes table (nothing on other backends).
pub(crate) async fn print_shapes(s: &Setup, n: usize) {
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
    #[cfg(feature = "postgres")]
    if let Some(advisory) = advisory_pairs(&s.raw, n).await {
        let raw = raw_pairs(&s.raw, n).await;
        let lib = library_pairs(&s.backend, n, bench_options()).await;
        println!("## PostgreSQL: shylock beside advisory locks, same run\n");
        println!("| one acquire + one release | median | p99 | pairs/s |");
        println!("|---|---|---|---|");
        for (label, st) in [
            ("shylock (a row, through the pool)", &lib),
            ("raw sqlx, the same two statements", &raw),
            (
                "`pg_try_advisory_lock` + `pg_advisory_unlock` (one held connection)",
                &advisory,
            ),
        ] {
            println!(
                "| {label} | {} | {} | {:.0} |",
                us(st.median),
                us(st.p99),
                st.per_sec
            );
        }
        println!();
    }
    #[cfg(not(any(feature = "mongo", feature = "postgres")))]
    let _ = (s, n);
}
