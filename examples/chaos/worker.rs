//! A worker process: takes random locks in a loop and records every
//! critical section in the history, until SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use shylock::{AsyncLock, AsyncLockGuard, AsyncSemaphore, Error, LockOptions, SharedBackend};
use tokio::signal::unix::{signal, SignalKind};

use crate::history::{now_us, to_us, Appender};
use crate::store::connect;

/// The names the workers contend for: three locks, a semaphore and a fair
/// lock (kind, name, limit).
pub(crate) const TARGETS: [(&str, &str, u32); 5] = [
    ("lock", "chaos/lock-0", 1),
    ("lock", "chaos/lock-1", 1),
    ("lock", "chaos/lock-2", 1),
    ("sem", "chaos/sem", SEMAPHORE_PERMITS),
    ("fair", "chaos/fair", 1),
];

pub(crate) const SEMAPHORE_PERMITS: u32 = 2;

/// Leases last 1 to 3 s, so expiry and takeover happen often.
pub(crate) const TTL_MS: std::ops::RangeInclusive<u64> = 1000..=3000;

/// What the scheduler tells a worker (hidden `--worker` flags).
#[derive(Debug)]
pub(crate) struct WorkerArgs {
    pub(crate) slot: u32,
    pub(crate) inc: u32,
    pub(crate) store: String,
    pub(crate) history: PathBuf,
    pub(crate) seed: u64,
}

pub(crate) async fn run(args: WorkerArgs) {
    let pid = std::process::id();
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut out = Appender::open(&args.history).expect("open the history");
    let who = (args.slot, args.inc, pid);
    // The store may be down or stalled right now: retry until it answers.
    let backend = loop {
        tokio::select! {
            _ = term.recv() => return,
            connected = tokio::time::timeout(Duration::from_secs(5), connect(&args.store, true)) => {
                match connected {
                    Ok(Ok(backend)) => break backend,
                    Ok(Err(e)) => eprintln!("worker {}: connect: {e}", args.slot),
                    Err(_) => eprintln!("worker {}: connect timed out", args.slot),
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut stopping = false;
    while !stopping {
        let (kind, name, limit) = TARGETS[rng.usize(..TARGETS.len())];
        let ttl = Duration::from_millis(rng.u64(TTL_MS));
        let options = LockOptions::default()
            .ttl(ttl)
            .operation_timeout(ttl / 2)
            .backoff(Duration::from_millis(5), Duration::from_millis(100))
            .owner_label(format!("chaos-{}-{pid}", args.slot))
            .fair(kind == "fair");
        let wait = Duration::from_millis(rng.u64(500..=4000));
        let once = rng.u8(..10) == 0;
        let requested = now_us();
        let acquired = tokio::select! {
            _ = term.recv() => break,
            r = acquire(&backend, kind, name, limit, options, wait, once) => r,
        };
        let guard = match acquired {
            Ok(Some(guard)) => guard,
            Ok(None) => {
                out.line(&[
                    &"M",
                    &who.0,
                    &who.1,
                    &who.2,
                    &kind,
                    &name,
                    &"timeout",
                    &requested,
                    &now_us(),
                ]);
                continue;
            }
            Err(e) => {
                eprintln!("worker {}: acquire {name}: {e}", args.slot);
                let outcome = format!("error:{}", error_kind(&e));
                out.line(&[
                    &"M",
                    &who.0,
                    &who.1,
                    &who.2,
                    &kind,
                    &name,
                    &outcome,
                    &requested,
                    &now_us(),
                ]);
                tokio::time::sleep(Duration::from_millis(rng.u64(20..=200))).await;
                continue;
            }
        };
        let start = now_us();
        let token = guard.fencing_token();
        let expires = to_us(guard.expires_at());
        out.line(&[
            &"B", &who.0, &who.1, &who.2, &kind, &limit, &name, &token, &requested, &start,
            &expires,
        ]);
        let work = work_time(&mut rng, ttl);
        let observed_lost = tokio::select! {
            biased;
            _ = guard.lost() => Some(now_us()),
            _ = tokio::time::sleep(work) => None,
            _ = term.recv() => { stopping = true; None }
        };
        let end = now_us();
        // Read after `end`: not lost now means not lost at `end` either.
        let lost = observed_lost.or_else(|| guard.is_lost().then(now_us));
        let lost = lost.map_or("-".to_owned(), |l| l.to_string());
        let expires = to_us(guard.expires_at());
        // Written before the release starts: once it is sent, another
        // holder may enter at any moment.
        out.line(&[
            &"E", &who.0, &who.1, &who.2, &name, &token, &end, &lost, &expires,
        ]);
        let outcome = match guard.release().await {
            Ok(()) => "ok".to_owned(),
            Err(Error::LockLost { .. }) => "lost".to_owned(),
            Err(e) => format!("error:{}", error_kind(&e)),
        };
        out.line(&[&"R", &who.0, &who.1, &who.2, &name, &token, &outcome]);
    }
}

/// Mostly short work; sometimes longer than the ttl, so renewal must keep
/// the lease.
fn work_time(rng: &mut fastrand::Rng, ttl: Duration) -> Duration {
    let ttl = ttl.as_millis() as u64;
    let ms = match rng.u8(..50) {
        0..=39 => rng.u64(0..=50),
        40..=46 => rng.u64(50..=ttl),
        _ => rng.u64(ttl..=ttl * 5 / 2),
    };
    Duration::from_millis(ms)
}

async fn acquire(
    backend: &SharedBackend,
    kind: &str,
    name: &str,
    permits: u32,
    options: LockOptions,
    wait: Duration,
    once: bool,
) -> shylock::Result<Option<AsyncLockGuard>> {
    if kind == "sem" {
        let sem =
            AsyncSemaphore::with_backend(name, permits, backend.clone()).with_options(options);
        return if once {
            sem.try_acquire().await
        } else {
            sem.acquire_timeout(wait).await
        };
    }
    let lock = AsyncLock::with_backend(name, backend.clone()).with_options(options);
    if once {
        lock.try_acquire().await
    } else {
        lock.acquire_timeout(wait).await
    }
}

/// A one-word name for an error, for the history.
fn error_kind(e: &Error) -> String {
    match e.kind() {
        Some(kind) => format!("{kind:?}"),
        None => format!("{e:?}")
            .split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or("Other")
            .to_owned(),
    }
}
