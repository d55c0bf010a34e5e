//! Quickstart: several processes fight over one lock kept in a SQLite file,
//! one of them is killed while it holds the lock, and the others take over
//! once its lease runs out.
//!
//! ```sh
//! cargo run --example quickstart
//! cargo run --example quickstart -- --workers 6 --rounds 5 --ttl-ms 1500
//! ```
//!
//! Each worker is this same program started with `--worker`; it uses the
//! async API (`AsyncLock::new(..).acquire().await`) and writes a line to a
//! shared log right after it got the lock and right before it releases it.
//! The parent prints that log as a timeline and checks that no two holders
//! ever overlapped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shylock::{AsyncLock, Lock, LockOptions, SqliteBackend};
use shylock_core::testkit::{check_hold_log, parse_hold_line, HoldEvent, HoldKind, HoldLog};

const LOCK_NAME: &str = "quickstart/nightly-report";
const VICTIM: &str = "w1";

#[derive(Debug, Clone)]
struct Settings {
    workers: usize,
    rounds: usize,
    ttl: Duration,
    hold: Duration,
}

fn usage() -> ! {
    eprintln!(
        "usage: quickstart [--workers N (default 4, at least 2)] [--rounds N (default 3)] \
         [--ttl-ms N (default 2000)] [--hold-ms N (default 150)]"
    );
    std::process::exit(2)
}

fn parse_args() -> (Settings, Option<(String, PathBuf)>) {
    let mut settings = Settings {
        workers: 4,
        rounds: 3,
        ttl: Duration::from_millis(2000),
        hold: Duration::from_millis(150),
    };
    let mut worker = None;
    let mut dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        let number = |v: String| v.parse::<u64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--workers" => settings.workers = number(value()) as usize,
            "--rounds" => settings.rounds = number(value()) as usize,
            "--ttl-ms" => settings.ttl = Duration::from_millis(number(value())),
            "--hold-ms" => settings.hold = Duration::from_millis(number(value())),
            "--worker" => worker = Some(value()),
            "--dir" => dir = Some(PathBuf::from(value())),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    if settings.workers < 2 || settings.rounds == 0 || settings.ttl < Duration::from_millis(100) {
        eprintln!("need at least 2 workers, 1 round and a ttl of at least 100 ms");
        usage();
    }
    (settings, worker.zip(dir))
}

fn main() {
    let (settings, worker) = parse_args();
    let outcome = match worker {
        Some((id, dir)) => run_worker(&id, &dir, &settings),
        None => run_parent(&settings),
    };
    if let Err(error) = outcome {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

/// A worker process: takes the lock `rounds` times. The victim holds it
/// until it is killed.
#[tokio::main(flavor = "current_thread")]
async fn run_worker(id: &str, dir: &Path, s: &Settings) -> Result<(), Box<dyn std::error::Error>> {
    shylock::configure_with(
        SqliteBackend::open(dir.join("locks.db"))?,
        LockOptions::default().ttl(s.ttl),
    )?;
    let mut log = HoldLog::open(dir.join("holds.log"))?;
    let lock = AsyncLock::new(LOCK_NAME);
    // The victim crashes during its second round (its first if there is one).
    let crash_round = 1.min(s.rounds - 1);
    for round in 0..s.rounds {
        let started = Instant::now();
        let guard = lock.acquire().await?;
        log.begin(id, guard.fencing_token(), started.elapsed())?;
        if id == VICTIM && round == crash_round {
            // Pretend to work forever; the parent kills us with SIGKILL.
            tokio::time::sleep(s.ttl * 100).await;
        }
        tokio::time::sleep(s.hold).await;
        log.end(id, guard.fencing_token())?;
        guard.release().await?;
        // Other work between rounds, so the others get their turn.
        tokio::time::sleep(s.hold).await;
    }
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn run_parent(s: &Settings) -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("shylock-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let log_path = dir.join("holds.log");
    std::fs::write(&log_path, "")?;
    println!(
        "shylock quickstart: {} worker processes x {} rounds on lock {LOCK_NAME:?}, ttl {} ms",
        s.workers,
        s.rounds,
        s.ttl.as_millis()
    );
    println!("lock file: {}", dir.join("locks.db").display());
    println!("worker {VICTIM} will be killed (SIGKILL) while it holds the lock\n");

    // The parent looks at the same lock with the blocking API.
    let parent_lock = Lock::with_backend(LOCK_NAME, SqliteBackend::open(dir.join("locks.db"))?);

    let exe = std::env::current_exe()?;
    let mut children: Vec<(String, Child)> = Vec::new();
    for i in 0..s.workers {
        let id = format!("w{i}");
        let child = Command::new(&exe)
            .args(["--worker", &id, "--dir"])
            .arg(&dir)
            .args(["--rounds", &s.rounds.to_string()])
            .args(["--ttl-ms", &s.ttl.as_millis().to_string()])
            .args(["--hold-ms", &s.hold.as_millis().to_string()])
            .stdout(Stdio::null())
            .spawn()?;
        children.push((id, child));
    }

    let start_ms = now_ms();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60) + s.ttl * 4;
    let mut seen = 0usize;
    let mut events: Vec<HoldEvent> = Vec::new();
    let mut killed_at: Option<u64> = None;
    let mut recovery_ms: Option<u64> = None;
    loop {
        let text = std::fs::read_to_string(&log_path)?;
        // Only complete lines: a worker may be halfway through a write.
        let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
        for line in complete.lines().skip(seen) {
            seen += 1;
            let Some(event) = parse_hold_line(line) else {
                continue;
            };
            let at = event.at_ms.saturating_sub(start_ms) as f64 / 1000.0;
            match event.kind {
                HoldKind::Begin => {
                    print!(
                        "{at:7.3}s  {:<3} acquired  token {:<4} waited {:>5} ms",
                        event.worker,
                        event.fencing_token,
                        event.waited_us / 1000
                    );
                    if let (Some(kill), None) = (killed_at, recovery_ms) {
                        let took = event.at_ms.saturating_sub(kill);
                        recovery_ms = Some(took);
                        print!("   <- took over {took} ms after the crash");
                    }
                    println!();
                }
                HoldKind::End => println!(
                    "{at:7.3}s  {:<3} released  token {}",
                    event.worker, event.fencing_token
                ),
            }
            let victim_begins = events
                .iter()
                .filter(|e| e.kind == HoldKind::Begin && e.worker == VICTIM)
                .count();
            let crash_round = 1.min(s.rounds - 1);
            if event.kind == HoldKind::Begin
                && event.worker == VICTIM
                && victim_begins == crash_round
                && killed_at.is_none()
            {
                if let Some((_, child)) = children.iter_mut().find(|(id, _)| id == VICTIM) {
                    child.kill()?; // SIGKILL: no cleanup, no release
                    child.wait()?;
                    let kill = now_ms();
                    killed_at = Some(kill);
                    let at = kill.saturating_sub(start_ms) as f64 / 1000.0;
                    println!(
                        "{at:7.3}s  {VICTIM}  KILLED while holding token {} (no release)",
                        event.fencing_token
                    );
                    let busy = parent_lock.try_acquire()?.is_none();
                    println!(
                        "{at:7.3}s  parent: try_acquire() -> {}",
                        if busy {
                            "None: the dead worker's lease still holds the lock until it expires"
                        } else {
                            "got it?!"
                        }
                    );
                }
            }
            events.push(event);
        }
        let mut running = false;
        for (id, child) in children.iter_mut() {
            if id != VICTIM && child.try_wait()?.is_none() {
                running = true;
            }
        }
        if !running && killed_at.is_some() {
            // One last read happens on the next loop turn only if we
            // continue; make sure every line is in before stopping.
            let total = std::fs::read_to_string(&log_path)?.lines().count();
            if total == seen {
                break;
            }
            continue;
        }
        if Instant::now() > deadline {
            for (_, child) in children.iter_mut() {
                let _ = child.kill();
            }
            return Err("workers did not finish in time".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for (id, child) in children.iter_mut() {
        let status = child.wait()?;
        if id != VICTIM && !status.success() {
            return Err(format!("worker {id} failed: {status}").into());
        }
    }

    if let (Some(kill), None) = (killed_at, recovery_ms) {
        // Every other worker finished before the crash: take over ourselves.
        if let Some(guard) = parent_lock.acquire_timeout(s.ttl * 3)? {
            let took = now_ms().saturating_sub(kill);
            println!(
                "  parent acquired token {} <- took over {took} ms after the crash",
                guard.fencing_token()
            );
            recovery_ms = Some(took);
            guard.release()?;
        }
    }
    let report = check_hold_log(&events, &[VICTIM]);
    let expected = (s.workers - 1) * s.rounds + 1.min(s.rounds - 1) + 1;
    println!("\nsummary");
    println!(
        "  acquisitions:        {} (expected {expected})",
        report.acquisitions
    );
    println!("  overlapping holders: {}", report.overlaps);
    println!(
        "  fencing tokens:      {}",
        if report.token_regressions == 0 {
            "strictly increasing"
        } else {
            "NOT increasing"
        }
    );
    match recovery_ms {
        Some(ms) => println!(
            "  crash recovery:      {ms} ms after the kill (ttl {} ms; renewal every ttl/3, \
             so between 2/3 ttl and ttl plus a backoff step)",
            s.ttl.as_millis()
        ),
        None => println!("  crash recovery:      no worker took over"),
    }
    println!(
        "  total time:          {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
    if !report.is_exclusive() || report.acquisitions != expected || recovery_ms.is_none() {
        return Err("the lock was not exclusive or not every worker got it".into());
    }
    Ok(())
}
