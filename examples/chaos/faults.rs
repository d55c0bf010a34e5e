//! The faults: picked at random, overlapping, each recorded as an `F` line
//! when it is over (and undone by then).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shylock_core::testkit::FaultProxy;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::{sleep, Instant};

use crate::fleet::Fleet;
use crate::history::now_us;
use crate::store::Store;

/// The kinds of fault, in the order the summary lists them.
pub(crate) const KINDS: [&str; 6] = ["stop", "kill", "stall", "cut", "db-restart", "delay"];

/// What the faults act on.
pub(crate) struct Chaos {
    pub(crate) fleet: Arc<Fleet>,
    pub(crate) proxy: Option<Arc<FaultProxy>>,
    pub(crate) store: Arc<Mutex<Store>>,
    /// Faults of which only one runs at a time.
    stalled: AtomicBool,
    delayed: AtomicBool,
    restarting: AtomicBool,
    /// Why the run cannot go on (the database did not come back).
    pub(crate) broken: std::sync::Mutex<Option<String>>,
}

impl Chaos {
    pub(crate) fn new(
        fleet: Arc<Fleet>,
        proxy: Option<Arc<FaultProxy>>,
        store: Arc<Mutex<Store>>,
    ) -> Self {
        Chaos {
            fleet,
            proxy,
            store,
            stalled: AtomicBool::new(false),
            delayed: AtomicBool::new(false),
            restarting: AtomicBool::new(false),
            broken: std::sync::Mutex::new(None),
        }
    }

    /// The kinds this run can inject, by weight.
    pub(crate) async fn kinds(&self) -> Vec<(&'static str, u32)> {
        let mut kinds = vec![("stop", 35), ("kill", 12)];
        if self.proxy.is_some() {
            kinds.extend([("stall", 10), ("cut", 12), ("delay", 10)]);
            if self.store.lock().await.restartable() {
                kinds.push(("db-restart", 6));
            }
        }
        kinds
    }

    /// Injects faults until `until`, a new one every 0.2 to 1.8 s, then
    /// waits for those still going to end (each undoes itself).
    pub(crate) async fn run(
        self: Arc<Self>,
        until: Instant,
        rng: &mut fastrand::Rng,
        mut stop: impl FnMut() -> bool,
    ) {
        let kinds = self.kinds().await;
        let total: u32 = kinds.iter().map(|k| k.1).sum();
        let mut going = JoinSet::new();
        while Instant::now() < until && !stop() && !self.is_broken() {
            sleep(Duration::from_millis(rng.u64(200..=1800)).min(until - Instant::now())).await;
            self.fleet.reap().await;
            while going.try_join_next().is_some() {}
            let mut pick = rng.u32(..total);
            let kind = kinds
                .iter()
                .find(|(_, w)| {
                    let hit = pick < *w;
                    pick = pick.saturating_sub(*w);
                    hit
                })
                .map_or("stop", |k| k.0);
            let seed = rng.u64(..);
            let chaos = self.clone();
            going.spawn(async move { chaos.inject(kind, fastrand::Rng::with_seed(seed)).await });
        }
        while going.join_next().await.is_some() {}
        self.fleet.resume_all().await;
    }

    fn is_broken(&self) -> bool {
        self.broken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    async fn inject(&self, kind: &str, mut rng: fastrand::Rng) {
        let slots = self.fleet.slots.len() as u32;
        let from = now_us();
        let detail = match kind {
            "stop" => {
                let slot = rng.u32(..slots);
                let Some(inc) = self.fleet.pause(slot).await else {
                    return;
                };
                // Short pauses, and pauses past every lease's ttl.
                let pause = if rng.u8(..10) < 6 {
                    rng.u64(20..=500)
                } else {
                    rng.u64(1000..=8000)
                };
                sleep(Duration::from_millis(pause)).await;
                if self.fleet.resume(slot, inc).await.is_none() {
                    // Killed while paused: the kill recorded the pause.
                    return;
                }
                format!("slot={slot} ms={pause}")
            }
            "kill" => {
                let slot = rng.u32(..slots);
                if !self.fleet.kill(slot, "killed").await {
                    return;
                }
                let back = rng.u64(0..=2000);
                sleep(Duration::from_millis(back)).await;
                if let Err(e) = self.fleet.spawn(slot).await {
                    eprintln!("chaos: could not restart worker {slot}: {e}");
                }
                format!("slot={slot} restart-after-ms={back}")
            }
            "stall" => {
                let proxy = self.proxy.as_ref().expect("stall needs the proxy");
                if self.stalled.swap(true, Ordering::SeqCst) {
                    return;
                }
                let ms = if rng.bool() {
                    rng.u64(50..=500)
                } else {
                    rng.u64(1000..=5000)
                };
                proxy.stall();
                sleep(Duration::from_millis(ms)).await;
                proxy.resume();
                self.stalled.store(false, Ordering::SeqCst);
                format!("ms={ms}")
            }
            "cut" => {
                self.proxy.as_ref().expect("cut needs the proxy").cut();
                String::new()
            }
            "delay" => {
                let proxy = self.proxy.as_ref().expect("delay needs the proxy");
                if self.delayed.swap(true, Ordering::SeqCst) {
                    return;
                }
                let (each, ms) = (rng.u64(5..=250), rng.u64(1000..=5000));
                proxy.set_delay(Duration::from_millis(each));
                sleep(Duration::from_millis(ms)).await;
                proxy.set_delay(Duration::ZERO);
                self.delayed.store(false, Ordering::SeqCst);
                format!("each-ms={each} ms={ms}")
            }
            "db-restart" => {
                if self.restarting.swap(true, Ordering::SeqCst) {
                    return;
                }
                let down = rng.u64(0..=4000);
                let mut store = self.store.lock().await;
                store.crash().await;
                sleep(Duration::from_millis(down)).await;
                let restarted = store.restart().await;
                drop(store);
                self.restarting.store(false, Ordering::SeqCst);
                if let Err(e) = restarted {
                    *self.broken.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!(
                        "the database did not come back after a restart: {e}"
                    ));
                    return;
                }
                format!("down-ms={down}")
            }
            other => unreachable!("unknown fault {other}"),
        };
        let detail = if detail.is_empty() {
            "-".to_owned()
        } else {
            detail
        };
        self.fleet.record(&[&"F", &kind, &from, &now_us(), &detail]);
    }
}
