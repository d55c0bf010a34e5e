//! A permit pool: eight workers share three permits of one semaphore, so at
//! most three call the "fragile upstream" at once; the pool lives in a
//! SQLite file, so workers in other processes would share it too.
//!
//! ```sh
//! cargo run --example semaphore
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shylock::{AsyncSemaphore, SqliteBackend};

#[tokio::main]
async fn main() -> shylock::Result<()> {
    let dir = std::env::temp_dir().join("shylock-semaphore-example");
    std::fs::create_dir_all(&dir).expect("could not create the example directory");
    let backend = SqliteBackend::open(dir.join("locks.db"))?;
    let pool = AsyncSemaphore::with_backend("upstream-connections", 3, backend);

    let inside = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for worker in 0..8 {
        let (pool, inside) = (pool.clone(), inside.clone());
        workers.push(tokio::spawn(async move {
            for call in 0..3 {
                let permit = pool.acquire().await?;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                println!(
                    "worker {worker} call {call}: permit token {}, {now} of 3 in use",
                    permit.fencing_token()
                );
                assert!(now <= 3, "more holders than permits");
                tokio::time::sleep(Duration::from_millis(20)).await; // the upstream call
                inside.fetch_sub(1, Ordering::SeqCst);
                permit.release().await?;
            }
            shylock::Result::Ok(())
        }));
    }
    for worker in workers {
        worker.await.expect("a worker panicked")?;
    }
    let info = pool.inspect().await?;
    println!(
        "done: {} holders now, {} of 3 permits free",
        info.holders.len(),
        pool.available().await?
    );
    Ok(())
}
