//! Quickstart: a default backend, an async guard, try_acquire, and a
//! blocking lock. Run with `cargo run --example quickstart`.

use std::time::Duration;

use shylock::{AsyncLock, Lock, LockOptions, MemoryBackend};

#[tokio::main]
async fn main() -> shylock::Result<()> {
    // Once at startup.
    shylock::configure(MemoryBackend::new())?;

    // Hold a lock across async work.
    let guard = AsyncLock::new("orders/42").acquire().await?;
    println!(
        "holding {:?} with fencing token {}",
        guard.name(),
        guard.fencing_token()
    );

    // Another task skips instead of waiting.
    match AsyncLock::new("orders/42").try_acquire().await? {
        Some(_) => println!("unexpected: got a held lock"),
        None => println!("orders/42 is busy, skipping"),
    }
    guard.release().await?;

    // Blocking code, from a plain thread.
    let handle = std::thread::spawn(|| -> shylock::Result<u64> {
        let lock = Lock::new("nightly-job")
            .with_options(LockOptions::default().ttl(Duration::from_secs(10)));
        let guard = lock.acquire()?;
        Ok(guard.fencing_token())
    });
    let token = handle.join().expect("thread panicked")?;
    println!("blocking lock taken with fencing token {token}");
    Ok(())
}
