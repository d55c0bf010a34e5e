//! The scheduler: sets up the store and the proxy, starts the workers,
//! injects faults for the run's duration, stops the workers, checks that
//! nothing is left held, then checks the history and prints the summary.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shylock::{AsyncLock, AsyncSemaphore, LockOptions, SharedBackend};
use shylock_core::testkit::FaultProxy;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::check::check;
use crate::faults::{Chaos, KINDS};
use crate::fleet::Fleet;
use crate::history::now_us;
use crate::store::{connect, Kind, Store};
use crate::worker::{TARGETS, TTL_MS};

/// Options of a run.
#[derive(Debug)]
pub(crate) struct RunArgs {
    pub(crate) kind: Kind,
    pub(crate) minutes: f64,
    pub(crate) workers: u32,
    pub(crate) seed: u64,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) keep: bool,
}

/// Violations printed in full; the rest are counted.
const PRINT_LIMIT: usize = 20;

/// Runs the whole thing; the process's exit code (0: no violation).
pub(crate) async fn run(args: RunArgs) -> i32 {
    let label = args.kind.label();
    let run_id = format!("{}_{}", std::process::id(), now_us() % 1_000_000);
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("shylock-chaos-{label}-{}", std::process::id()))
    });
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("chaos: cannot create {}: {e}", dir.display());
        return 2;
    }
    let history = dir.join("history");
    eprintln!(
        "chaos {label}: {} workers for {} min, seed {}, history in {}",
        args.workers,
        args.minutes,
        args.seed,
        history.display()
    );
    let store = match Store::open(args.kind, &dir, &run_id).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("chaos {label}: could not set up the store: {e}");
            return 2;
        }
    };
    let proxy = match store.upstream() {
        Some(addr) => match FaultProxy::start(addr).await {
            Ok(proxy) => Some(Arc::new(proxy)),
            Err(e) => {
                eprintln!("chaos {label}: could not start the proxy: {e}");
                return 2;
            }
        },
        None => None,
    };
    let spec = store.spec(proxy.as_ref().map(|p| p.addr()));
    let direct = store.spec(None);
    let store = Arc::new(Mutex::new(store));
    let code = match Fleet::new(args.workers, spec, history.clone(), dir.clone(), args.seed) {
        Ok(fleet) => {
            run_with(
                &args,
                Arc::new(fleet),
                proxy,
                store.clone(),
                &direct,
                &history,
            )
            .await
        }
        Err(e) => {
            eprintln!("chaos {label}: {e}");
            2
        }
    };
    store.lock().await.shutdown().await;
    if code == 0 && !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("chaos {label}: history and logs kept in {}", dir.display());
    }
    code
}

async fn run_with(
    args: &RunArgs,
    fleet: Arc<Fleet>,
    proxy: Option<Arc<FaultProxy>>,
    store: Arc<Mutex<Store>>,
    direct: &str,
    history: &std::path::Path,
) -> i32 {
    let label = args.kind.label();
    for slot in 0..args.workers {
        if let Err(e) = fleet.spawn(slot).await {
            eprintln!("chaos {label}: could not start worker {slot}: {e}");
            fleet.stop_all(Duration::from_secs(5)).await;
            return 2;
        }
    }
    let chaos = Arc::new(Chaos::new(fleet.clone(), proxy, store));
    let kinds: Vec<&str> = chaos.kinds().await.iter().map(|k| k.0).collect();
    // Ctrl-C ends the faults early; the run is then stopped and checked.
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::SeqCst);
            }
        });
    }
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(args.minutes * 60.0);
    let mut rng = fastrand::Rng::with_seed(args.seed);
    chaos
        .clone()
        .run(until, &mut rng, || interrupted.load(Ordering::SeqCst))
        .await;
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let last_exit = fleet.stop_all(Duration::from_secs(15)).await;
    for held in still_held(direct, last_exit).await {
        fleet.record(&[&"H", &held]);
    }
    let broken = chaos
        .broken
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();

    let text = std::fs::read_to_string(history).unwrap_or_default();
    let report = check(&text);
    for v in report.violations.iter().take(PRINT_LIMIT) {
        println!("VIOLATION {v}");
    }
    if report.violations.len() > PRINT_LIMIT {
        println!(
            "... and {} more violations",
            report.violations.len() - PRINT_LIMIT
        );
    }
    let faults: Vec<String> = KINDS
        .iter()
        .filter(|k| kinds.contains(k))
        .map(|k| format!("{k} {}", report.faults.get(*k).copied().unwrap_or(0)))
        .collect();
    println!(
        "chaos {label}: {minutes:.1} min, {} workers, faults: {}; grants {} (lost {}, killed mid-hold {}, no grant {}); violations {}",
        args.workers,
        faults.join(", "),
        report.grants,
        report.lost,
        report.unfinished,
        report.misses,
        report.violations.len()
    );
    if let Some(why) = broken {
        eprintln!("chaos {label}: the run was cut short: {why}");
        return 2;
    }
    if report.violations.is_empty() {
        0
    } else {
        1
    }
}

/// Once every worker is gone, every lease ends within its ttl: polls each
/// name (straight to the store, not through the proxy) until all are free
/// or the longest ttl since the last worker ended (plus a second) has
/// passed; what is still held then, one line per holder.
async fn still_held(direct: &str, last_exit_us: u64) -> Vec<String> {
    let backend = match connect(direct, true).await {
        Ok(backend) => backend,
        Err(e) => return vec![format!("- (could not connect to check: {e})")],
    };
    let deadline_us = last_exit_us + (TTL_MS.end() + 1000) * 1000;
    loop {
        let held = holders(&backend).await;
        if held.is_empty() || now_us() > deadline_us {
            return held;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn holders(backend: &SharedBackend) -> Vec<String> {
    let options = LockOptions::default().operation_timeout(Duration::from_secs(5));
    let mut held = Vec::new();
    for (kind, name, limit) in TARGETS {
        let found = if kind == "sem" {
            AsyncSemaphore::with_backend(name, limit, backend.clone())
                .with_options(options.clone())
                .inspect()
                .await
                .map(|info| info.holders)
        } else {
            AsyncLock::with_backend(name, backend.clone())
                .with_options(options.clone())
                .inspect()
                .await
                .map(|info| info.into_iter().collect())
        };
        match found {
            Ok(holders) => held.extend(holders.into_iter().map(|h| {
                format!(
                    "{name} owner={} token={} expires_us={}",
                    h.owner,
                    h.fencing_token,
                    crate::history::to_us(h.expires_at)
                )
            })),
            Err(e) => held.push(format!("{name} (inspect failed: {e})")),
        }
    }
    held
}
