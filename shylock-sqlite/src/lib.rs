//! Embedded SQLite backend for [shylock](https://crates.io/crates/shylock)
//! locks: every process on one machine that opens the same file shares the
//! same locks. No server, nothing installed system-wide (SQLite is bundled).
//!
//! One table, `shylock_locks`, keyed by the lock name (stored as bytes, so
//! any UTF-8 name works, NUL included) with the owner token, the expiry in
//! milliseconds since the Unix epoch and the fencing counter. The database
//! runs in WAL mode with a busy timeout; every write is one `BEGIN
//! IMMEDIATE` transaction. Rows are kept after release (owner cleared) so
//! fencing tokens keep increasing across release, expiry and
//! `force_release`.
//!
//! Database calls never stall the async runtime: on a multi-thread runtime
//! they run through `tokio::task::block_in_place` (the worker's other tasks
//! move to another thread), elsewhere on tokio's blocking pool. Each call
//! waits for another process's write transaction at most until its
//! deadline (the busy timeout is set from it).
//!
//! # Examples
//!
//! ```
//! # mod shylock { pub use shylock_core::*; pub mod sqlite { pub use shylock_sqlite::*; } }
//! use shylock::AsyncLock;
//! use shylock::sqlite::SqliteBackend;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> shylock::Result<()> {
//! let dir = std::env::temp_dir().join(format!("shylock-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let backend = SqliteBackend::open(dir.join("locks.db"))?;
//! let guard = AsyncLock::with_backend("backup", backend).acquire().await?;
//! guard.release().await?;
//! # Ok(())
//! # }
//! ```

mod backend;
mod conn;
mod fence;
// The statements are this crate's own; only the benchmark program
// (feature `bench`) runs some of them directly.
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod queries;
#[cfg(not(feature = "bench"))]
#[allow(unreachable_pub)]
mod queries;
mod queue;
mod rwlock;
mod semaphore;
mod watch;

pub use backend::{SqliteBackend, DEFAULT_BUSY_TIMEOUT};
pub use fence::{FencedSql, FENCE_PARAM};

#[cfg(feature = "bench")]
pub use conn::statements_executed;
