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
    // If another thread won the race its runtime is kept and ours dropped
    // (we are not inside any runtime here, so dropping it is fine).
    let _ = RUNTIME.set(rt);
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
