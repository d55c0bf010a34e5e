//! What the `metrics` feature emits, captured by a recording recorder: one
//! test, because a recorder is installed once per process.
#![cfg(feature = "metrics")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use shylock_core::backend::{Backend, Deadline, Grant, LockInfo};
use shylock_core::metrics::{
    ACQUIRE_ATTEMPTS, ACQUIRE_WAIT_SECONDS, HELD_SECONDS, LEASES_LOST, RENEWAL_FAILURES, WAITERS,
};
use shylock_core::testkit::{unique_name, wait_for};
use shylock_core::{
    AsyncLock, AsyncSemaphore, Error, ErrorKind, LockOptions, MemoryBackend, Renewal, Result,
};

/// A memory backend whose extends can be made to fail.
#[derive(Debug, Default)]
struct FailingExtends {
    inner: MemoryBackend,
    fail: AtomicBool,
}

#[async_trait::async_trait]
impl Backend for FailingExtends {
    fn kind(&self) -> &'static str {
        "failing"
    }
    async fn claim(&self, n: &str, o: &str, ttl: Duration, d: Deadline) -> Result<Option<Grant>> {
        self.inner.claim(n, o, ttl, d).await
    }
    async fn extend(
        &self,
        n: &str,
        o: &str,
        ttl: Duration,
        d: Deadline,
    ) -> Result<Option<SystemTime>> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::backend_msg(
                "failing",
                ErrorKind::Unavailable,
                "refused by the test",
            ));
        }
        self.inner.extend(n, o, ttl, d).await
    }
    async fn release(&self, n: &str, o: &str, d: Deadline) -> Result<bool> {
        self.inner.release(n, o, d).await
    }
    async fn inspect(&self, n: &str, d: Deadline) -> Result<Option<LockInfo>> {
        self.inner.inspect(n, d).await
    }
    async fn list(&self, p: &str, a: Option<&str>, l: usize, d: Deadline) -> Result<Vec<LockInfo>> {
        self.inner.list(p, a, l, d).await
    }
    async fn force_release(&self, n: &str, d: Deadline) -> Result<bool> {
        self.inner.force_release(n, d).await
    }
}

/// One metric as recorded: its name, labels, and value.
#[derive(Debug, Clone)]
struct Row {
    name: String,
    labels: Vec<(String, String)>,
    value: Value,
}

#[derive(Debug, Clone)]
enum Value {
    Histogram(Vec<f64>),
    Counter(u64),
    Gauge(f64),
}

impl Row {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Everything recorded so far. Each snapshot drains the recorder (resets
/// counters and gauges to 0, empties histograms), so every snapshot is kept
/// here as a delta: summing all rows of a counter or gauge gives its value.
struct Recorded {
    snapshotter: Snapshotter,
    all: Vec<Row>,
}

impl Recorded {
    fn rows(&mut self) -> Vec<Row> {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let key = key.key();
            let row = Row {
                name: key.name().to_owned(),
                labels: key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect(),
                value: match value {
                    DebugValue::Histogram(v) => {
                        Value::Histogram(v.iter().map(|f| f.into_inner()).collect())
                    }
                    DebugValue::Counter(c) => Value::Counter(c),
                    DebugValue::Gauge(g) => Value::Gauge(g.into_inner()),
                },
            };
            self.all.push(row);
        }
        self.all.clone()
    }
}

/// Histogram samples of `name` with these label values.
fn samples(rows: &[Row], name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    rows.iter()
        .filter(|r| r.name == name && labels.iter().all(|(k, v)| r.label(k) == Some(v)))
        .flat_map(|r| match &r.value {
            Value::Histogram(v) => v.clone(),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .collect()
}

fn counter(rows: &[Row], name: &str, labels: &[(&str, &str)]) -> u64 {
    rows.iter()
        .filter(|r| r.name == name && labels.iter().all(|(k, v)| r.label(k) == Some(v)))
        .map(|r| match &r.value {
            Value::Counter(c) => *c,
            other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

fn gauge(rows: &[Row], name: &str, labels: &[(&str, &str)]) -> f64 {
    rows.iter()
        .filter(|r| r.name == name && labels.iter().all(|(k, v)| r.label(k) == Some(v)))
        .map(|r| match &r.value {
            Value::Gauge(g) => *g,
            other => panic!("{name} is not a gauge: {other:?}"),
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_emitted_with_low_cardinality_labels() {
    let recorder = DebuggingRecorder::new();
    let mut recorded = Recorded {
        snapshotter: recorder.snapshotter(),
        all: Vec::new(),
    };
    recorder
        .install()
        .expect("no other recorder in this test binary");
    shylock_core::metrics::describe();
    let memory = [("backend", "memory"), ("kind", "lock")];

    // Acquired at once, then busy for a try, timed out for a waiter.
    let backend = MemoryBackend::new();
    let lock = AsyncLock::with_backend(unique_name("metrics"), backend.clone());
    let guard = lock.acquire().await.unwrap();
    assert!(lock.try_acquire().await.unwrap().is_none());
    let waiter = lock.clone().with_options(
        LockOptions::default().backoff(Duration::from_millis(1), Duration::from_millis(5)),
    );
    let waiting = tokio::spawn(async move {
        waiter
            .acquire_timeout(Duration::from_millis(300))
            .await
            .unwrap()
    });
    // While it waits, the waiters gauge counts it.
    let counted = wait_for(Duration::from_secs(5), || {
        let one = gauge(&recorded.rows(), WAITERS, &memory) == 1.0;
        async move { one.then_some(()) }
    })
    .await;
    assert!(counted.is_some(), "the waiter shows in the waiters gauge");
    assert!(waiting.await.unwrap().is_none());
    // A cancelled acquire.
    let cancelled = lock.acquire();
    assert!(tokio::time::timeout(Duration::from_millis(20), cancelled)
        .await
        .is_err());
    guard.release().await.unwrap();

    let rows = recorded.rows();
    for (outcome, count) in [
        ("acquired", 1),
        ("busy", 1),
        ("timed_out", 1),
        ("cancelled", 1),
    ] {
        let mut labels = memory.to_vec();
        labels.push(("outcome", outcome));
        let waits = samples(&rows, ACQUIRE_WAIT_SECONDS, &labels);
        assert_eq!(waits.len(), count, "{outcome}: {rows:#?}");
        let attempts = samples(&rows, ACQUIRE_ATTEMPTS, &labels);
        assert_eq!(attempts.len(), count, "{outcome}");
        match outcome {
            "acquired" | "busy" => assert_eq!(attempts, [1.0], "{outcome}"),
            "timed_out" => {
                assert!(attempts[0] > 1.0, "a waiter tries more than once");
                assert!(waits[0] >= 0.3, "waited the whole timeout: {waits:?}");
            }
            _ => {}
        }
    }
    assert_eq!(samples(&rows, HELD_SECONDS, &memory).len(), 1);
    assert_eq!(gauge(&rows, WAITERS, &memory), 0.0, "no waiter is left");
    assert!(
        rows.iter().all(|r| r.label("name").is_none()),
        "no name label unless asked for"
    );

    // A permit of a semaphore is kind="permit".
    let sem = AsyncSemaphore::with_backend(unique_name("metrics-sem"), 2, backend.clone());
    sem.acquire().await.unwrap().release().await.unwrap();
    let rows = recorded.rows();
    let permit = [
        ("backend", "memory"),
        ("kind", "permit"),
        ("outcome", "acquired"),
    ];
    assert_eq!(samples(&rows, ACQUIRE_WAIT_SECONDS, &permit).len(), 1);

    // The name label, when a lock asks for it.
    let named = unique_name("metrics-named");
    AsyncLock::with_backend(named.clone(), backend.clone())
        .with_options(LockOptions::default().name_in_metrics(true))
        .acquire()
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    let rows = recorded.rows();
    assert_eq!(
        samples(&rows, HELD_SECONDS, &[("name", named.as_str())]).len(),
        1
    );

    // Renewal failures, then a lost lease.
    let failing = Arc::new(FailingExtends::default());
    let lock = AsyncLock::with_backend(unique_name("metrics-lost"), failing.clone()).with_options(
        LockOptions::default()
            .ttl(Duration::from_millis(600))
            .renewal(Renewal::Every(Duration::from_millis(100)))
            .backoff(Duration::from_millis(20), Duration::from_millis(50)),
    );
    let guard = lock.acquire().await.unwrap();
    failing.fail.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), guard.lost())
        .await
        .expect("the lease is lost once renewal cannot extend it");
    let rows = recorded.rows();
    let failing_labels = [("backend", "failing"), ("kind", "lock")];
    assert!(counter(&rows, RENEWAL_FAILURES, &failing_labels) >= 2);
    assert_eq!(counter(&rows, LEASES_LOST, &failing_labels), 1);
    assert_eq!(
        samples(&rows, HELD_SECONDS, &failing_labels).len(),
        1,
        "time held is recorded when the lease is lost"
    );
    assert!(matches!(guard.release().await, Err(Error::LockLost { .. })));
    let rows = recorded.rows();
    assert_eq!(
        samples(&rows, HELD_SECONDS, &failing_labels).len(),
        1,
        "and not again at the release"
    );
}
