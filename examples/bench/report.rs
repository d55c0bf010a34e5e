//! Summaries of timed samples, durations as table cells, and failed
//! calls counted for the tables they make suspect.

use std::sync::atomic::Ordering;
use std::time::Duration;

pub(crate) struct Stats {
    pub(crate) median: Duration,
    pub(crate) p99: Duration,
    pub(crate) per_sec: f64,
    /// This process's CPU time (every thread) per operation, where
    /// measured: what the client itself costs, which the machine's noise
    /// moves far less than wall time.
    pub(crate) cpu: Option<Duration>,
}

/// The process's CPU time at one instant, for [`Stats::with_cpu`].
pub(crate) struct CpuMark(cpu_time::ProcessTime);

impl CpuMark {
    pub(crate) fn now() -> CpuMark {
        CpuMark(cpu_time::ProcessTime::now())
    }
}

impl Stats {
    /// Adds the CPU time since `mark`, shared out over the samples.
    pub(crate) fn with_cpu(mut self, mark: CpuMark, ops: usize) -> Stats {
        self.cpu = Some(mark.0.elapsed() / ops.max(1) as u32);
        self
    }
}

pub(crate) fn stats(mut samples: Vec<Duration>, total: Duration) -> Stats {
    if samples.is_empty() {
        samples.push(Duration::ZERO);
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        median: at(0.5),
        p99: at(0.99),
        per_sec: samples.len() as f64 / total.as_secs_f64(),
        cpu: None,
    }
}

pub(crate) fn us(d: Duration) -> String {
    if d >= Duration::from_millis(10) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    }
}

pub(crate) static FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts and reports an operation that failed in a waiting row.
pub(crate) fn failed(operation: &str, error: &shylock::Error) {
    FAILURES.fetch_add(1, Ordering::SeqCst);
    eprintln!("bench: {operation} failed: {error}");
}

/// A line for the output when operations failed since the last call.
pub(crate) fn report_failures() {
    let n = FAILURES.swap(0, Ordering::SeqCst);
    if n > 0 {
        println!("\n({n} acquire or release calls failed during these rows, reported on stderr; their rows are suspect.)\n");
    }
}
