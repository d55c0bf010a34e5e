//! [`PostgresBackendBuilder`] and the ways to make a [`PostgresBackend`].

use std::time::Duration;

use shylock_core::{Error, ErrorKind, Result};
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::backend::PostgresBackend;
use crate::conn::{kind_of, StatementMode, BACKEND};
use crate::statements::Statements;

/// Schema of the lock tables unless [`PostgresBackendBuilder::schema`] says
/// otherwise.
pub const DEFAULT_SCHEMA: &str = "public";
/// Name of the lock table (the others add `_semaphores`, `_tickets`,
/// `_rwlocks` and `_fence`) unless [`PostgresBackendBuilder::table`] says
/// otherwise.
pub const DEFAULT_TABLE: &str = "shylock_locks";
/// Channel of the release notifications unless
/// [`PostgresBackendBuilder::channel`] says otherwise.
pub const DEFAULT_CHANNEL: &str = "shylock_released";
/// Connections of the pool [`PostgresBackend::connect`] opens.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// How long [`PostgresBackend::connect`]'s pool waits for a connection.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest table name: PostgreSQL keeps 63 bytes of an identifier, and the
/// longest derived name adds `_semaphores_expires_at` (22 bytes).
const MAX_TABLE: usize = 63 - 22;

/// Settings of a [`PostgresBackend`]; every one has a default that works.
///
/// # Examples
///
/// ```no_run
/// # mod shylock { pub use shylock_core::*; pub mod postgres { pub use shylock_postgres::*; } }
/// use shylock::postgres::{PostgresBackend, StatementMode};
///
/// # #[tokio::main]
/// # async fn main() -> shylock::Result<()> {
/// # let pool = PostgresBackend::pool_for("postgres://app@db/app").await?;
/// let backend = PostgresBackend::builder(pool)
///     .schema("ops")
///     .table("app_locks")
///     .statement_mode(StatementMode::Unprepared) // behind PgBouncer (transaction mode)
///     .build()
///     .await?;
/// # let _ = backend;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct PostgresBackendBuilder {
    pool: PgPool,
    schema: String,
    table: String,
    create_tables: bool,
    channel: String,
    listen: bool,
    share_listener: bool,
    listen_pool: Option<PgPool>,
    mode: StatementMode,
}

impl PostgresBackendBuilder {
    /// Schema of the lock tables. Default: [`DEFAULT_SCHEMA`] (`public`);
    /// with [`create_tables`](Self::create_tables) on, it is created if
    /// missing.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Name of the lock table; the semaphore, queue and read/write lock
    /// tables and the fence sequence are named after it
    /// (`<table>_semaphores`, `<table>_tickets`, `<table>_rwlocks`,
    /// `<table>_fence`). Default: [`DEFAULT_TABLE`]
    /// (`shylock_locks`). At most 41 bytes.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Whether [`build`](Self::build) creates the schema, tables, indexes
    /// and sequence if missing (`CREATE … IF NOT EXISTS`, one transaction,
    /// safe for many processes starting at once). Default: `true`. Turn it
    /// off where the application's role may not create tables, and create
    /// them with the SQL of [`schema_sql`](Self::schema_sql) instead.
    pub fn create_tables(mut self, create: bool) -> Self {
        self.create_tables = create;
        self
    }

    /// Channel of the release notifications (`pg_notify` / `LISTEN`): a
    /// plain identifier (letters, digits, `_`; at most 63 bytes). Default:
    /// [`DEFAULT_CHANNEL`] (`shylock_released`). Backends on different
    /// tables of one database may share it.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// Whether waiters are woken by a `LISTEN` connection (one per process
    /// and database, opened while anyone waits). Default: `true`. Without
    /// it, or when it does not work, waiters poll with backoff.
    ///
    /// With [`StatementMode::Unprepared`] (a transaction pooler) the
    /// statements' pool is never used for `LISTEN`, only a
    /// [`listen_pool`](Self::listen_pool): a `LISTEN` sent through the
    /// pooler would stay on a server connection the pooler then hands to
    /// other clients, and sqlx fails their statements on notifications they
    /// did not ask for. Behind PgBouncer 1.21+ with prepared statements,
    /// turn listening off or give a `listen_pool` for the same reason.
    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    /// Whether this backend shares the `LISTEN` connection of other
    /// backends of this process on the same database, user and channel.
    /// Default: `true` (one connection per process). `false` gives it one
    /// of its own, as another process would have: for tests.
    pub fn share_release_listener(mut self, share: bool) -> Self {
        self.share_listener = share;
        self
    }

    /// A pool for the `LISTEN` connection other than the statements' pool:
    /// a direct connection to the server (or through PgBouncer in session
    /// mode) when statements go through a transaction pooler, where
    /// `LISTEN` cannot work. Default: the statements' pool.
    pub fn listen_pool(mut self, pool: PgPool) -> Self {
        self.listen_pool = Some(pool);
        self
    }

    /// How statements are sent. Default: [`StatementMode::Prepared`]; use
    /// [`StatementMode::Unprepared`] behind a transaction pooler that does
    /// not keep prepared statements (PgBouncer before 1.21, or without
    /// `max_prepared_statements`).
    pub fn statement_mode(mut self, mode: StatementMode) -> Self {
        self.mode = mode;
        self
    }

    /// The SQL that creates what this backend needs (what
    /// [`build`](Self::build) runs with `create_tables(true)`), for
    /// operators who create tables themselves.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOptions`] for an unusable schema, table or channel
    /// name.
    pub fn schema_sql(&self) -> Result<String> {
        Ok(self.statements()?.schema)
    }

    fn statements(&self) -> Result<Statements> {
        let invalid = |reason: String| Err(Error::InvalidOptions { reason });
        if self.schema.is_empty() || self.schema.len() > 63 || self.schema.contains('\0') {
            return invalid(format!(
                "schema {:?} is not a usable PostgreSQL name: give 1 to 63 bytes without NUL, \
                 e.g. \"public\"",
                self.schema
            ));
        }
        if self.table.is_empty() || self.table.len() > MAX_TABLE || self.table.contains('\0') {
            return invalid(format!(
                "table {:?} is not a usable name: give 1 to {MAX_TABLE} bytes without NUL (the \
                 other tables add suffixes of up to 22 bytes), e.g. \"shylock_locks\"",
                self.table
            ));
        }
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '_';
        if self.channel.is_empty()
            || self.channel.len() > 63
            || !self.channel.chars().all(plain)
            || self.channel.starts_with(|c: char| c.is_ascii_digit())
        {
            return invalid(format!(
                "channel {:?} is not a plain identifier: use 1 to 63 letters, digits and \
                 underscores, not starting with a digit, e.g. \"shylock_released\"",
                self.channel
            ));
        }
        Ok(Statements::new(&self.schema, &self.table, &self.channel))
    }

    /// [`build`](Self::build) for programs without async, run on shylock's
    /// background runtime; blocks the calling thread until the backend is
    /// ready. The pool must have been created on a runtime that outlives
    /// the backend (such as the one [`PostgresBackend::connect_blocking`]
    /// uses).
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_blocking(self) -> Result<PostgresBackend> {
        shylock_core::block_on("building the PostgreSQL backend", self.build())
    }

    /// Builds the backend; with `create_tables` on (the default) it creates
    /// the tables if missing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOptions`] for an unusable schema, table or channel
    /// name; [`Error::Backend`] when the server cannot be reached or
    /// refuses to create the tables (the message says what to grant).
    pub async fn build(self) -> Result<PostgresBackend> {
        let sql = self.statements()?;
        let location = format!("{}.{}", self.schema, self.table);
        if self.create_tables {
            sqlx::raw_sql(&sql.schema)
                .execute(&self.pool)
                .await
                .map_err(|e| {
                    let (kind, hint) = kind_of(&e);
                    Error::backend(
                        BACKEND,
                        kind,
                        format!(
                            "could not create the lock tables {location}{hint}; the role \
                             needs CREATE on the schema, or create them beforehand with the \
                             SQL of PostgresBackendBuilder::schema_sql and build with \
                             create_tables(false)"
                        ),
                        e,
                    )
                })?;
        }
        // Unprepared means a transaction pooler: `LISTEN` through it would
        // stay on a server connection the pooler then hands to other
        // clients, whose drivers fail on the notifications they did not ask
        // for. There, only a pool given for listening is used.
        let listen =
            self.listen && (self.mode == StatementMode::Prepared || self.listen_pool.is_some());
        Ok(PostgresBackend::from_parts(
            self.pool,
            sql,
            self.mode,
            location,
            (listen, self.share_listener),
            self.listen_pool,
        ))
    }
}

impl PostgresBackend {
    /// A builder on the application's own pool, with every setting at its
    /// default.
    ///
    /// sqlx pings a pooled connection before handing it out unless the
    /// pool was built with `test_before_acquire(false)`: that ping is a
    /// round trip of its own before every operation.
    pub fn builder(pool: PgPool) -> PostgresBackendBuilder {
        PostgresBackendBuilder {
            pool,
            schema: DEFAULT_SCHEMA.to_owned(),
            table: DEFAULT_TABLE.to_owned(),
            create_tables: true,
            channel: DEFAULT_CHANNEL.to_owned(),
            listen: true,
            share_listener: true,
            listen_pool: None,
            mode: StatementMode::default(),
        }
    }

    /// A backend on the application's own pool with the default settings
    /// (creates the tables if missing).
    ///
    /// # Errors
    ///
    /// As [`PostgresBackendBuilder::build`].
    pub async fn new(pool: PgPool) -> Result<Self> {
        Self::builder(pool).build().await
    }

    /// Connects to `url` (`postgres://user:password@host:port/database`)
    /// with a pool of its own ([`DEFAULT_MAX_CONNECTIONS`] connections, no
    /// ping before each use) and the default settings.
    ///
    /// The pool is created on shylock's background runtime (see
    /// [`background_runtime`](shylock_core::background_runtime)), so the
    /// backend works from any runtime and from none, also after the runtime
    /// that called `connect` has shut down.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] for an invalid URL or an unreachable server.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = Self::pool_for(url).await?;
        Self::new(pool).await
    }

    /// [`connect`](Self::connect) for programs without async; blocks the
    /// calling thread until the backend is ready.
    ///
    /// ```no_run
    /// # mod shylock { pub use shylock_core::*; pub mod postgres { pub use shylock_postgres::*; } }
    /// use shylock::postgres::PostgresBackend;
    ///
    /// # fn main() -> shylock::Result<()> {
    /// let backend = PostgresBackend::connect_blocking("postgres://app@localhost/app")?;
    /// let guard = shylock::Lock::with_backend("nightly-job", backend).acquire()?;
    /// guard.release()?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub fn connect_blocking(url: &str) -> Result<Self> {
        let url = url.to_owned();
        shylock_core::block_on("connecting to PostgreSQL", async move {
            Self::connect(&url).await
        })
    }

    /// The pool [`connect`](Self::connect) uses, created on shylock's
    /// background runtime: for [`builder`](Self::builder) settings on a
    /// backend that owns its pool.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] for an invalid URL or an unreachable server.
    pub async fn pool_for(url: &str) -> Result<PgPool> {
        let url = url.to_owned();
        let runtime = shylock_core::background_runtime()?;
        let task = runtime.spawn(async move {
            PgPoolOptions::new()
                .max_connections(DEFAULT_MAX_CONNECTIONS)
                .acquire_timeout(DEFAULT_ACQUIRE_TIMEOUT)
                .test_before_acquire(false)
                .connect(&url)
                .await
        });
        match task.await {
            Ok(Ok(pool)) => Ok(pool),
            Ok(Err(e)) => {
                let (kind, hint) = kind_of(&e);
                Err(Error::backend(
                    BACKEND,
                    kind,
                    format!(
                        "could not connect to PostgreSQL{hint}; check the URL \
                         (postgres://user:password@host:port/database) and that the server \
                         is up"
                    ),
                    e,
                ))
            }
            Err(join) => Err(Error::backend(
                BACKEND,
                ErrorKind::Other,
                "connecting to PostgreSQL did not complete (the task was cancelled)",
                join,
            )),
        }
    }
}
