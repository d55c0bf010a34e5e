//! [`RuntimeWatch`]: learns when the runtime that built a backend has shut
//! down, which ends a MongoDB client the caller created on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Learns when a runtime shuts down: a task that never finishes is dropped
/// with its runtime, and its guard sets the flag.
pub(crate) struct RuntimeWatch {
    gone: Arc<AtomicBool>,
    task: tokio::task::AbortHandle,
}

impl RuntimeWatch {
    /// Watches the current runtime, if there is one.
    pub(crate) fn current() -> Option<Self> {
        struct SetOnDrop(Arc<AtomicBool>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let gone = Arc::new(AtomicBool::new(false));
        let guard = SetOnDrop(gone.clone());
        let task = handle.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        Some(RuntimeWatch {
            gone,
            task: task.abort_handle(),
        })
    }

    /// Whether the watched runtime has shut down.
    pub(crate) fn is_gone(&self) -> bool {
        self.gone.load(Ordering::SeqCst)
    }
}

impl Drop for RuntimeWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
