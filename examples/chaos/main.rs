//! A randomized chaos run: worker processes take locks, a semaphore and a
//! fair lock in a loop while the scheduler pauses (SIGSTOP) and kills
//! (SIGKILL) them, stalls, cuts and slows their connections through a
//! fault proxy, and kills and restarts the database; afterwards a checker
//! reads the history of every critical section and reports any violation.
//!
//! ```sh
//! cargo run --release --example chaos -- --backend sqlite --minutes 10
//! SECANTUSD=.../secantusd-py \
//!     cargo run --release --example chaos --features mongo -- --backend mongo
//! SHYLOCK_PG_BIN=/usr/lib/postgresql/15/bin SHYLOCK_PG_RUN_AS="runuser -u postgres --" \
//!     cargo run --release --example chaos --features postgres -- --backend postgres
//! scripts/chaos.sh            # sets the servers up and runs every backend
//! ```
//!
//! Options: `--minutes F` (default 10), `--workers N` (default 6),
//! `--seed N` (the fault schedule's seed; default random, printed),
//! `--dir PATH` (where the history and logs go; default a temp dir, removed
//! after a clean run), `--keep` (keep it anyway).
//!
//! MongoDB: with `SECANTUSD` the run starts its own SecantusDB with an
//! on-disk store, so it can kill it (SIGKILL) and start it again; with only
//! `MONGODB_URI` it uses that server and leaves the database alone.
//! PostgreSQL: with `SHYLOCK_PG_BIN` (and, as root, `SHYLOCK_PG_RUN_AS`) it
//! makes its own cluster and crashes it with `pg_ctl stop -m immediate`;
//! with only `POSTGRES_URL` it uses that server.
//!
//! Prints one summary line, e.g. `chaos sqlite: 10.0 min, 6 workers,
//! faults: stop 41, kill 12; grants 48213 (...); violations 0`, after the
//! violations if there are any (with the history lines that show them);
//! exits with 1 on a violation, 2 when the run could not be made.
//!
//! Files: `worker.rs` (the worker processes), `fleet.rs` (starting,
//! pausing, killing them), `faults.rs` (the fault schedule), `store.rs` and
//! `servers.rs` (the store and its server), `history.rs` (the history
//! file), `check.rs` (the checker), `run.rs` (the scheduler's run).

mod check;
mod faults;
mod fleet;
mod history;
mod run;
#[cfg(any(feature = "mongo", feature = "postgres"))]
mod servers;
mod store;
mod worker;

use std::path::PathBuf;

use crate::run::RunArgs;
use crate::store::Kind;
use crate::worker::WorkerArgs;

fn usage() -> ! {
    eprintln!(
        "usage: chaos --backend sqlite|mongo|postgres [--minutes F] [--workers N] [--seed N] [--dir PATH] [--keep]\n\
         (mongo and postgres need the features of the same name)"
    );
    std::process::exit(2)
}

enum Mode {
    Run(RunArgs),
    Worker(WorkerArgs),
}

fn parse_args() -> Mode {
    let mut args = std::env::args().skip(1);
    let mut worker = false;
    let (mut kind, mut minutes, mut workers, mut seed, mut dir, mut keep) =
        (None, 10.0, 6, fastrand::u64(..), None, false);
    let (mut slot, mut inc, mut store, mut history) = (0, 0, String::new(), PathBuf::new());
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--backend" => kind = Some(Kind::parse(&value()).unwrap_or_else(|| usage())),
            "--minutes" => minutes = value().parse().unwrap_or_else(|_| usage()),
            "--workers" => workers = value().parse().unwrap_or_else(|_| usage()),
            "--seed" => seed = value().parse().unwrap_or_else(|_| usage()),
            "--dir" => dir = Some(PathBuf::from(value())),
            "--keep" => keep = true,
            // What the scheduler passes to its workers.
            "--worker" => worker = true,
            "--slot" => slot = value().parse().unwrap_or_else(|_| usage()),
            "--inc" => inc = value().parse().unwrap_or_else(|_| usage()),
            "--store" => store = value(),
            "--history" => history = PathBuf::from(value()),
            _ => usage(),
        }
    }
    if worker {
        return Mode::Worker(WorkerArgs {
            slot,
            inc,
            store,
            history,
            seed,
        });
    }
    if workers == 0 || minutes <= 0.0 || !f64::is_finite(minutes) {
        usage();
    }
    Mode::Run(RunArgs {
        kind: kind.unwrap_or_else(|| usage()),
        minutes,
        workers,
        seed,
        dir,
        keep,
    })
}

fn main() {
    let mode = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match mode {
        Mode::Worker(args) => {
            // The scheduler holds our stdin open; end of input means it is
            // gone, and so is the run.
            std::thread::spawn(|| {
                use std::io::Read;
                let mut buf = [0u8; 64];
                loop {
                    match std::io::stdin().read(&mut buf) {
                        // A signal (SIGTERM) landed on this thread.
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Ok(n) if n > 0 => {}
                        end => {
                            eprintln!("worker: the scheduler is gone (stdin: {end:?}); exiting");
                            std::process::exit(3)
                        }
                    }
                }
            });
            runtime.block_on(worker::run(args));
        }
        Mode::Run(args) => {
            let code = runtime.block_on(run::run(args));
            drop(runtime);
            std::process::exit(code);
        }
    }
}
