//! Lock metrics in Prometheus's text format: four workers take turns on one
//! lock, then the program prints what a Prometheus scrape would see.
//!
//! shylock reports through the `metrics` facade (feature `metrics`); the
//! application picks the exporter, here `metrics-exporter-prometheus`. In
//! a service, install it with `.with_http_listener(..)` and let Prometheus
//! scrape it.
//!
//! ```sh
//! cargo run --example metrics --features metrics
//! ```

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use shylock::{AsyncLock, LockOptions, SqliteBackend};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prometheus = PrometheusBuilder::new().install_recorder()?;
    shylock::metrics::describe();

    let dir = std::env::temp_dir().join("shylock-metrics-example");
    std::fs::create_dir_all(&dir)?;
    let backend = SqliteBackend::open(dir.join("locks.db"))?;
    // This lock is one well-known name, so its metrics may carry it.
    let lock = AsyncLock::with_backend("nightly-report", backend)
        .with_options(LockOptions::default().name_in_metrics(true));

    let mut workers = Vec::new();
    for _ in 0..4 {
        let lock = lock.clone();
        workers.push(tokio::spawn(async move {
            for _ in 0..5 {
                let guard = lock.acquire().await?;
                tokio::time::sleep(Duration::from_millis(2)).await;
                guard.release().await?;
            }
            Ok::<(), shylock::Error>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    // A try while it is held: outcome="busy".
    let held = lock.acquire().await?;
    assert!(lock.try_acquire().await?.is_none());
    held.release().await?;

    print!("{}", prometheus.render());
    Ok(())
}
