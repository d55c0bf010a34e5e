//! Core of [shylock](https://crates.io/crates/shylock): distributed locks kept
//! in a database.
//!
//! This crate holds everything that does not depend on a database driver:
//! the [`Backend`] trait, [`AsyncLock`] / [`Lock`] with their guards,
//! [`LockOptions`], [`Error`], the process-wide default backend
//! ([`configure`]), the in-process [`MemoryBackend`], and (feature
//! `testkit`) the conformance suite every backend passes.
//!
//! Waiting, timeouts, backoff with jitter, lease renewal and the lost-lock
//! signal are implemented here once, for every backend; a backend only
//! implements five single-attempt operations.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use shylock_core::{AsyncLock, LockOptions, MemoryBackend};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> shylock_core::Result<()> {
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
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
mod blocking;
mod error;
mod global;
mod guard;
mod lock;
mod memory;
mod options;
mod signal;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use backend::{
    duration_to_millis, system_time_from_millis, validate_name, Backend, Lease, LockInfo,
    SharedBackend, MAX_NAME_LEN,
};
pub use blocking::{Lock, LockGuard};
pub use error::{BoxError, Error, Result};
pub use global::{configure, configure_with, default_backend, is_configured};
pub use guard::AsyncLockGuard;
pub use lock::AsyncLock;
pub use memory::MemoryBackend;
pub use options::{LockOptions, Renewal, MAX_TTL};
pub use signal::ReleaseSignals;

/// Re-exported so backend crates implement [`Backend`] with the same macro.
pub use async_trait::async_trait;
