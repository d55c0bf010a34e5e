//! The metrics shylock emits, and their names.
//!
//! With the feature `metrics`, every acquire, release and renewal reports
//! through the [`metrics`](https://docs.rs/metrics) facade. shylock picks no
//! exporter: install one (Prometheus, StatsD, ...) in the application, and
//! the figures below appear there. Without an installed recorder, or
//! without the feature, nothing is recorded and nothing is paid.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `shylock_acquire_wait_seconds` | histogram | backend, kind, outcome | time from the first attempt until the acquire ended |
//! | `shylock_acquire_attempts` | histogram | backend, kind, outcome | attempts one acquire made |
//! | `shylock_held_seconds` | histogram | backend, kind | time from the grant until release, drop or loss |
//! | `shylock_leases_lost_total` | counter | backend, kind | held leases that were lost (expired, taken over, force-released) |
//! | `shylock_renewal_failures_total` | counter | backend, kind | renewal attempts that failed or got no answer in time |
//! | `shylock_waiters` | gauge | backend, kind | acquires waiting right now (in this process) |
//!
//! Labels, all of low cardinality:
//! - `backend`: [`Backend::kind`](crate::backend::Backend::kind) —
//!   `memory`, `sqlite`, `mongodb`, `arangodb`, `sharded`, or a custom
//!   backend's own;
//! - `kind`: `lock`, `permit` (a semaphore permit), `read` or `write` (a
//!   read or write lease of a read/write lock); multi-locks, reentrant
//!   locks and elections are made of locks;
//! - `outcome`: `acquired`, `busy` (`try_acquire` found it held),
//!   `timed_out` (the wait ended), `error`, `cancelled` (the caller dropped
//!   the acquire);
//! - `name`: the lock name, only for locks whose options turn on
//!   [`LockOptions::name_in_metrics`](crate::LockOptions::name_in_metrics).
//!
//! # Examples
//!
//! With `metrics-exporter-prometheus` (see `examples/metrics.rs` in the
//! repository for a runnable program):
//!
//! ```ignore
//! let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
//! shylock::metrics::describe();
//! // ... locks are taken and released ...
//! println!("{}", prometheus.render());
//! ```

/// Histogram: seconds from the first attempt until the acquire ended.
pub const ACQUIRE_WAIT_SECONDS: &str = "shylock_acquire_wait_seconds";
/// Histogram: attempts one acquire made.
pub const ACQUIRE_ATTEMPTS: &str = "shylock_acquire_attempts";
/// Histogram: seconds a lease was held.
pub const HELD_SECONDS: &str = "shylock_held_seconds";
/// Counter: held leases that were lost.
pub const LEASES_LOST: &str = "shylock_leases_lost_total";
/// Counter: renewal attempts that failed.
pub const RENEWAL_FAILURES: &str = "shylock_renewal_failures_total";
/// Gauge: acquires waiting now.
pub const WAITERS: &str = "shylock_waiters";

/// Registers a description and unit for each metric with the installed
/// recorder, so exporters can show help texts. Optional; call it once after
/// installing the recorder.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe() {
    use ::metrics::Unit;
    ::metrics::describe_histogram!(
        ACQUIRE_WAIT_SECONDS,
        Unit::Seconds,
        "Time from the first attempt until a shylock acquire ended"
    );
    ::metrics::describe_histogram!(
        ACQUIRE_ATTEMPTS,
        Unit::Count,
        "Attempts one shylock acquire made"
    );
    ::metrics::describe_histogram!(HELD_SECONDS, Unit::Seconds, "Time a shylock lease was held");
    ::metrics::describe_counter!(
        LEASES_LOST,
        Unit::Count,
        "Held shylock leases that were lost"
    );
    ::metrics::describe_counter!(
        RENEWAL_FAILURES,
        Unit::Count,
        "shylock renewal attempts that failed"
    );
    ::metrics::describe_gauge!(WAITERS, Unit::Count, "shylock acquires waiting now");
}
