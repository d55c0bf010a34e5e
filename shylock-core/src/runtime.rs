//! shylock's own background runtime, for callers without one.

use std::future::Future;
use std::sync::OnceLock;

use crate::error::{Error, Result};

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// The background runtime (one worker thread named `shylock-runtime`),
/// started on first use and kept for the life of the process, so what runs
/// there (renewal, clients built for blocking callers) outlives any
/// caller's scope.
///
/// # Errors
///
/// [`Error::Runtime`] when the thread cannot be started.
pub fn background_runtime() -> Result<&'static tokio::runtime::Runtime> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("shylock-runtime")
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    // If another thread won the race its runtime is kept and ours shut
    // down without waiting: this may run inside an async context (a
    // backend built from a task), where dropping a runtime panics.
    if let Err(ours) = RUNTIME.set(rt) {
        ours.shutdown_background();
    }
    RUNTIME
        .get()
        .ok_or_else(|| Error::Runtime(std::io::Error::other("runtime vanished")))
}

/// Runs `fut` on the background runtime and blocks the calling thread until
/// it finishes.
///
/// # Errors
///
/// The future's own error; [`Error::Panicked`] if it panicked;
/// [`Error::Runtime`] if the runtime could not start.
pub fn block_on<T: Send + 'static>(
    operation: &'static str,
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    run(operation, fut)
}

pub(crate) fn run<T: Send + 'static>(
    operation: &'static str,
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    background_runtime()?.spawn(async move {
        let _ = tx.send(fut.await);
    });
    match rx.recv() {
        Ok(result) => result,
        Err(_) => Err(Error::Panicked { operation }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many tasks asking for the runtime at once, from inside async code:
    /// the losers of the first-use race shut their runtime down without
    /// the panic a plain drop gives in an async context.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn first_use_from_many_tasks_at_once() {
        let tasks: Vec<_> = (0..16)
            .map(|_| tokio::spawn(async { background_runtime().map(|rt| rt as *const _ as usize) }))
            .collect();
        let mut seen = Vec::new();
        for task in tasks {
            seen.push(task.await.expect("no panic").expect("a runtime"));
        }
        seen.dedup();
        assert_eq!(seen.len(), 1, "every caller gets the one runtime");
    }
}
