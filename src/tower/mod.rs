//! Per-request locks for web services (feature `tower`): a
//! [`tower`](https://docs.rs/tower) layer that holds a distributed lock,
//! named from each request, while the inner service handles it.
//!
//! Works with any `tower::Service<http::Request<B>>` whose response body
//! has a [`Default`] (axum 0.8's `Body` has one): axum routers and
//! handlers, tonic, hyper services.
//!
//! # What the layer does
//!
//! For each request, the closure given to [`LockLayer::new`] names the lock
//! (returning `None` lets the request through unlocked). Then:
//!
//! 1. The layer takes the lock, as its [`Policy`] says:
//!    - [`Policy::Reject`] (the default, with `409 Conflict`; `423 Locked`
//!      with [`LockLayer::reject_with`]): one attempt; when another holder
//!      has the lock, the answer is that status, with `Retry-After` set to
//!      the holder's remaining lease in whole seconds (at least 1).
//!    - [`Policy::Wait`] ([`LockLayer::wait_up_to`]): waits up to the
//!      timeout; when it runs out, the answer is `503 Service Unavailable`
//!      with `Retry-After` as above.
//!
//!    The inner service is not called for these answers. When the database
//!    fails or does not answer, the answer is `503` with `Retry-After: 1`;
//!    a name the closure built that the backend refuses, or no configured
//!    backend, is `500 Internal Server Error`. Each is logged with
//!    `tracing`.
//! 2. While the lock is held, the inner service runs with a [`RequestLock`]
//!    in the request's extensions: the lock name, the fencing token, and
//!    the lost signal.
//! 3. When the inner service's future completes, the layer releases the
//!    lock (one round trip) and then returns the response. The lock covers
//!    the handler, not the streaming of the response body.
//!
//! If the request's future is dropped before that — the client
//! disconnected, or the server is shutting down — or the handler panics,
//! the guard is dropped and the lock is released in the background
//! (without waiting for its ttl).
//!
//! # Lost lease
//!
//! The lease is renewed in the background while the handler runs. If it is
//! lost anyway (the database was unreachable longer than the ttl, or an
//! operator force-released the lock), **the layer does not stop the
//! handler**: cancelling a handler half-way can be worse than finishing it.
//! The handler decides, through its [`RequestLock`]:
//! [`is_lost`](RequestLock::is_lost) before committing, or
//! [`lost`](RequestLock::lost) in a `tokio::select!` beside the work; and
//! writes carrying [`fencing_token`](RequestLock::fencing_token) are
//! refused by stores that check it. The response is passed on unchanged;
//! a lost lease is logged as a warning when the layer releases.
//!
//! # Examples
//!
//! ```
//! use axum::{extract::Path, routing::post, Extension, Router};
//! use shylock::tower::{LockLayer, RequestLock};
//! use shylock::MemoryBackend;
//!
//! async fn pay(Path(order): Path<u64>, Extension(lock): Extension<RequestLock>) -> String {
//!     // Only one request per order gets here at a time, across replicas.
//!     format!("paid order {order} under fence {}", lock.fencing_token())
//! }
//!
//! let layer = LockLayer::new(|req: &axum::extract::Request| {
//!     // "/orders/42/pay" -> "orders/42"
//!     let mut parts = req.uri().path().trim_start_matches('/').split('/');
//!     Some(format!("{}/{}", parts.next()?, parts.next()?))
//! })
//! .backend(MemoryBackend::new());
//!
//! let app: Router = Router::new()
//!     .route("/orders/{id}/pay", post(pay))
//!     .layer(layer);
//! ```

mod answer;
mod request_lock;
mod service;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::{LockOptions, SharedBackend};

pub use request_lock::RequestLock;
pub use service::{LockService, ResponseFuture};

/// What the layer does when the lock is held by someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Policy {
    /// One attempt; when the lock is held, answer with this status (409 or
    /// 423 usually) and `Retry-After` from the holder's remaining lease.
    Reject(StatusCode),
    /// Wait up to this long for the lock; when it runs out, answer `503`
    /// with `Retry-After` from the holder's remaining lease.
    Wait(Duration),
}

impl Default for Policy {
    /// `Reject(409 Conflict)`.
    fn default() -> Self {
        Policy::Reject(StatusCode::CONFLICT)
    }
}

/// What a [`LockLayer`]'s naming closure returns: the lock name of a
/// request, or `None` to let the request through without a lock.
pub trait LockName {
    /// The lock name, or `None` for no lock.
    fn into_lock_name(self) -> Option<String>;
}

impl LockName for String {
    fn into_lock_name(self) -> Option<String> {
        Some(self)
    }
}

impl LockName for &str {
    fn into_lock_name(self) -> Option<String> {
        Some(self.to_owned())
    }
}

impl<T: LockName> LockName for Option<T> {
    fn into_lock_name(self) -> Option<String> {
        self.and_then(LockName::into_lock_name)
    }
}

/// A [`tower::Layer`] that holds a distributed lock, named from each
/// request, while the inner service handles it. See the [module
/// docs](self) for what it answers and when it releases.
///
/// `F` is the naming closure, `Fn(&http::Request<B>) -> K` where `K` is a
/// [`LockName`]: a `String` or `&str`, or an `Option` of one (`None`: no
/// lock for this request).
pub struct LockLayer<F> {
    config: Config<F>,
}

pub(crate) struct Config<F> {
    pub(crate) name_of: Arc<F>,
    pub(crate) backend: Option<SharedBackend>,
    pub(crate) options: Option<LockOptions>,
    pub(crate) policy: Policy,
}

impl<F> Clone for Config<F> {
    fn clone(&self) -> Self {
        Config {
            name_of: self.name_of.clone(),
            backend: self.backend.clone(),
            options: self.options.clone(),
            policy: self.policy,
        }
    }
}

impl<F> LockLayer<F> {
    /// A layer locking the name `name_of` gives each request, in the
    /// default backend set by [`configure`](crate::configure), with the
    /// default options, rejecting with `409 Conflict` when the lock is held.
    pub fn new(name_of: F) -> Self {
        LockLayer {
            config: Config {
                name_of: Arc::new(name_of),
                backend: None,
                options: None,
                policy: Policy::default(),
            },
        }
    }

    /// Locks in this backend instead of the default one.
    pub fn backend(mut self, backend: impl Into<SharedBackend>) -> Self {
        self.config.backend = Some(backend.into());
        self
    }

    /// The locks' options (ttl, renewal, ...). Default: the default
    /// backend's options, else [`LockOptions::default`]. The policy, not
    /// the options' wait timeout, decides how long a request waits.
    pub fn options(mut self, options: LockOptions) -> Self {
        self.config.options = Some(options);
        self
    }

    /// Sets the policy for a held lock. Default: `Policy::Reject(409)`.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.config.policy = policy;
        self
    }

    /// Fail fast with `status` (`409 Conflict` or `423 Locked`, say) when
    /// the lock is held: `policy(Policy::Reject(status))`.
    pub fn reject_with(self, status: StatusCode) -> Self {
        self.policy(Policy::Reject(status))
    }

    /// Wait up to `timeout` for the lock, then answer `503`:
    /// `policy(Policy::Wait(timeout))`.
    pub fn wait_up_to(self, timeout: Duration) -> Self {
        self.policy(Policy::Wait(timeout))
    }
}

impl<F> Clone for LockLayer<F> {
    fn clone(&self) -> Self {
        LockLayer {
            config: self.config.clone(),
        }
    }
}

impl<F> fmt::Debug for LockLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockLayer")
            .field("policy", &self.config.policy)
            .field("backend", &self.config.backend)
            .field("options", &self.config.options)
            .finish_non_exhaustive()
    }
}

impl<S, F> ::tower::Layer<S> for LockLayer<F> {
    type Service = LockService<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        LockService::new(inner, self.config.clone())
    }
}
