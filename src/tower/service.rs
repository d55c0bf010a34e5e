//! [`LockService`]: the service the layer wraps around the inner one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};

use super::answer::{answer, failed, retry_after};
use super::{Config, LockName, Policy, RequestLock};
use crate::{AsyncLock, AsyncLockGuard, Error};

/// The future of a [`LockService`] call.
pub type ResponseFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

/// The service made by [`LockLayer`](super::LockLayer): takes the
/// request's lock, calls the inner service, releases.
pub struct LockService<S, F> {
    inner: S,
    config: Config<F>,
}

impl<S, F> LockService<S, F> {
    pub(crate) fn new(inner: S, config: Config<F>) -> Self {
        LockService { inner, config }
    }
}

impl<S: Clone, F> Clone for LockService<S, F> {
    fn clone(&self) -> Self {
        LockService {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for LockService<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockService")
            .field("inner", &self.inner)
            .field("policy", &self.config.policy)
            .finish_non_exhaustive()
    }
}

impl<S, F, K, ReqBody, ResBody> ::tower::Service<Request<ReqBody>> for LockService<S, F>
where
    S: ::tower::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    F: Fn(&Request<ReqBody>) -> K + Send + Sync + 'static,
    K: LockName,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this request; the fresh
        // clone stays for the next (tower's usual dance).
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let Some(name) = (self.config.name_of)(&request).into_lock_name() else {
            return Box::pin(inner.call(request));
        };
        let lock = match &self.config.backend {
            Some(backend) => AsyncLock::with_backend(name, backend.clone()),
            None => AsyncLock::new(name),
        };
        let lock = match &self.config.options {
            Some(options) => lock.with_options(options.clone()),
            None => lock,
        };
        let policy = self.config.policy;
        Box::pin(async move {
            let guard = match take(&lock, policy).await {
                Ok(Ok(guard)) => Arc::new(guard),
                Ok(Err(busy)) => return Ok(busy),
                Err(error) => return Ok(failed(lock.name(), &error)),
            };
            request
                .extensions_mut()
                .insert(RequestLock::new(guard.clone()));
            // A panic or a dropped future drops `guard` here: the guard's
            // drop releases in the background.
            let response = inner.call(request).await;
            release(guard).await;
            response
        })
    }
}

/// Takes the lock as the policy says: the guard, or the answer for a lock
/// that stayed held.
async fn take<B: Default>(
    lock: &AsyncLock,
    policy: Policy,
) -> Result<Result<AsyncLockGuard, Response<B>>, Error> {
    let (got, status) = match policy {
        Policy::Reject(status) => (lock.try_acquire().await?, status),
        Policy::Wait(timeout) => (
            lock.acquire_timeout(timeout).await?,
            http::StatusCode::SERVICE_UNAVAILABLE,
        ),
    };
    match got {
        Some(guard) => Ok(Ok(guard)),
        None => Ok(Err(answer(status, Some(retry_after(lock).await)))),
    }
}

/// Releases before the response leaves, so a client that got its answer
/// finds the lock free. A clone of the [`RequestLock`] kept by the handler
/// keeps the lock until it is dropped.
async fn release(guard: Arc<AsyncLockGuard>) {
    let Ok(guard) = Arc::try_unwrap(guard) else {
        return;
    };
    let name = guard.name().to_owned();
    match guard.release().await {
        Ok(()) => {}
        Err(error @ Error::LockLost { .. }) => {
            tracing::warn!(lock = %name, %error, "request lock was lost while the handler ran");
        }
        Err(error) => {
            tracing::warn!(lock = %name, %error, "request lock: release failed; it expires after its ttl");
        }
    }
}
