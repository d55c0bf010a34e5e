//! ArangoDB backend for [shylock](https://crates.io/crates/shylock) locks.
//!
//! One collection (default `shylock`), one document per lock:
//!
//! | attribute | meaning |
//! |---|---|
//! | `_key` | derived from the name (see [`document_key`]); unique by ArangoDB's primary index, also in sharded clusters |
//! | `name` | the lock name as given |
//! | `owner` | owner token of the holder; absent when free |
//! | `expiresAtMs` | when the lease ends, ms since the epoch by the server's `DATE_NOW()` |
//! | `expiresAt` | the same in seconds, for the TTL index that garbage-collects old documents |
//! | `fence` | fencing counter, strictly increasing per name |
//! | `sortKey` | the name's bytes in lowercase hex, so `list` pages in byte order (AQL compares strings with ICU collation) |
//!
//! Every operation is one AQL query with bind variables (never a query built
//! from strings). Acquire reads the document and, only if the lock is free,
//! expired or already ours, takes it with one `UPSERT` in the same query, so
//! waiters polling a held lock never write to it; when two callers race for
//! a free lock, the loser's unique-constraint violation (1210) or write
//! conflict (1200) means "held". Release and extend retry write conflicts. A new holder's fence is `max(fence + 1, server ms)`, so tokens keep
//! increasing even after the TTL index removed a document.
//!
//! HTTP goes through a rustls client; every operation has a timeout
//! (default 10 s) so a dead server gives an error, not a hang.
//!
//! # Examples
//!
//! ```no_run
//! # mod shylock { pub use shylock_core::*; pub mod arango { pub use shylock_arango::*; } }
//! use shylock::arango::ArangoBackend;
//! use shylock::AsyncLock;
//!
//! # #[tokio::main]
//! # async fn main() -> shylock::Result<()> {
//! let backend = ArangoBackend::builder("http://localhost:8529")
//!     .basic_auth("root", "secret")
//!     .database("myapp")
//!     .build()
//!     .await?;
//! let guard = AsyncLock::with_backend("orders/42", backend).acquire().await?;
//! guard.release().await?;
//! # Ok(())
//! # }
//! ```

mod backend;
mod builder;
mod client;
mod error;
mod fence;
mod key;
pub mod queries;
mod queue;
mod rwlock;
mod semaphore;

pub use backend::ArangoBackend;
pub use builder::{ArangoBackendBuilder, DEFAULT_REQUEST_TIMEOUT, DEFAULT_TTL_GRACE};
pub use client::HttpClient;
pub use error::{ERROR_CONFLICT, ERROR_UNIQUE_CONSTRAINT};
pub use fence::{FencedAql, FENCE_BIND_VAR};
pub use key::{document_key, rwlock_key, semaphore_key, sort_key};
