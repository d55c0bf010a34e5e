//! The process-wide default backend. One test function, because the default
//! can be set only once per process (and each test file is one process).

use shylock_core::{configure, configure_with, AsyncLock, Error, Lock, LockOptions, MemoryBackend};

#[tokio::test]
async fn configure_once_then_use_the_default() {
    let lock = AsyncLock::new("report");
    assert!(matches!(lock.acquire().await, Err(Error::NotConfigured)));
    assert!(matches!(lock.is_locked().await, Err(Error::NotConfigured)));
    assert!(!shylock_core::is_configured());

    let invalid = LockOptions::default().ttl(std::time::Duration::ZERO);
    assert!(matches!(
        configure_with(MemoryBackend::new(), invalid),
        Err(Error::InvalidOptions { .. })
    ));
    assert!(
        !shylock_core::is_configured(),
        "invalid options must not configure"
    );

    configure(MemoryBackend::new()).unwrap();
    assert!(matches!(
        configure(MemoryBackend::new()),
        Err(Error::AlreadyConfigured)
    ));

    let guard = lock.acquire().await.unwrap();
    assert!(AsyncLock::new("report")
        .try_acquire()
        .await
        .unwrap()
        .is_none());
    let blocking = Lock::new("report");
    let held = tokio::task::spawn_blocking(move || blocking.is_locked().unwrap())
        .await
        .unwrap();
    assert!(held);
    guard.release().await.unwrap();
}
