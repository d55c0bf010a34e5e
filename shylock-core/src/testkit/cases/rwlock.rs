//! Read/write locks: readers share, a writer is alone, writer preference,
//! expiry, owner checks, fencing order, cancellation, wake-ups.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::SharedBackend;
use crate::error::Error;
use crate::options::{LockOptions, Renewal};
use crate::rwlock::{AsyncRwLock, RwPreference};
use crate::testkit::{op_deadline, owner, unique_name, wait_for};

use super::{offers_rwlocks, rws, suite_options};

/// A read/write lock on a fresh name with the suite's options.
fn fresh(backend: &SharedBackend, label: &str) -> AsyncRwLock {
    AsyncRwLock::with_backend(unique_name(label), backend.clone()).with_options(suite_options())
}

/// Panics unless `rw` has no live reader, no writer and no waiting writer.
async fn assert_free(rw: &AsyncRwLock) {
    let info = rw.inspect().await.unwrap();
    assert!(
        info.is_free() && !info.writer_waiting,
        "read/write lock {:?} not free at the end of the case: {info:?}",
        rw.name()
    );
}

/// Several readers hold the lock at once; the inspection shows them in
/// grant order and no writer.
pub async fn rwlock_readers_share(backend: SharedBackend) {
    if !offers_rwlocks(&backend, "rwlock_readers_share") {
        return;
    }
    let rw = fresh(&backend, "rw-share");
    let mut guards = Vec::new();
    for _ in 0..3 {
        guards.push(
            rw.try_read()
                .await
                .unwrap()
                .expect("readers share the lock"),
        );
    }
    let info = rw.inspect().await.unwrap();
    assert_eq!(info.readers.len(), 3);
    assert!(info.writer.is_none());
    let owners: Vec<_> = info.readers.iter().map(|r| r.owner.clone()).collect();
    let held: Vec<_> = guards.iter().map(|g| g.owner().to_owned()).collect();
    assert_eq!(owners, held, "readers are listed in grant order");
    for g in guards {
        g.release().await.unwrap();
    }
    assert_free(&rw).await;
}

/// A writer excludes readers and other writers, and readers exclude a
/// writer; under concurrent load no writer is ever inside with anyone.
pub async fn rwlock_writer_excludes(backend: SharedBackend) {
    if !offers_rwlocks(&backend, "rwlock_writer_excludes") {
        return;
    }
    let rw = fresh(&backend, "rw-excl");
    let w = rw
        .try_write()
        .await
        .unwrap()
        .expect("a free lock takes a writer");
    assert!(
        rw.try_read().await.unwrap().is_none(),
        "a reader entered beside the writer"
    );
    assert!(
        rw.try_write().await.unwrap().is_none(),
        "two writers at once"
    );
    w.release().await.unwrap();
    let r = rw.try_read().await.unwrap().expect("free again");
    assert!(
        rw.try_write().await.unwrap().is_none(),
        "a writer entered beside a reader"
    );
    r.release().await.unwrap();

    let readers = Arc::new(AtomicUsize::new(0));
    let writers = Arc::new(AtomicUsize::new(0));
    let most_readers = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..8 {
        let (rw, readers, writers, most_readers) = (
            rw.clone(),
            readers.clone(),
            writers.clone(),
            most_readers.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for round in 0..15 {
                if (task + round) % 4 == 0 {
                    let g = rw.write().await.unwrap();
                    assert_eq!(
                        writers.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two writers inside"
                    );
                    assert_eq!(
                        readers.load(Ordering::SeqCst),
                        0,
                        "a writer inside with readers"
                    );
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    writers.fetch_sub(1, Ordering::SeqCst);
                    g.release().await.unwrap();
                } else {
                    let g = rw.read().await.unwrap();
                    let now = readers.fetch_add(1, Ordering::SeqCst) + 1;
                    most_readers.fetch_max(now, Ordering::SeqCst);
                    assert_eq!(
                        writers.load(Ordering::SeqCst),
                        0,
                        "a reader inside with a writer"
                    );
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    readers.fetch_sub(1, Ordering::SeqCst);
                    g.release().await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tracing::debug!(
        most_readers = most_readers.load(Ordering::SeqCst),
        "rwlock load done"
    );
    assert_free(&rw).await;
}

/// With writer preference (the default) a waiting writer keeps new readers
/// out and gets the lock when the readers inside leave; with reader
/// preference readers still enter while it waits.
pub async fn rwlock_writer_preference(backend: SharedBackend) {
    if !offers_rwlocks(&backend, "rwlock_writer_preference") {
        return;
    }
    let rw = fresh(&backend, "rw-pref");
    let inside = rw.read().await.unwrap();
    let writer = {
        let rw = rw.clone();
        tokio::spawn(async move { rw.write_timeout(Duration::from_secs(20)).await })
    };
    let waiting = wait_for(Duration::from_secs(10), || async {
        rw.inspect().await.unwrap().writer_waiting.then_some(())
    })
    .await;
    assert!(waiting.is_some(), "a waiting writer recorded no intent");
    assert!(
        rw.try_read().await.unwrap().is_none(),
        "a new reader entered while a writer waits (writer preference)"
    );
    let readers_first = rw.clone().with_preference(RwPreference::Readers);
    let extra = readers_first
        .try_read()
        .await
        .unwrap()
        .expect("with reader preference a reader enters while a writer waits");
    extra.release().await.unwrap();
    let token = inside.fencing_token();
    inside.release().await.unwrap();
    let w = writer
        .await
        .unwrap()
        .unwrap()
        .expect("the waiting writer got the lock once the readers left");
    assert!(w.fencing_token() > token);
    assert!(
        !rw.inspect().await.unwrap().writer_waiting,
        "the winner's intent stayed"
    );
    w.release().await.unwrap();
    assert_free(&rw).await;
}

/// A reader whose lease expired (renewal off) no longer keeps a writer
/// out, and can neither extend nor release afterwards.
pub async fn rwlock_expired_reader_not_counted(backend: SharedBackend) {
    if !offers_rwlocks(&backend, "rwlock_expired_reader_not_counted") {
        return;
    }
    let ttl = Duration::from_millis(400);
    let rw = fresh(&backend, "rw-expiry");
    let short = rw
        .clone()
        .with_options(suite_options().ttl(ttl).renewal(Renewal::Off));
    let started = Instant::now();
    let reader = short.read().await.unwrap();
    assert!(
        rw.try_write().await.unwrap().is_none(),
        "the reader is live"
    );
    let w = wait_for(Duration::from_secs(10), || async {
        rw.try_write().await.unwrap()
    })
    .await
    .expect("an expired reader still kept the writer out");
    assert!(
        started.elapsed() >= ttl - Duration::from_millis(50),
        "taken before the ttl"
    );
    assert!(matches!(
        reader.extend(ttl).await,
        Err(Error::LockLost { .. })
    ));
    assert!(matches!(
        reader.release().await,
        Err(Error::LockLost { .. })
    ));
    assert_eq!(rw.inspect().await.unwrap().readers.len(), 0);
    w.release().await.unwrap();
    assert_free(&rw).await;
}

/// Extend and release are owner-checked for readers and the writer; a
/// retried claim by the same owner keeps its lease and token.
pub async fn rwlock_owner_checked(backend: SharedBackend) {
    if !offers_rwlocks(&backend, "rwlock_owner_checked") {
        return;
    }
    let rws = rws(&backend);
    let name = unique_name("rw-owner");
    let ttl = Duration::from_secs(30);
    let (a, b, c) = (owner(), owner(), owner());
    let read = rws
        .claim_read(&name, &a, ttl, true, op_deadline())
        .await
        .unwrap()
        .unwrap();
    let again = rws
        .claim_read(&name, &a, ttl, true, op_deadline())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        read.fencing_token, again.fencing_token,
        "a retry got a new token"
    );
    assert_eq!(
        rws.inspect_rwlock(&name, op_deadline())
            .await
            .unwrap()
            .readers
            .len(),
        1
    );
    assert!(rws
        .extend_rw(&name, &b, ttl, op_deadline())
        .await
        .unwrap()
        .is_none());
    assert!(!rws.release_rw(&name, &b, op_deadline()).await.unwrap());
    assert!(rws
        .extend_rw(&name, &a, ttl, op_deadline())
        .await
        .unwrap()
        .is_some());
    assert!(rws
        .claim_write(&name, &c, ttl, false, op_deadline())
        .await
        .unwrap()
        .is_none());
    assert!(rws.release_rw(&name, &a, op_deadline()).await.unwrap());
    assert!(
        !rws.release_rw(&name, &a, op_deadline()).await.unwrap(),
        "released twice"
    );

    let write = rws
        .claim_write(&name, &c, ttl, true, op_deadline())
        .await
        .unwrap()
        .unwrap();
    let again = rws
        .claim_write(&name, &c, ttl, true, op_deadline())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        write.fencing_token, again.fencing_token,
        "a retry got a new token"
    );
    assert!(rws
        .extend_rw(&name, &a, ttl, op_deadline())
        .await
        .unwrap()
        .is_none());
    assert!(!rws.release_rw(&name, &a, op_deadline()).await.unwrap());
    let info = rws.inspect_rwlock(&name, op_deadline()).await.unwrap();
    assert_eq!(info.writer.map(|w| w.owner), Some(c.clone()));
    assert!(rws.release_rw(&name, &c, op_deadline()).await.unwrap());
    let info = rws.inspect_rwlock(&name, op_deadline()).await.unwrap();
    assert!(info.is_free() && !info.writer_waiting, "{info:?}");
}

/// Fencing tokens strictly increase per name across read and write
/// grants.
pub async fn rwlock_fencing_order(backend: SharedBackend) {
    if !offers_rwlocks(&backend, "rwlock_fencing_order") {
        return;
    }
    let rw = fresh(&backend, "rw-fence");
    let mut last = 0;
    for round in 0..4 {
        let r1 = rw.read().await.unwrap();
        let r2 = rw.read().await.unwrap();
        assert!(
            r1.fencing_token() > last,
            "round {round}: a reader's token went back"
        );
        assert!(
            r2.fencing_token() > r1.fencing_token(),
            "two readers, one order"
        );
        last = r2.fencing_token();
        r1.release().await.unwrap();
        r2.release().await.unwrap();
        let w = rw.write().await.unwrap();
        assert!(
            w.fencing_token() > last,
            "round {round}: the writer's token went back"
        );
        last = w.fencing_token();
        w.release().await.unwrap();
    }
    assert_free(&rw).await;
}

/// Reads and writes cut at random moments, and writes that time out, leave
/// no lease and no writer's intent behind.
pub async fn rwlock_cancelled_attempts_leave_nothing(backend: SharedBackend) {
    if !offers_rwlocks(&backend, "rwlock_cancelled_attempts_leave_nothing") {
        return;
    }
    let rw = AsyncRwLock::with_backend(unique_name("rw-cancel"), backend.clone())
        .with_options(suite_options().ttl(Duration::from_secs(60)));
    for i in 0..60 {
        let blocker = if i % 2 == 0 {
            Some(rw.read().await.unwrap())
        } else {
            None
        };
        let cut = Duration::from_micros(fastrand::u64(50..=3000));
        if i % 3 == 0 {
            if let Ok(g) = tokio::time::timeout(cut, rw.read()).await {
                g.unwrap().release().await.unwrap();
            }
        } else if let Ok(g) = tokio::time::timeout(cut, rw.write()).await {
            g.unwrap().release().await.unwrap();
        }
        if let Some(b) = blocker {
            b.release().await.unwrap();
        }
        let free = wait_for(Duration::from_secs(10), || async {
            let info = rw.inspect().await.unwrap();
            (info.is_free() && !info.writer_waiting).then_some(())
        })
        .await;
        assert!(
            free.is_some(),
            "cancelled attempt #{i} (cut after {cut:?}) left something behind"
        );
    }
    let reader = rw.read().await.unwrap();
    let timed_out = rw.write_timeout(Duration::from_millis(50)).await.unwrap();
    assert!(timed_out.is_none());
    crate::testkit::assert_readers_enter(&rw).await;
    reader.release().await.unwrap();
    assert_free(&rw).await;
}

/// Releases wake the waiters that can now win at once, not at their next
/// backoff step: every waiting reader when the writer leaves, the writer
/// when the last reader leaves.
pub async fn rwlock_release_wakes_waiters(backend: SharedBackend) {
    if !offers_rwlocks(&backend, "rwlock_release_wakes_waiters") {
        return;
    }
    let slow = LockOptions::default()
        .ttl(Duration::from_secs(30))
        .backoff(Duration::from_secs(2), Duration::from_secs(4));
    let rw = AsyncRwLock::with_backend(unique_name("rw-wake"), backend.clone()).with_options(slow);
    let w = rw.write().await.unwrap();
    let mut readers = Vec::new();
    for _ in 0..3 {
        let rw = rw.clone();
        readers.push(tokio::spawn(async move {
            let g = rw.read().await.unwrap();
            (Instant::now(), g)
        }));
    }
    // Every reader has made its first attempts and is pausing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let released = Instant::now();
    w.release().await.unwrap();
    let mut guards = Vec::new();
    for r in readers {
        let (entered, g) = r.await.unwrap();
        assert!(
            entered - released < Duration::from_millis(1500),
            "a reader waited {:?} after the writer left",
            entered - released
        );
        guards.push(g);
    }
    let writer = {
        let rw = rw.clone();
        tokio::spawn(async move {
            let g = rw.write().await.unwrap();
            (Instant::now(), g)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let released = Instant::now();
    for g in guards {
        g.release().await.unwrap();
    }
    let (entered, g) = writer.await.unwrap();
    assert!(
        entered - released < Duration::from_millis(1500),
        "the writer waited {:?} after the last reader left",
        entered - released
    );
    g.release().await.unwrap();
    assert_free(&rw).await;
}
