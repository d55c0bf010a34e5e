//! Waiting: handoff to waiters, wake-ups, wait timeouts and cancellation.

use std::time::Duration;

use tokio::time::Instant;

use crate::backend::SharedBackend;
use crate::error::Error;
use crate::lock::AsyncLock;
use crate::testkit::{unique_name, wait_for, CountingBackend};

use super::suite_options;

/// A waiter in `acquire()` gets the lock soon after the holder releases it.
pub async fn waiter_gets_released_lock(backend: SharedBackend) {
    let lock =
        AsyncLock::with_backend(unique_name("handoff"), backend).with_options(suite_options());
    let holder = lock.acquire().await.unwrap();
    let holder_token = holder.fencing_token();
    let waiter = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.acquire().await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!waiter.is_finished(), "waiter got a held lock");
    holder.release().await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("waiter never got the released lock")
        .unwrap()
        .unwrap();
    assert!(next.fencing_token() > holder_token);
    next.release().await.unwrap();
}

/// A release made through a backend handle wakes a waiter on the same
/// handle at once: with a 60 s minimum backoff, only the backend's release
/// signal can explain a handoff within a second.
pub async fn release_wakes_waiter_at_once(backend: SharedBackend) {
    let name = unique_name("wake");
    let holder = AsyncLock::with_backend(name.clone(), backend.clone())
        .with_options(suite_options())
        .acquire()
        .await
        .unwrap();
    let counting = CountingBackend::new(backend);
    let waiter = AsyncLock::with_backend(name, SharedBackend::from_arc(counting.clone()))
        .with_options(suite_options().backoff(Duration::from_secs(60), Duration::from_secs(60)));
    let task = tokio::spawn(async move { waiter.acquire().await });
    // Release only once the waiter's first attempt failed and it waits.
    let tried = wait_for(Duration::from_secs(20), || {
        let counting = counting.clone();
        async move { (counting.claim_count() >= 1).then_some(()) }
    })
    .await;
    assert!(tried.is_some(), "the waiter never tried");
    tokio::time::sleep(Duration::from_millis(20)).await;
    holder.release().await.unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(1), task).await;
    let guard = woke
        .expect("a release through the same handle did not wake the waiter within 1 s")
        .unwrap()
        .unwrap();
    guard.release().await.unwrap();
}

/// With a wait timeout, `acquire()` fails with `Error::Timeout` in bounded
/// time while the lock stays held.
pub async fn wait_timeout(backend: SharedBackend) {
    let name = unique_name("timeout");
    let holder = AsyncLock::with_backend(name.clone(), backend.clone())
        .acquire()
        .await
        .unwrap();
    let lock = AsyncLock::with_backend(name, backend)
        .with_options(suite_options().wait_timeout(Some(Duration::from_millis(100))));
    let started = Instant::now();
    let result = lock.acquire().await;
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(started.elapsed() < Duration::from_secs(20));
    holder.release().await.unwrap();
}

/// 200 `acquire()` calls cancelled after 0.05 to 2 ms (their futures
/// dropped mid-flight, as `tokio::time::timeout` or a closed connection
/// does): the lock never stays held by nobody. After each, a fresh
/// `acquire_timeout` gets the lock within a few seconds, though the ttl is
/// 60 s.
pub async fn cancelled_acquires_leave_the_lock_free(backend: SharedBackend) {
    let name = unique_name("cancel");
    let lock = AsyncLock::with_backend(&name, backend.clone())
        .with_options(suite_options().ttl(Duration::from_secs(60)));
    let mut completed = 0;
    for i in 0..200 {
        let cut = Duration::from_micros(fastrand::u64(50..=2000));
        if let Ok(guard) = tokio::time::timeout(cut, lock.acquire()).await {
            guard.unwrap().release().await.unwrap();
            completed += 1;
        }
        let guard = lock
            .acquire_timeout(Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap_or_else(|| {
                panic!("after cancelled acquire #{i} (cut after {cut:?}) the lock stayed held")
            });
        guard.release().await.unwrap();
    }
    tracing::debug!(
        completed,
        "cancelled acquires: this many finished before their cut"
    );
}
