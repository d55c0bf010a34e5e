//! A complete minimal backend: locks in a `Mutex<BTreeMap>`, judged by the
//! system clock. It passes the whole lock conformance suite, which this
//! program runs: `cargo run --example minimal_backend --features testkit`.
//!
//! It offers the single lock only. Semaphores and fair queues are
//! capabilities of their own: a backend offers one by implementing
//! `shylock::backend::SemaphoreBackend` (or `QueueBackend`), every
//! operation of it, and answering `Some(self)` from `Backend::semaphores`
//! (or `Backend::queues`). Without them, `AsyncSemaphore` and fair locks
//! fail at once with an error naming this backend, and the conformance
//! suite reports their cases as not run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use shylock::backend::{Backend, Deadline, Grant, ReleaseSignals};
use shylock::{LockInfo, Result, SharedBackend};

/// One lock record: owner (None when free), fence, expiry.
type Record = (Option<String>, u64, SystemTime);

#[derive(Debug, Default)]
struct MapBackend {
    locks: Mutex<BTreeMap<String, Record>>,
    signals: ReleaseSignals,
}

#[shylock::backend::async_trait]
impl Backend for MapBackend {
    async fn claim(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        _: Deadline,
    ) -> Result<Option<Grant>> {
        let mut locks = self.locks.lock().unwrap();
        let now = SystemTime::now();
        let entry = locks.entry(name.to_owned()).or_insert((None, 0, now));
        let live = entry.0.is_some() && entry.2 >= now;
        match &entry.0 {
            Some(holder) if live && holder != owner => return Ok(None),
            Some(_) if live => {} // our own retry keeps its fence
            _ => entry.1 += 1,    // a new holder: a greater fence
        }
        *entry = (Some(owner.to_owned()), entry.1, now + ttl);
        Ok(Some(Grant::new(entry.1, entry.2)))
    }

    async fn extend(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        _: Deadline,
    ) -> Result<Option<SystemTime>> {
        let mut locks = self.locks.lock().unwrap();
        let now = SystemTime::now();
        match locks.get_mut(name) {
            Some(e) if e.0.as_deref() == Some(owner) && e.2 >= now => {
                e.2 = now + ttl;
                Ok(Some(e.2))
            }
            _ => Ok(None),
        }
    }

    async fn release(&self, name: &str, owner: &str, _: Deadline) -> Result<bool> {
        let mut locks = self.locks.lock().unwrap();
        let released = match locks.get_mut(name) {
            Some(e) if e.0.as_deref() == Some(owner) => {
                e.0 = None; // keep the fence
                true
            }
            _ => false,
        };
        drop(locks);
        if released {
            self.signals.notify(name);
        }
        Ok(released)
    }

    async fn inspect(&self, name: &str, _: Deadline) -> Result<Option<LockInfo>> {
        let locks = self.locks.lock().unwrap();
        let now = SystemTime::now();
        Ok(locks
            .get(name)
            .and_then(|(owner, fence, expires)| match owner {
                Some(owner) if *expires >= now => {
                    Some(LockInfo::new(name, owner, *fence, *expires))
                }
                _ => None,
            }))
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        d: Deadline,
    ) -> Result<Vec<LockInfo>> {
        let names: Vec<String> = {
            let locks = self.locks.lock().unwrap();
            locks
                .range(prefix.to_owned()..)
                .map(|(name, _)| name.clone())
                .take_while(|name| name.starts_with(prefix))
                .filter(|name| after.is_none_or(|a| name.as_str() > a))
                .collect()
        };
        let mut page = Vec::new();
        for name in names {
            if page.len() == limit.max(1) {
                break;
            }
            if let Some(info) = self.inspect(&name, d).await? {
                page.push(info);
            }
        }
        Ok(page)
    }

    async fn force_release(&self, name: &str, _: Deadline) -> Result<bool> {
        let mut locks = self.locks.lock().unwrap();
        let now = SystemTime::now();
        let live = match locks.get_mut(name) {
            Some(e) if e.0.is_some() => std::mem::take(&mut e.0).is_some() && e.2 >= now,
            _ => false,
        };
        drop(locks);
        self.signals.notify(name);
        Ok(live)
    }

    fn release_signal(&self, name: &str) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.signals.subscribe(name))
    }

    // `semaphores()` and `queues()` keep their defaults: not offered.
}

#[tokio::main]
async fn main() {
    shylock::backend::testkit::run_all(|| async { SharedBackend::new(MapBackend::default()) })
        .await;
    println!("MapBackend passed every conformance case");
}
