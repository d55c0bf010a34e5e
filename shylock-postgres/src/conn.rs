//! What every clone of a backend shares, sending one statement, lock keys
//! and what errors mean. A leaf: it uses nothing of this crate but the
//! statements, so the backend, its capabilities and the listener can all
//! use it.

use std::fmt::Write as _;
use std::time::Duration;

use shylock_core::backend::Deadline;
use shylock_core::{Error, ErrorKind, Result};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::Row;

use crate::statements::Statements;

pub(crate) const BACKEND: &str = "postgres";

/// Longest name, in bytes, kept as its own key. A B-tree entry of
/// PostgreSQL holds at most about 2.7 kB, so longer names are keyed by a
/// digest and kept whole in the `name` column.
pub const MAX_PLAIN_KEY: usize = 1024;

/// How statements reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StatementMode {
    /// Named prepared statements, parsed once per connection and cached by
    /// sqlx (the default): one round trip per operation after a
    /// connection's first use of each statement. Needs the session a
    /// connection was prepared on: a direct connection, PgBouncer in
    /// session mode, or PgBouncer 1.21+ in transaction mode with
    /// `max_prepared_statements` set.
    #[default]
    Prepared,
    /// The simple query protocol with every value written into the
    /// statement as a typed hex literal (no quoting of user data, so no
    /// injection): one round trip per operation, nothing kept on the
    /// connection, so it works behind any transaction pooler. The server
    /// parses and plans each statement again.
    Unprepared,
}

/// A bound value.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Bytes(Vec<u8>),
    OptBytes(Option<Vec<u8>>),
    Text(String),
    Int(i64),
}

/// What the clones of one `PostgresBackend` share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) pool: PgPool,
    pub(crate) sql: Statements,
    pub(crate) mode: StatementMode,
    /// Where the tables live, for messages: `schema.table`.
    pub(crate) location: String,
}

/// The key of the lock, semaphore or read/write lock `name` (each kind in
/// a table of its own): the name's bytes when at most
/// [`MAX_PLAIN_KEY`] long, otherwise `0xFF` and the SHA-256 digest of the
/// name. No UTF-8 string contains the byte `0xFF`, so a digest key never
/// equals a name's key, and keys of plain names sort like the names.
///
/// # Examples
///
/// ```
/// # mod shylock { pub use shylock_core::*; pub mod postgres { pub use shylock_postgres::*; } }
/// use shylock::postgres::key_of;
///
/// assert_eq!(key_of("orders/42"), b"orders/42".to_vec());
/// assert_eq!(key_of(&"x".repeat(2000))[0], 0xFF);
/// ```
pub fn key_of(name: &str) -> Vec<u8> {
    if name.len() <= MAX_PLAIN_KEY {
        return name.as_bytes().to_vec();
    }
    use sha2::Digest;
    let mut key = vec![0xFF];
    key.extend_from_slice(&sha2::Sha256::digest(name.as_bytes()));
    key
}

/// The full name to store beside a digest key, or `None` for a plain key.
pub(crate) fn long_name(name: &str) -> Option<Vec<u8>> {
    (name.len() > MAX_PLAIN_KEY).then(|| name.as_bytes().to_vec())
}

/// A key as the notification payload spells it (lowercase hex), which is
/// also how this crate's signals are keyed.
pub(crate) fn hex(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len() * 2);
    for byte in key {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The signal key of lock, semaphore or read/write lock `name`.
pub(crate) fn signal_key(name: &str) -> String {
    hex(&key_of(name))
}

/// `sql` with every `$n` replaced by `args[n - 1]` as a typed literal.
fn inline(sql: &str, args: &[Arg]) -> String {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        let number: Option<usize> = rest[at + 1..at + 1 + digits].parse().ok();
        match number.and_then(|n| args.get(n.wrapping_sub(1))) {
            Some(arg) => push_literal(&mut out, arg),
            None => out.push_str(&rest[at..at + 1 + digits]),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    out
}

fn push_literal(out: &mut String, arg: &Arg) {
    let bytes = |out: &mut String, b: &[u8]| {
        out.push_str("'\\x");
        out.push_str(&hex(b));
        out.push_str("'::bytea");
    };
    match arg {
        Arg::Bytes(b) | Arg::OptBytes(Some(b)) => bytes(out, b),
        Arg::OptBytes(None) => out.push_str("NULL::bytea"),
        Arg::Text(t) => {
            out.push_str("convert_from(");
            bytes(out, t.as_bytes());
            out.push_str(", 'UTF8')");
        }
        Arg::Int(i) => {
            let _ = write!(out, "({i})::int8");
        }
    }
}

impl Inner {
    /// Sends one statement and reads all its rows, within `deadline`.
    ///
    /// With `again`, a statement that failed because its pooled connection
    /// turned out to be closed (a server restart, a pooler or firewall
    /// dropping idle connections) is sent once more on another connection:
    /// for statements that answer the same when sent twice (claims,
    /// extends and enqueues by the same owner keep what they got; a
    /// release carries a token of its call). Force-release, leaving a
    /// line, releasing a permit and releasing a read/write lease are sent
    /// once.
    pub(crate) async fn run(
        &self,
        what: &'static str,
        sql: &str,
        args: Vec<Arg>,
        deadline: Deadline,
    ) -> Result<Vec<PgRow>> {
        self.run_again(what, sql, args, deadline, true).await
    }

    /// [`run`](Self::run), sending again only with `again`.
    pub(crate) async fn run_again(
        &self,
        what: &'static str,
        sql: &str,
        args: Vec<Arg>,
        deadline: Deadline,
        again: bool,
    ) -> Result<Vec<PgRow>> {
        match self.run_once(what, sql, args.clone(), deadline).await {
            Err((e, true)) if again && !deadline.has_passed() => {
                tracing::debug!(error = %e, "{what}: connection closed, sending once more");
                self.run_once(what, sql, args, deadline)
                    .await
                    .map_err(|(e, _)| e)
            }
            other => other.map_err(|(e, _)| e),
        }
    }

    /// One sending; on error, whether the connection was found closed.
    async fn run_once(
        &self,
        what: &'static str,
        sql: &str,
        args: Vec<Arg>,
        deadline: Deadline,
    ) -> std::result::Result<Vec<PgRow>, (Error, bool)> {
        let budget = deadline.remaining();
        #[cfg(feature = "bench")]
        STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let work = async {
            match self.mode {
                StatementMode::Prepared => {
                    let mut query = sqlx::query(sql);
                    for arg in args {
                        query = match arg {
                            Arg::Bytes(b) => query.bind(b),
                            Arg::OptBytes(b) => query.bind(b),
                            Arg::Text(t) => query.bind(t),
                            Arg::Int(i) => query.bind(i),
                        };
                    }
                    query.fetch_all(&self.pool).await
                }
                StatementMode::Unprepared => {
                    let text = inline(sql, &args);
                    sqlx::raw_sql(&text).fetch_all(&self.pool).await
                }
            }
        };
        match tokio::time::timeout(budget, work).await {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => {
                let closed = matches!(&e, sqlx::Error::Io(io) if matches!(
                    io.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                ));
                Err((self.fail(what, e), closed))
            }
            Err(_) => Err((
                Error::backend_msg(
                    BACKEND,
                    ErrorKind::TimedOut,
                    format!(
                        "{what} on {} took longer than its {budget:?} deadline; the server may \
                     be overloaded or unreachable (raise operation_timeout, or set \
                     statement_timeout so the server stops such statements too)",
                        self.location
                    ),
                ),
                false,
            )),
        }
    }

    /// Sends one statement and reads its first row, if any.
    pub(crate) async fn one(
        &self,
        what: &'static str,
        sql: &str,
        args: Vec<Arg>,
        deadline: Deadline,
    ) -> Result<Option<PgRow>> {
        Ok(self
            .run(what, sql, args, deadline)
            .await?
            .into_iter()
            .next())
    }

    /// A driver error as a shylock error, with what to do next.
    pub(crate) fn fail(&self, what: &str, error: sqlx::Error) -> Error {
        let (kind, hint) = kind_of(&error);
        Error::backend(
            BACKEND,
            kind,
            format!("{what} failed on {}{hint}", self.location),
            error,
        )
    }
}

/// The kind of a driver error, and a hint for the message.
pub(crate) fn kind_of(error: &sqlx::Error) -> (ErrorKind, &'static str) {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            (ErrorKind::Unavailable, "; the server could not be reached")
        }
        sqlx::Error::PoolTimedOut => (
            ErrorKind::Unavailable,
            "; no pooled connection became free in time (raise the pool's max_connections or \
             acquire_timeout)",
        ),
        sqlx::Error::Tls(_) => (
            ErrorKind::Misconfigured,
            "; check the TLS settings of the URL (sslmode) and that sqlx has a TLS feature on",
        ),
        sqlx::Error::Configuration(_) => (ErrorKind::Misconfigured, "; check the connection URL"),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => (
            ErrorKind::CorruptRecord,
            "; a row has a shape this backend does not write: was the table written by \
             another program?",
        ),
        sqlx::Error::Database(db) => match db.code().as_deref().unwrap_or("") {
            // connection exceptions, admin shutdown, crash shutdown,
            // cannot connect now, too many connections, serialization
            // and deadlock (retry), query canceled (statement_timeout).
            c if c.starts_with("08") => (ErrorKind::Unavailable, "; the connection failed"),
            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01" => (
                ErrorKind::Unavailable,
                "; the server is shutting down, starting or busy",
            ),
            "57014" => (
                ErrorKind::TimedOut,
                "; the statement was canceled (statement_timeout)",
            ),
            "28000" | "28P01" => (
                ErrorKind::Unauthenticated,
                "; check the user name and password in the URL",
            ),
            "42P01" | "3F000" => (
                ErrorKind::Misconfigured,
                "; the lock tables are missing: build the backend with create_tables(true), \
                 or create them with PostgresBackend::schema_sql()",
            ),
            "42501" => (
                ErrorKind::Misconfigured,
                "; permission denied: grant the role SELECT, INSERT, UPDATE, DELETE on the lock \
                 tables and USAGE on their sequence",
            ),
            "26000" => (
                ErrorKind::Misconfigured,
                "; a prepared statement vanished: behind a transaction pooler use \
                 StatementMode::Unprepared (or PgBouncer 1.21+ with max_prepared_statements)",
            ),
            "22021" => (
                ErrorKind::Other,
                "; an owner token or identity is not valid text for PostgreSQL (NUL bytes \
                 are not allowed)",
            ),
            _ => (ErrorKind::Other, ""),
        },
        _ => (ErrorKind::Other, ""),
    }
}

#[cfg(feature = "bench")]
static STATEMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Statements sent so far by all `PostgresBackend`s of this process
/// (feature `bench`), each one round trip.
#[cfg(feature = "bench")]
pub fn statements_executed() -> u64 {
    STATEMENTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// A random number (no extra dependency: the standard library's randomly
/// seeded hasher).
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
}

/// Column `i` of `row` as an `i64`.
pub(crate) fn int(row: &PgRow, i: usize) -> std::result::Result<i64, sqlx::Error> {
    row.try_get::<i64, _>(i)
}

/// A stored fence as a fencing token.
pub(crate) fn fence_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Rounds a ttl to the milliseconds the statements take, never shorter.
pub(crate) fn ttl_ms(ttl: Duration) -> i64 {
    shylock_core::backend::duration_to_millis(ttl).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_inlined_as_typed_hex_literals() {
        let sql = "SELECT $1, $2, $10, $3, $4, '$'";
        let mut args = vec![
            Arg::Bytes(b"a'b".to_vec()),
            Arg::Text("x\\'".into()),
            Arg::Int(-5),
            Arg::OptBytes(None),
        ];
        args.extend((0..6).map(Arg::Int));
        assert_eq!(
            inline(sql, &args),
            "SELECT '\\x612762'::bytea, convert_from('\\x785c27'::bytea, 'UTF8'), (5)::int8, \
             (-5)::int8, NULL::bytea, '$'"
        );
    }

    #[test]
    fn long_names_get_digest_keys() {
        let long = "y".repeat(MAX_PLAIN_KEY + 1);
        assert_eq!(key_of(&long).len(), 33);
        assert_eq!(long_name(&long).as_deref(), Some(long.as_bytes()));
        assert_eq!(long_name("short"), None);
        assert_eq!(hex(&[0, 0xab]), "00ab");
    }
}
