//! Benchmarks: cost per lock and per semaphore permit, handoff latency,
//! waiter load and throughput,
//! each beside the raw database doing the same work, measured in one run.
//!
//! ```sh
//! cargo run --release --example bench --features bench -- --backend memory
//! cargo run --release --example bench --features bench -- --backend sqlite
//! MONGODB_URI="mongodb://127.0.0.1:27017/?directConnection=true" \
//!     cargo run --release --example bench --features bench,mongo -- --backend mongo
//! POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres" \
//!     cargo run --release --example bench --features bench,postgres -- --backend postgres
//! ```
//!
//! Options: `--pairs N` (uncontended pairs, default 2000; 500 on mongo),
//! `--handoffs N` (per waiter count, default 200), `--waiters 1,8,64`
//! (waiter counts of the handoff rows), `--hold-secs N` (waiter load
//! window, default 3), `--only throughput|handoff` (just that section).
//! Prints markdown tables. Machines are noisy:
//! compare the ratios within one run, not absolute numbers across runs.
//!
//! This file reads the options and prints the sections in order; each
//! section's measurements are in a file of their own (`lock.rs`,
//! `handoff.rs`, `idle.rs`, `throughput.rs`, `election.rs`), beside the
//! store setup (`setup.rs`) and the shared summaries (`report.rs`).

mod election;
mod handoff;
mod idle;
mod lock;
mod report;
mod setup;
mod throughput;

use std::time::Duration;

use shylock::SharedBackend;

use crate::election::failover;
use crate::handoff::{fairness, print_handoff, Mode};
use crate::idle::print_idle;
use crate::lock::{
    bench_options, commands_per_op, commands_per_permit, library_pairs, permit_pairs, print_shapes,
    raw_pairs, reader_throughput, rw_pairs, uncontended,
};
use crate::report::{report_failures, us};
use crate::setup::{setup, Setup};
use crate::throughput::print_throughput;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Memory,
    Sqlite,
    #[cfg(feature = "mongo")]
    Mongo,
    #[cfg(feature = "postgres")]
    Postgres,
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
        "usage: bench --backend memory|sqlite|mongo|postgres [--pairs N] [--handoffs N] [--hold-secs N] [--only uncontended|idle|throughput|handoff] [--waiters 1,8,64]\n\
         (mongo needs --features mongo and MONGODB_URI, postgres --features postgres and POSTGRES_URL)"
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
                    #[cfg(feature = "postgres")]
                    "postgres" => Kind::Postgres,
                    #[cfg(not(feature = "postgres"))]
                    "postgres" => {
                        eprintln!("the postgres backend needs: cargo run --release --example bench --features bench,postgres -- --backend postgres");
                        std::process::exit(2)
                    }
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
            print_rwlocks(&s, args.pairs / 2).await;
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

    print_rwlocks(&s, half).await;

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

/// Read and write leases of a read/write lock beside the lock, and the
/// read throughput of 16 tasks sharing one name.
async fn print_rwlocks(s: &Setup, n: usize) {
    println!("\n## Read/write locks beside locks (same run)\n");
    println!("| uncontended acquire + release | median | p99 | pairs/s |");
    println!("|---|---|---|---|");
    let lock = library_pairs(&s.backend, n, bench_options()).await;
    let read = rw_pairs(&s.backend, n, false).await;
    let write = rw_pairs(&s.backend, n, true).await;
    for (row, st) in [
        ("lock", &lock),
        ("read lease of a read/write lock", &read),
        ("write lease of a read/write lock", &write),
    ] {
        println!(
            "| {row} | {} | {} | {:.0} |",
            us(st.median),
            us(st.p99),
            st.per_sec
        );
    }
    let readers = reader_throughput(&s.backend, 16, std::time::Duration::from_secs(2)).await;
    println!(
        "\n16 tasks reading one read/write lock: {readers:.0} read acquire + release pairs/s.\n"
    );
}
