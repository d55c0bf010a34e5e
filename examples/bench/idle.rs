//! Idle waiters: the attempts and database work they cause while the
//! lock is held.

use std::time::Duration;

use shylock::{AsyncLock, SharedBackend};
use shylock_core::testkit::CountingBackend;

use crate::handoff::Mode;
use crate::report::{failed, report_failures};
use crate::setup::Setup;
use crate::Args;

/// Acquire attempts per second that `waiters` idle waiters cause while the
/// lock is held for `hold`, and the database commands behind them.
pub(crate) async fn waiter_load(
    s: &Setup,
    waiters: usize,
    hold: Duration,
    mode: Mode,
) -> (f64, Option<f64>) {
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

/// The idle-waiter rows: attempts and database work per second per waiter
/// while the lock is held.
pub(crate) async fn print_idle(s: &Setup, args: &Args) {
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
