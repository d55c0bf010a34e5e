//! Leader election on the memory backend: one leader, failover, step-down,
//! pause, leader-only work cancelled before a new leader starts, blocking
//! use, bad input.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use shylock_core::backend::{Backend, Deadline, Grant};
use shylock_core::testkit::{unique_name, wait_for};
use shylock_core::{
    Election, Error, LockInfo, LockOptions, MemoryBackend, Renewal, Result, Role, SharedBackend,
};
use tokio::time::Instant;

/// (event, candidate, term, when) of leader-only work.
type Log = Arc<Mutex<Vec<(&'static str, &'static str, u64, Instant)>>>;

fn options(ttl_ms: u64) -> LockOptions {
    LockOptions::default()
        .ttl(Duration::from_millis(ttl_ms))
        .backoff(Duration::from_millis(1), Duration::from_millis(20))
}

/// A handle on a shared memory store that can be made to hang, as a
/// candidate cut off from its database sees it.
#[derive(Debug)]
struct Stallable {
    inner: MemoryBackend,
    stalled: AtomicBool,
}

impl Stallable {
    async fn gate(&self) {
        if self.stalled.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait::async_trait]
impl Backend for Stallable {
    async fn claim(&self, n: &str, o: &str, t: Duration, d: Deadline) -> Result<Option<Grant>> {
        self.gate().await;
        self.inner.claim(n, o, t, d).await
    }
    async fn extend(
        &self,
        n: &str,
        o: &str,
        t: Duration,
        d: Deadline,
    ) -> Result<Option<SystemTime>> {
        self.gate().await;
        self.inner.extend(n, o, t, d).await
    }
    async fn release(&self, n: &str, o: &str, d: Deadline) -> Result<bool> {
        self.gate().await;
        self.inner.release(n, o, d).await
    }
    async fn inspect(&self, n: &str, d: Deadline) -> Result<Option<LockInfo>> {
        self.gate().await;
        self.inner.inspect(n, d).await
    }
    async fn list(&self, p: &str, a: Option<&str>, l: usize, d: Deadline) -> Result<Vec<LockInfo>> {
        self.inner.list(p, a, l, d).await
    }
    async fn force_release(&self, n: &str, d: Deadline) -> Result<bool> {
        self.inner.force_release(n, d).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_followers_know_it_and_step_down_hands_over() {
    let backend = MemoryBackend::new();
    let name = unique_name("election");
    let candidates: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|id| {
            Election::with_backend(&name, *id, backend.clone())
                .with_options(options(2000))
                .campaign()
                .unwrap()
        })
        .collect();
    let leader = wait_for(Duration::from_secs(5), || async {
        let leaders: Vec<usize> = (0..3).filter(|i| candidates[*i].is_leader()).collect();
        (leaders.len() == 1).then(|| leaders[0])
    })
    .await
    .expect("no single leader");
    let term = candidates[leader].role().term().unwrap();
    let ids = ["a", "b", "c"];
    let observer = Election::with_backend(&name, "observer", backend.clone());
    let info = observer.leader().await.unwrap().expect("nobody leads");
    assert_eq!(info.identity, ids[leader]);
    assert_eq!(info.term, term);
    for (i, c) in candidates.iter().enumerate() {
        if i != leader {
            let mut roles = c.subscribe();
            let role = roles
                .wait_for(|r| matches!(r, Role::Follower { leader: Some(_) }))
                .await
                .unwrap()
                .clone();
            assert_eq!(
                role,
                Role::Follower {
                    leader: Some(ids[leader].into())
                }
            );
        }
    }
    let stepped = Instant::now();
    candidates[leader].step_down().await.unwrap();
    let next = wait_for(Duration::from_secs(5), || async {
        (0..3).find(|i| *i != leader && candidates[*i].is_leader())
    })
    .await
    .expect("nobody took over after the step-down");
    assert!(
        stepped.elapsed() < Duration::from_secs(1),
        "handover took {:?}",
        stepped.elapsed()
    );
    assert!(candidates[next].role().term().unwrap() > term);
    assert!(!candidates[leader].is_leader());
    for c in candidates {
        c.stop().await;
    }
    assert!(
        observer.leader().await.unwrap().is_none(),
        "stopping left a leader"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_candidate_stays_follower_and_a_cut_off_leader_fails_over() {
    let backend = MemoryBackend::new();
    let name = unique_name("election-pause");
    let a_backend = Arc::new(Stallable {
        inner: backend.clone(),
        stalled: AtomicBool::new(false),
    });
    let a = Election::with_backend(&name, "a", SharedBackend::from(a_backend.clone()))
        .with_options(options(600))
        .campaign()
        .unwrap();
    a.wait_until_leader().await;
    a.pause(true);
    a.subscribe()
        .wait_for(|r| r.term().is_none())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!a.is_leader(), "a paused candidate took the lead");
    a.pause(false);
    let term = a.wait_until_leader().await;
    // a is cut off from the database (tests/multiprocess.rs kills a leader
    // process for real): its lease runs out.
    a_backend.stalled.store(true, Ordering::SeqCst);
    let b = Election::with_backend(&name, "b", backend.clone())
        .with_options(options(600))
        .campaign()
        .unwrap();
    let started = Instant::now();
    let next = tokio::time::timeout(Duration::from_secs(5), b.wait_until_leader())
        .await
        .expect("no failover");
    assert!(next > term);
    // ttl + one backoff step, with room for scheduling.
    assert!(started.elapsed() < Duration::from_millis(600 + 20 + 500));
    assert!(!a.is_leader(), "two leaders");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_work_is_cancelled_before_a_new_leader_starts() {
    let store = MemoryBackend::new();
    let name = unique_name("election-cut");
    let a_backend = Arc::new(Stallable {
        inner: store.clone(),
        stalled: AtomicBool::new(false),
    });
    let log: Log = Arc::default();
    let work = |id: &'static str, log: Log| {
        move |term: u64| {
            let log = log.clone();
            async move {
                struct End(&'static str, u64, Log);
                impl Drop for End {
                    fn drop(&mut self) {
                        self.2
                            .lock()
                            .unwrap()
                            .push(("end", self.0, self.1, Instant::now()));
                    }
                }
                log.lock()
                    .unwrap()
                    .push(("begin", id, term, Instant::now()));
                let _end = End(id, term, log.clone());
                std::future::pending::<()>().await;
            }
        }
    };
    let a = Election::with_backend(&name, "a", SharedBackend::from(a_backend.clone()))
        .with_options(options(600))
        .campaign()
        .unwrap();
    a.wait_until_leader().await;
    let b = Election::with_backend(&name, "b", store.clone())
        .with_options(options(600))
        .campaign()
        .unwrap();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let a_work = {
        let (a, f) = (a.clone(), work("a", log.clone()));
        tokio::spawn(async move { a.lead(f).await })
    };
    let b_work = {
        let (b, f) = (b.clone(), work("b", log.clone()));
        tokio::spawn(async move { b.lead(f).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // a is cut off from the database: its renewals hang.
    a_backend.stalled.store(true, Ordering::SeqCst);
    let took_over = wait_for(Duration::from_secs(5), || async {
        log.lock()
            .unwrap()
            .iter()
            .any(|e| e.0 == "begin" && e.1 == "b")
            .then_some(())
    })
    .await;
    assert!(took_over.is_some(), "b never took over");
    let events = log.lock().unwrap().clone();
    let a_end = events
        .iter()
        .find(|e| e.0 == "end" && e.1 == "a")
        .expect("a's work was not cancelled");
    let b_begin = events
        .iter()
        .find(|e| e.0 == "begin" && e.1 == "b")
        .unwrap();
    assert!(
        a_end.3 <= b_begin.3,
        "b started leading before a's work stopped"
    );
    assert!(b_begin.2 > a_end.2, "terms must increase");
    a_work.abort();
    b_work.abort();
}

#[test]
fn a_blocking_program_can_campaign() {
    let backend = MemoryBackend::new();
    let name = unique_name("election-blocking");
    let a = Election::with_backend(&name, "a", backend.clone())
        .with_options(options(2000))
        .campaign()
        .unwrap();
    let term = a
        .wait_until_leader_blocking(Duration::from_secs(5))
        .expect("no leadership");
    let b = Election::with_backend(&name, "b", backend)
        .with_options(options(2000))
        .campaign()
        .unwrap();
    assert_eq!(
        b.wait_until_leader_blocking(Duration::from_millis(100)),
        None
    );
    a.step_down_blocking().unwrap();
    let next = b
        .wait_until_leader_blocking(Duration::from_secs(5))
        .expect("no handover");
    assert!(next > term);
}

#[tokio::test]
async fn bad_identities_and_options_are_clear_errors() {
    let backend = MemoryBackend::new();
    for identity in ["", "host#1"] {
        let err = Election::with_backend("e", identity, backend.clone())
            .campaign()
            .unwrap_err();
        assert!(matches!(err, Error::InvalidOptions { .. }), "{err}");
    }
    let err = Election::with_backend("e", "a", backend.clone())
        .with_options(LockOptions::default().renewal(Renewal::Off))
        .campaign()
        .unwrap_err();
    assert!(err.to_string().contains("renewal"), "{err}");
    let err = Election::with_backend("", "a", backend.clone())
        .campaign()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }));
    let election = Election::with_backend("e", "node-a", backend);
    assert_eq!(
        (election.name(), election.identity()),
        ("e", "node-a"),
        "an election names itself and its candidate"
    );
}

/// Dropping a campaign stops it: its leadership is released at once, well
/// before its lease (a minute) could run out, and nobody leads after.
#[tokio::test]
async fn a_dropped_campaign_gives_up_leadership() {
    let backend = MemoryBackend::new();
    let election = Election::with_backend(unique_name("election-drop"), "a", backend)
        .with_options(options(60_000));
    let campaign = election.campaign().unwrap();
    tokio::time::timeout(Duration::from_secs(5), campaign.wait_until_leader())
        .await
        .expect("the only candidate leads");
    drop(campaign);
    let freed = wait_for(Duration::from_secs(5), || async {
        election.leader().await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(freed.is_some(), "a dropped campaign still leads");
}

/// A candidate that stepped down stays out for twice its longest backoff
/// and 10 ms (so that others, polling at most that far apart, can take
/// over), then campaigns again: on a paused test clock too, where its pause
/// ends at the paused instant, not strictly after it. Bounded on the real
/// clock, as a paused clock would not move while the campaign spun.
#[tokio::test(start_paused = true)]
async fn a_lone_candidate_leads_again_after_stepping_down_on_a_paused_clock() {
    let campaign =
        Election::with_backend(unique_name("election-paused"), "a", MemoryBackend::new())
            .with_options(options(60_000))
            .campaign()
            .unwrap();
    let first = campaign.wait_until_leader().await;
    campaign.step_down().await.unwrap();
    let stepped_down = tokio::time::Instant::now();
    let (tx, watchdog) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(10));
        let _ = tx.send(());
    });
    tokio::select! {
        term = campaign.wait_until_leader() => {
            assert!(term > first, "a new term");
            let out = stepped_down.elapsed();
            // options(): backoff up to 20 ms.
            assert!(out >= Duration::from_millis(50), "out for only {out:?}");
        }
        _ = watchdog => panic!("the candidate did not lead again within 10 s of real time"),
    }
}
