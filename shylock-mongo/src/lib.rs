//! MongoDB backend for [shylock](https://crates.io/crates/shylock) locks.
//!
//! One collection (default `shylock`), one document per lock:
//!
//! | field | meaning |
//! |---|---|
//! | `_id` | the lock name (MongoDB's own unique index keeps it unique); for names over 1024 bytes, the SHA-256 of the name as binary data ([`document_id`]) |
//! | `name` | the full lock name, only in documents with a digest `_id` |
//! | `owner` | owner token of the holder; absent when free |
//! | `expiresAt` | when the lease ends, by the **server's** clock (`$$NOW`) |
//! | `fence` | fencing counter (int64), strictly increasing per name |
//!
//! Every operation is one round trip. `acquire` is a single
//! `findOneAndUpdate` with upsert and an update pipeline that takes the lock
//! only if it is free, expired or already ours; a duplicate-key error (11000)
//! from two first-time creators racing means "held". Release only clears
//! the owner, so the fence survives; a TTL index on `expiresAt` removes
//! documents a grace period (default one hour) after they expired, and a
//! re-created document starts its fence at the server time in ms, above any
//! earlier token. Correctness never waits for MongoDB's TTL monitor.
//!
//! Writes use write concern `majority` and `inspect` reads use read concern
//! `majority` by default, so a replica-set failover cannot hand one lock to
//! two owners. Acquire is idempotent for its owner token, so the driver's
//! retryable-write retry cannot turn a win into "held by someone else".
//!
//! # Examples
//!
//! ```no_run
//! # mod shylock { pub use shylock_core::*; pub mod mongo { pub use shylock_mongo::*; } }
//! use shylock::AsyncLock;
//! use shylock::mongo::MongoBackend;
//!
//! # #[tokio::main]
//! # async fn main() -> shylock::Result<()> {
//! let backend = MongoBackend::connect("mongodb://localhost:27017", "myapp").await?;
//! let guard = AsyncLock::with_backend("orders/42", backend).acquire().await?;
//! guard.release().await?;
//! # Ok(())
//! # }
//! ```

mod backend;
mod bounded;
mod builder;
mod documents;
mod error;
mod fence;
mod index;
mod key;
mod python;
pub mod queries;
mod queue;
mod runtime_watch;
mod rwlock;
mod semaphore;
mod wake;
mod watcher;

pub use backend::MongoBackend;
pub use builder::{
    MongoBackendBuilder, DEFAULT_SERVER_SELECTION_TIMEOUT, DEFAULT_TTL_GRACE,
    DEFAULT_WRITE_CONCERN_TIMEOUT,
};
pub use fence::{
    fenced_update, fenced_update_on, update_one_fenced, FencedUpdate, DEFAULT_FENCE_FIELD,
};
pub use key::{document_id, MAX_PLAIN_ID};
pub use python::{PYTHON_SHYLOCK_OWNER, PYTHON_SHYLOCK_TTL};
pub use queries::acquire_pipeline;
pub use semaphore::claim_permit_pipeline;

pub use mongodb;
