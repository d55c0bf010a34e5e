//! Releases of dropped guards, in flight on shylock's background runtime,
//! and abandoned claim attempts finishing in the background.
//!
//! A dropped guard cannot wait for its release, and the runtime it was
//! dropped on may end right after (the last line of `#[tokio::main]`, the
//! end of a `#[tokio::test]`). So the release runs on the background
//! runtime, which lives as long as the process, and is counted here until
//! it finishes. Three places wait for that count:
//!
//! - an acquire of the same name in this process that found the lock
//!   held ([`settle`]), so `drop(guard)` then `try_acquire()` finds the
//!   lock free, and a waiter wakes when the release lands;
//! - [`release_all`](crate::release_all) ([`settle_all`]);
//! - the process's exit (an `atexit` hook on Unix, [`wait_at_exit`]), so a
//!   program whose `main` returns right after the drop still frees its lock.
//!
//! Every wait is bounded by the releases' own deadline (their operation
//! timeout), which the release itself also keeps.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// A little past a release's own deadline, for scheduling.
const SLACK: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Registry {
    /// Releases in flight per lock name.
    names: HashMap<String, usize>,
    /// Releases in flight in all.
    total: usize,
    /// When the last release in flight must have finished.
    latest: Option<Instant>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);
/// Woken (blocking waiters) when a release finishes.
static FINISHED: Condvar = Condvar::new();
/// Woken (async waiters) when a release finishes.
static CHANGED: Notify = Notify::const_new();

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// One release (or abandoned attempt) in flight; finished when dropped
/// (done, failed or cancelled alike). `name` is `None` for a release that
/// acquires need not wait for.
pub(crate) struct Entry {
    name: Option<String>,
}

impl Entry {
    fn new(name: Option<&str>, timeout: Duration) -> Self {
        let until = Instant::now() + timeout + SLACK;
        let mut registry = registry();
        if let Some(name) = name {
            *registry.names.entry(name.to_owned()).or_default() += 1;
        }
        registry.total += 1;
        registry.latest = Some(registry.latest.map_or(until, |l| l.max(until)));
        Entry {
            name: name.map(str::to_owned),
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        {
            let mut registry = registry();
            if let Some(name) = &self.name {
                if let Some(count) = registry.names.get_mut(name) {
                    *count -= 1;
                    if *count == 0 {
                        registry.names.remove(name);
                    }
                }
            }
            registry.total -= 1;
            if registry.total == 0 {
                registry.latest = None;
            }
        }
        FINISHED.notify_all();
        CHANGED.notify_waiters();
    }
}

/// Runs `release` (the release of a dropped guard of lock `name`, bounded
/// by `timeout`) on the background runtime, counted until it finishes.
/// With `lost`, the lease was already over (expired or taken): acquires of
/// the name do not wait for it, only `release_all` and the exit do. Such a
/// release may hang on a store this handle cannot reach, and the lock is
/// free for others anyway.
pub(crate) fn spawn(
    name: &str,
    lost: bool,
    timeout: Duration,
    release: impl Future<Output = ()> + Send + 'static,
) {
    let entry = Entry::new((!lost).then_some(name), timeout);
    match crate::runtime::background_runtime() {
        Ok(runtime) => {
            exit_hook::install();
            runtime.spawn(async move {
                release.await;
                drop(entry);
            });
        }
        Err(error) => tracing::warn!(
            lock = %name,
            %error,
            "no runtime to release a dropped guard on; the lock expires by its ttl"
        ),
    }
}

/// Counts an abandoned claim attempt on `name` (it finishes in the
/// background, then releases whatever it won or recorded, each bounded by
/// its operation timeout: `timeout` covers both) as in flight until the
/// returned entry is dropped. Acquires and inspections of the name in this
/// process wait for it, as for a dropped guard's release.
#[must_use = "the attempt counts as in flight only while the entry lives"]
pub(crate) fn track(name: &str, timeout: Duration) -> Entry {
    Entry::new(Some(name), timeout)
}

/// Whether a release of a dropped guard of `name` is in flight.
pub(crate) fn pending(name: &str) -> bool {
    registry().names.contains_key(name)
}

/// Waits until no release of a dropped guard of `name` is in flight, or
/// `until` passes.
pub(crate) async fn settle(name: &str, until: tokio::time::Instant) {
    settle_where(|registry| !registry.names.contains_key(name), until).await;
}

/// Waits until no release of a dropped guard is in flight, or `until`
/// passes.
pub(crate) async fn settle_all(until: tokio::time::Instant) {
    settle_where(|registry| registry.total == 0, until).await;
}

async fn settle_where(done: impl Fn(&Registry) -> bool, until: tokio::time::Instant) {
    // Measured on the caller's clock, waited on the real one (lazily: most
    // calls find nothing in flight). Dropped guards release on the
    // background runtime, whose clock a paused test clock does not move:
    // a paused runtime with nothing else to do would jump to `until` at
    // once and give up before the release could land.
    let budget = until.saturating_duration_since(tokio::time::Instant::now());
    let mut bound: Option<Pin<Box<RealSleep>>> = None;
    loop {
        let notified = CHANGED.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let registry = registry();
            if done(&registry) {
                return;
            }
            // Releases bound themselves; this bound only guards against a
            // caller whose `until` is far off.
            if registry.latest.is_none_or(|l| l <= Instant::now()) {
                return;
            }
        }
        let bound = bound.get_or_insert_with(|| Box::pin(RealSleep::new(budget)));
        tokio::select! {
            _ = notified => {}
            _ = bound.as_mut() => return,
        }
    }
}

/// A sleep on the real clock: on the background runtime when there is one
/// (cancelled when dropped), else on the caller's.
struct RealSleep {
    on_background: Option<tokio::task::JoinHandle<()>>,
    here: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl RealSleep {
    fn new(budget: Duration) -> Self {
        match crate::runtime::background_runtime() {
            Ok(runtime) => RealSleep {
                // Made inside the task, on that runtime's clock.
                on_background: Some(runtime.spawn(async move { tokio::time::sleep(budget).await })),
                here: None,
            },
            Err(_) => RealSleep {
                on_background: None,
                here: Some(Box::pin(tokio::time::sleep(budget))),
            },
        }
    }
}

impl Future for RealSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(task) = self.on_background.as_mut() {
            return Pin::new(task).poll(cx).map(|_| ());
        }
        match self.here.as_mut() {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl Drop for RealSleep {
    fn drop(&mut self) {
        if let Some(task) = &self.on_background {
            task.abort();
        }
    }
}

/// Blocks until no release of a dropped guard is in flight, or the last
/// one's deadline passed. Runs when the process exits.
pub(crate) fn wait_at_exit() {
    let mut registry = registry();
    loop {
        if registry.total == 0 {
            return;
        }
        let Some(left) = registry
            .latest
            .and_then(|l| l.checked_duration_since(Instant::now()))
            .filter(|left| !left.is_zero())
        else {
            return;
        };
        registry = match FINISHED.wait_timeout(registry, left) {
            Ok((registry, _)) => registry,
            Err(poisoned) => poisoned.into_inner().0,
        };
    }
}

/// How many releases of dropped guards are in flight (for tests).
#[cfg(test)]
pub(crate) fn in_flight() -> usize {
    registry().total
}

#[cfg(unix)]
mod exit_hook {
    use std::sync::Once;

    extern "C" fn at_exit() {
        // A panic must not unwind into libc; `wait_at_exit` does not panic,
        // but a poisoned lock or a clock oddity must not abort the exit.
        let _ = std::panic::catch_unwind(super::wait_at_exit);
    }

    /// Registers [`at_exit`] with the C library once: it runs when `main`
    /// returns or `std::process::exit` is called, while the background
    /// runtime's thread still runs.
    pub(super) fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            // SAFETY: `atexit` only stores the pointer of a function that
            // takes no arguments and lives for the whole program; the
            // function never unwinds (see `at_exit`).
            #[allow(unsafe_code)]
            let failed = unsafe { libc::atexit(at_exit) } != 0;
            if failed {
                tracing::debug!("could not register the exit hook; releases of guards dropped just before exit may not finish");
            }
        });
    }
}

#[cfg(not(unix))]
mod exit_hook {
    /// No exit hook here: a program that drops a guard just before exiting
    /// calls `release_all` or uses `try_run`.
    pub(super) fn install() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settle_waits_for_the_release_of_that_name_only() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        spawn(
            "inflight-test/a",
            false,
            Duration::from_secs(10),
            async move {
                let _ = rx.await;
            },
        );
        // Another name is not held up.
        let soon = tokio::time::Instant::now() + Duration::from_secs(30);
        settle("inflight-test/b", soon).await;
        assert!(in_flight() >= 1);
        let waiter = tokio::spawn(async move { settle("inflight-test/a", soon).await });
        tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .expect("settled once the release finished")
            .unwrap();
        assert!(!registry().names.contains_key("inflight-test/a"));
    }

    /// A caller on a paused test clock still waits for a release running
    /// on the background runtime's real clock, instead of its idle runtime
    /// jumping to the bound at once.
    #[tokio::test(start_paused = true)]
    async fn settle_on_a_paused_clock_waits_for_a_real_release() {
        spawn(
            "inflight-test/paused",
            false,
            Duration::from_secs(10),
            // Made where it runs: on the background runtime's clock.
            async { tokio::time::sleep(Duration::from_millis(50)).await },
        );
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        settle("inflight-test/paused", until).await;
        assert!(
            !pending("inflight-test/paused"),
            "gave up before the release landed"
        );
    }

    #[tokio::test]
    async fn acquires_do_not_wait_for_the_release_of_a_lost_lease() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // A lost guard's release that hangs (its store is cut off).
        spawn(
            "inflight-test/lost",
            true,
            Duration::from_secs(10),
            async move {
                let _ = rx.await;
            },
        );
        assert!(!pending("inflight-test/lost"));
        assert!(
            in_flight() >= 1,
            "still counted for release_all and the exit"
        );
        tx.send(()).unwrap();
    }
}
