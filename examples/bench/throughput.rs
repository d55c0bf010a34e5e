//! Throughput under contention: tasks on one lock, on a lock each, and
//! on one semaphore.

use std::time::Instant;

use shylock::{AsyncLock, AsyncSemaphore, SharedBackend};

use crate::lock::bench_options;
use crate::setup::Setup;

/// `tasks` tasks × `rounds` permit acquire/release on one `permits`-permit
/// semaphore.
pub(crate) async fn permit_throughput(
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
pub(crate) async fn throughput(
    backend: &SharedBackend,
    tasks: usize,
    rounds: usize,
    distinct: bool,
) -> f64 {
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
pub(crate) async fn print_throughput(s: &Setup, label: &str) {
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
