//! Core of [shylock](https://crates.io/crates/shylock): distributed locks kept
//! in a database.
//!
//! This crate holds everything that does not depend on a database driver:
//! [`AsyncLock`] with its guard and the other lock shapes, their
//! [`blocking`] twins ([`Lock`], ...), [`LockOptions`], [`Error`],
//! the process-wide default backend ([`configure`]), the in-process
//! [`MemoryBackend`], the contract for backend authors ([`backend`]), and
//! (feature `testkit`) the conformance suite every backend passes.
//!
//! Waiting, timeouts, backoff with jitter, lease renewal, cancellation and
//! the lost-lock signal are implemented here once, for every backend; a
//! backend only implements six single-attempt operations
//! ([`backend::Backend`]).
//!
//! # Releasing on drop
//!
//! `guard.release().await` frees a lock and says whether it was still
//! ours. Dropping a guard frees it too, without blocking: the release runs
//! on shylock's background runtime, not the caller's, so it finishes even
//! when the caller's runtime ends right after the drop, as on the last line
//! of a `#[tokio::main]` or a `#[tokio::test]`. Until it has finished:
//!
//! - an acquire of the same name in this process waits for it, so
//!   `drop(guard)` followed by `try_acquire()` finds the lock free;
//! - [`release_all`] waits for it;
//! - on Unix, the process's exit waits for it (an `atexit` hook), bounded
//!   by the operation timeout.
//!
//! Where a program must be certain without relying on the exit hook, it
//! awaits the release: [`AsyncLock::try_run`] runs work under a lock and
//! releases it before returning, and `release_all(timeout).await` at the end
//! of `main` also waits for releases of guards dropped before it.
//!
//! One case needs the caller's runtime: a backend built on a client that
//! the caller created on its own runtime (a `mongodb::Client` passed to
//! `MongoBackend::builder`). That client stops working when its runtime
//! ends, and a release still in flight then fails and the lock expires by
//! its ttl. With such a client, release guards (or call `release_all`)
//! before the runtime ends; backends whose client shylock creates
//! (`MongoBackend::connect`, SQLite, ArangoDB) have no such limit.
//!
//! # Observability
//!
//! Every acquire runs in a `shylock.acquire` tracing span (fields `lock`,
//! `kind`, `backend`, `attempts`, `waited_ms`, `outcome`, and
//! `fencing_token` when won), every release in a `shylock.release` span
//! (`lock`, `fencing_token`, `outcome`) and every renewal attempt in a
//! `shylock.renew` span at DEBUG level. With the feature `metrics`, the
//! figures listed in [`metrics`] go through the `metrics` facade.
//!
//! # Examples
//!
//! ```
//! # extern crate shylock_core as shylock;
//! use std::time::Duration;
//! use shylock::{AsyncLock, LockOptions, MemoryBackend};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> shylock::Result<()> {
//! let backend = MemoryBackend::new();
//! let lock = AsyncLock::with_backend("orders/42", backend)
//!     .with_options(LockOptions::default().ttl(Duration::from_secs(10)));
//! if let Some(guard) = lock.try_acquire().await? {
//!     println!("fencing token {}", guard.fencing_token());
//!     guard.release().await?;
//! }
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attempt;
pub mod backend;
pub mod blocking;
mod election;
mod error;
mod fair_permits;
mod global;
mod guard;
mod inflight;
mod join;
mod lease;
mod line;
mod lock;
mod memory;
pub mod metrics;
mod multi;
mod observe;
mod options;
mod owner;
mod reentrant;
mod renewal;
mod runtime;
mod rwlock;
mod semaphore;
mod sharded;
mod shutdown;
mod spec;
mod target;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;
mod ticket;
mod wait;

pub use backend::{
    LockInfo, QueueInfo, RwLockInfo, SemaphoreInfo, SharedBackend, MAX_PERMITS, MAX_WAITERS,
};
pub use blocking::{Lock, LockGuard, MultiLock, ReentrantLock, RwLock, Semaphore, Ticket};
pub use election::{Campaign, Election, LeaderInfo, Role};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use global::{configure, configure_with, default_backend, is_configured};
pub use guard::AsyncLockGuard;
pub use lock::AsyncLock;
pub use memory::MemoryBackend;
pub use multi::{AsyncMultiLock, AsyncMultiLockGuard};
pub use options::{
    LockOptions, Renewal, DEFAULT_CLOCK_DRIFT_PPM, DEFAULT_OPERATION_TIMEOUT, MAX_TTL,
};
pub use reentrant::{AsyncReentrantGuard, AsyncReentrantLock};
pub use runtime::{background_runtime, block_on};
pub use rwlock::{AsyncReadGuard, AsyncRwLock, AsyncWriteGuard, RwPreference};
pub use semaphore::AsyncSemaphore;
pub use sharded::ShardedBackend;
pub use shutdown::{release_all, release_all_blocking, ReleaseAllReport};
pub use ticket::AsyncTicket;

/// Renamed [`AsyncMultiLockGuard`]: the guard names follow the shapes
/// (`Async*` for async, no prefix in [`blocking`]).
#[deprecated(note = "use shylock::AsyncMultiLockGuard")]
pub type MultiLockGuard = AsyncMultiLockGuard;

/// Renamed [`blocking::MultiLockGuard`].
#[deprecated(note = "use shylock::blocking::MultiLockGuard")]
pub type BlockingMultiLockGuard = blocking::MultiLockGuard;

/// Renamed [`AsyncReentrantGuard`]: the guard names follow the shapes
/// (`Async*` for async, no prefix in [`blocking`]).
#[deprecated(note = "use shylock::AsyncReentrantGuard")]
pub type ReentrantGuard = AsyncReentrantGuard;

/// Renamed [`blocking::ReentrantGuard`].
#[deprecated(note = "use shylock::blocking::ReentrantGuard")]
pub type BlockingReentrantGuard = blocking::ReentrantGuard;

/// Re-exported so backend crates implement [`backend::Backend`] with the
/// same macro.
pub use async_trait::async_trait;
