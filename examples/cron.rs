//! The README's cron job: runs the nightly report unless another process is
//! running it, and leaves the lock free when it exits.
//!
//! ```sh
//! cargo run --example cron                       # SQLite file in the temp directory
//! cargo run --example cron -- sqlite:/var/lib/myapp/locks.db
//! cargo run --features mongo --example cron -- 'mongodb://127.0.0.1:27017/?directConnection=true'
//! cargo run --example cron -- sqlite:locks.db drop   # the guard dropped on main's last line
//! ```
//!
//! With `drop` the job holds a guard that is simply dropped as `main`
//! returns, instead of the scoped `try_run`: the lock is free after the
//! process exits either way (see "Releasing on drop" in the crate docs).
//! MongoDB uses the database named by `CRON_DATABASE` (default `cron`).

use shylock::AsyncLock;

async fn nightly_report() {
    // ... the job ...
    println!("ran nightly-report");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let store = args.next().unwrap_or_else(|| {
        let path = std::env::temp_dir().join("shylock-cron-example.db");
        format!("sqlite:{}", path.display())
    });
    let drop_guard = args.next().as_deref() == Some("drop");
    configure(&store).await?;

    let lock = AsyncLock::new("nightly-report");
    if drop_guard {
        match lock.try_acquire().await? {
            Some(_guard) => nightly_report().await, // _guard dropped at the end of main
            None => println!("nightly-report is running elsewhere; skipped"),
        }
    } else {
        match lock.try_run(nightly_report()).await? {
            Some(()) => {}
            None => println!("nightly-report is running elsewhere; skipped"),
        }
    }
    Ok(())
}

/// Sets the default backend from `sqlite:PATH` or a `mongodb://` URI.
async fn configure(store: &str) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(path) = store.strip_prefix("sqlite:") {
        shylock::configure(shylock::SqliteBackend::open(path)?)?;
        return Ok(());
    }
    #[cfg(feature = "mongo")]
    if store.starts_with("mongodb://") || store.starts_with("mongodb+srv://") {
        let database = std::env::var("CRON_DATABASE").unwrap_or_else(|_| "cron".into());
        shylock::configure(shylock::MongoBackend::connect(store, &database).await?)?;
        return Ok(());
    }
    Err(
        format!("unknown store {store:?}: use sqlite:PATH or a mongodb:// URI (feature mongo)")
            .into(),
    )
}
