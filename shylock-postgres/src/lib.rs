//! PostgreSQL backend for [shylock](https://crates.io/crates/shylock)
//! locks, on [sqlx](https://crates.io/crates/sqlx)'s `PgPool`.
//!
//! # Storage
//!
//! One row per lock in one table (default `public.shylock_locks`):
//!
//! | column | meaning |
//! |---|---|
//! | `key bytea PRIMARY KEY` | the lock name's bytes; for names over 1024 bytes, `0xFF` and the name's SHA-256 ([`key_of`]) |
//! | `name bytea` | the full name, only in rows with a digest key |
//! | `owner text` | owner token of the holder |
//! | `expires_at timestamptz` | when the lease ends, by the **server's** clock |
//! | `fence int8` | the holder's fencing token |
//! | `released_by text` | a token of the release call that last freed it |
//!
//! Semaphores keep one row per semaphore in `<table>_semaphores` (its
//! permit count and its holders as arrays), fair queues one row per line
//! in `<table>_tickets` (its waiters as arrays), and read/write locks one
//! row per name in `<table>_rwlocks` (its readers and writer as arrays,
//! and the intent of the one writer that waits).
//!
//! # One statement per operation, judged by the server's clock
//!
//! Every operation is one statement in one round trip, so one implicit
//! transaction: acquire is `UPDATE … WHERE key = $1 AND <free, expired or
//! ours>`, and when no row was taken `INSERT … ON CONFLICT (key) DO
//! NOTHING`, in one statement that returns the fence and expiry. A claim
//! that loses therefore takes no row lock and writes nothing (no WAL, no
//! commit flush): the waiters a release wakes in many processes do not
//! queue behind each other or delay the holder's next release, as they
//! would with `INSERT … ON CONFLICT DO UPDATE … WHERE`, which locks the row
//! before it evaluates the condition. A claim that finds the row changed by
//! a concurrent statement waits for it and decides on the newest version
//! (READ COMMITTED). Extend, release,
//! inspect, list and force-release are one `UPDATE`, `DELETE` or `SELECT`
//! each. Time is `clock_timestamp()`, the server's clock when the statement
//! evaluates it: `now()` is the start of the transaction, which for a
//! statement that waited on another's row lock is in the past, so it would
//! judge expiry late and start leases early. No client clock is read.
//!
//! # Fencing tokens
//!
//! Tokens come from one sequence, `<table>_fence` (`CACHE 1`, never
//! reset): when a lock or permit changes hands, `nextval` is called by the
//! statement that takes the row, and called again if another statement
//! changed that row first (PostgreSQL then evaluates the update anew on the
//! newest version), so a new holder's token is greater than every token
//! handed out before it. One sequence rather than a per-name counter
//! keeps tokens increasing also after a row is removed (rows are swept,
//! see below): a re-created row starts above every earlier token. Tokens of
//! one name increase but are not consecutive. Release and force-release
//! only clear the owner; the row keeps its fence.
//!
//! # Growth of the tables
//!
//! PostgreSQL has no TTL index. Every release also deletes up to 4 rows
//! (of any name, oldest first, skipping rows other statements hold) whose
//! lease ended more than 5 minutes ago ((`SWEEP_GRACE`): a
//! claim that creates a row draws its fence before it knows it will
//! insert, and the grace keeps such a claim from re-creating a row with
//! an older fence), through an index on `expires_at`. The tables hold the
//! live leases, the ones that ended in the last 5 minutes, and what the
//! releases have not swept yet: each release adds at most one ended row and
//! sweeps up to 4, so the backlog shrinks as long as locks are released.
//!
//! # Poolers and prepared statements
//!
//! Nothing depends on session state: no advisory locks, no session
//! variables, no temporary tables; each operation is its own transaction.
//! By default ([`StatementMode::Prepared`]) sqlx prepares each statement
//! once per connection and caches it, which needs the connection's session:
//! fine directly, behind PgBouncer in session mode, or in transaction mode
//! from PgBouncer 1.21 on with `max_prepared_statements` set. Behind other
//! transaction poolers use [`StatementMode::Unprepared`]: values are
//! written into the statement as hex literals and sent with the simple
//! protocol, still one round trip. sqlx sends the startup parameter
//! `extra_float_digits`, so PgBouncer needs
//! `ignore_startup_parameters = extra_float_digits`.
//!
//! `LISTEN` needs a session. Behind a transaction pooler it would stay on a
//! server connection that the pooler then hands to other clients, and sqlx
//! fails their statements on the notifications (seen with PgBouncer 1.18):
//! with [`StatementMode::Unprepared`] the backend therefore listens only on
//! a [`PostgresBackendBuilder::listen_pool`] (a direct connection), and
//! without one its waiters poll with backoff. A listener that works counts
//! only once its own probe notification came back; when a later probe goes
//! missing it stops, and waiters poll.
//!
//! # Wake-ups
//!
//! Release and force-release call `pg_notify` in the same statement. One
//! `LISTEN` connection per process, database and channel (opened while
//! anyone waits, closed 5 s after the last waiter) wakes that process's
//! waiters: one waiter per released lock, or the fair waiter first in line;
//! every reader of a read/write lock whose writer left or stopped waiting,
//! and one writer when it became free.
//! While it works, waiters poll only every 1.5–3 s, for leases that ended
//! without a release (a crashed holder).
//!
//! # Closed connections
//!
//! A pooled connection may turn out closed when used (a server restart, a
//! pooler or firewall dropping idle connections). A statement that fails
//! that way is sent once more on another connection when sending it twice
//! answers the same: claims, extends and enqueues by the same owner keep
//! what they got, a fair claim that finds the lock already its own wins
//! again, and a release carries a token of its call (`released_by`), so the
//! same call answers the same while a second call answers `false`.
//! Force-release, leaving a line, releasing a permit and releasing a
//! read/write lease are sent once.
//!
//! # Timeouts
//!
//! Each operation is bounded by its deadline on the client. The server
//! keeps running a statement the client gave up on until it ends: set
//! `statement_timeout` for the role (`ALTER ROLE … SET statement_timeout`)
//! to bound that too.
//!
//! # Examples
//!
//! ```no_run
//! # mod shylock { pub use shylock_core::*; pub mod postgres { pub use shylock_postgres::*; } }
//! use shylock::AsyncLock;
//! use shylock::postgres::PostgresBackend;
//!
//! # #[tokio::main]
//! # async fn main() -> shylock::Result<()> {
//! let backend = PostgresBackend::connect("postgres://app:secret@localhost/app").await?;
//! let guard = AsyncLock::with_backend("orders/42", backend).acquire().await?;
//! guard.release().await?;
//! # Ok(())
//! # }
//! ```

mod backend;
mod builder;
mod conn;
mod fence;
mod listen;
mod queue;
mod rwlock;
mod semaphore;
// The statements are this crate's own; only the benchmark program
// (feature `bench`) sends them directly.
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod statements;
#[cfg(not(feature = "bench"))]
#[allow(unreachable_pub)]
mod statements;

pub use backend::PostgresBackend;
pub use builder::{
    PostgresBackendBuilder, DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_CHANNEL, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_SCHEMA, DEFAULT_TABLE,
};
#[cfg(feature = "bench")]
pub use conn::statements_executed;
pub use conn::{key_of, StatementMode, MAX_PLAIN_KEY};
pub use fence::FencedSql;

pub use sqlx;
