//! Election failover: a leader whose handle goes dead, and how long
//! until a follower leads.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shylock::backend::{Backend, Deadline};
use shylock::{Election, LockOptions, SharedBackend};

/// A backend handle that can go dead (every call hangs), as a leader whose
/// process or network died looks to the database.
#[derive(Debug)]
pub(crate) struct DeadSwitch {
    inner: SharedBackend,
    dead: std::sync::atomic::AtomicBool,
}

#[shylock::backend::async_trait]
impl Backend for DeadSwitch {
    async fn claim(
        &self,
        n: &str,
        o: &str,
        t: Duration,
        d: Deadline,
    ) -> shylock::Result<Option<shylock::backend::Grant>> {
        self.gate().await;
        self.inner.claim(n, o, t, d).await
    }
    async fn extend(
        &self,
        n: &str,
        o: &str,
        t: Duration,
        d: Deadline,
    ) -> shylock::Result<Option<std::time::SystemTime>> {
        self.gate().await;
        self.inner.extend(n, o, t, d).await
    }
    async fn release(&self, n: &str, o: &str, d: Deadline) -> shylock::Result<bool> {
        self.gate().await;
        self.inner.release(n, o, d).await
    }
    async fn inspect(&self, n: &str, d: Deadline) -> shylock::Result<Option<shylock::LockInfo>> {
        self.gate().await;
        self.inner.inspect(n, d).await
    }
    async fn list(
        &self,
        p: &str,
        a: Option<&str>,
        l: usize,
        d: Deadline,
    ) -> shylock::Result<Vec<shylock::LockInfo>> {
        self.inner.list(p, a, l, d).await
    }
    async fn force_release(&self, n: &str, d: Deadline) -> shylock::Result<bool> {
        self.inner.force_release(n, d).await
    }
}

impl DeadSwitch {
    async fn gate(&self) {
        if self.dead.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
}

/// Election failover: the leader goes dead; time until a follower leads.
pub(crate) async fn failover(backend: &SharedBackend, ttl: Duration) -> Duration {
    let name = format!("bench/election/{}", uuid::Uuid::new_v4());
    let options = LockOptions::default()
        .ttl(ttl)
        .backoff(Duration::from_millis(5), Duration::from_millis(100));
    let switch = Arc::new(DeadSwitch {
        inner: backend.clone(),
        dead: false.into(),
    });
    let a = Election::with_backend(&name, "a", SharedBackend::from(switch.clone()))
        .with_options(options.clone())
        .campaign()
        .unwrap();
    a.wait_until_leader().await;
    let b = Election::with_backend(&name, "b", backend.clone())
        .with_options(options)
        .campaign()
        .unwrap();
    // Let the leader renew at least once, as a long-running leader does.
    tokio::time::sleep(ttl / 2).await;
    switch.dead.store(true, Ordering::SeqCst);
    let died = Instant::now();
    b.wait_until_leader().await;
    let took = died.elapsed();
    b.stop().await;
    std::mem::forget(a); // its task hangs on the dead handle
    took
}
