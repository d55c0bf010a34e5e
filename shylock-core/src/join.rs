//! Awaiting several futures at once without pulling in the `futures` crate.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Runs the futures concurrently on the calling task and returns their
/// outputs in the order the futures came in, once every one has finished.
pub(crate) async fn join_all<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<Option<Pin<Box<F>>>> = futures.map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *output = Some(value);
                        // Dropped at once: what it holds is freed before
                        // the slowest future finishes.
                        *slot = None;
                    }
                    Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::join_all;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn outputs_keep_the_input_order_and_the_futures_run_together() {
        let started = tokio::time::Instant::now();
        let outputs = join_all([30u64, 10, 20].into_iter().map(|ms| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ms
        }))
        .await;
        assert_eq!(outputs, [30, 10, 20]);
        // Together, not one after another (which would take 60 ms).
        assert_eq!(started.elapsed(), Duration::from_millis(30));
    }

    #[tokio::test]
    async fn no_futures_is_no_outputs() {
        let outputs = join_all(std::iter::empty::<std::future::Ready<u8>>()).await;
        assert!(outputs.is_empty());
    }
}
