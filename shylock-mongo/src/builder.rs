//! [`MongoBackendBuilder`] and the ways to build a [`MongoBackend`].

use std::time::Duration;

use bson::{doc, Document};
use mongodb::options::{
    Acknowledgment, ClientOptions, CollectionOptions, ReadConcern, WriteConcern,
};
use mongodb::{Client, Database};
use shylock_core::{Error, Result};

use crate::backend::MongoBackend;
use crate::error::mongo_error;
use crate::index::create_ttl_index;
use crate::python::create_python_indexes;

/// Server selection timeout that [`MongoBackend::connect`] sets when the URI
/// does not set `serverSelectionTimeoutMS` (the driver's own default is 30 s).
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// How long after expiry the TTL index removes a lock document by default.
pub const DEFAULT_TTL_GRACE: Duration = Duration::from_secs(3600);

/// How long a lock write waits for a majority to acknowledge it by default
/// (`wtimeout`): without one, `w: majority` waits forever when a majority is
/// down.
pub const DEFAULT_WRITE_CONCERN_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings for a [`MongoBackend`]; every one has a working default.
#[derive(Debug, Clone)]
#[must_use = "call .build().await to get the backend"]
pub struct MongoBackendBuilder {
    database: Database,
    collection: String,
    create_indexes: bool,
    ttl_grace: Duration,
    write_concern: WriteConcern,
    read_concern: ReadConcern,
    watch_releases: bool,
    share_release_watcher: bool,
    /// The client was created here, on shylock's background runtime.
    own_client: bool,
    python_compat: bool,
}

impl MongoBackendBuilder {
    /// Whether waiters in this process learn of releases made by other
    /// processes through a change stream on the collection, so they retry at
    /// once instead of at their next backoff step. Default: `true`. One
    /// stream per collection and process (see
    /// [`share_release_watcher`](Self::share_release_watcher)), open while
    /// waiters wait and for a few seconds after (it holds one pooled
    /// connection then); where change streams are unavailable (standalone
    /// servers) waiters just poll.
    pub fn watch_releases(mut self, watch: bool) -> Self {
        self.watch_releases = watch;
        self
    }

    /// Whether this backend shares the release watcher of the other
    /// backends of this process on the same collection of the same
    /// deployment: one change stream and one set of wake-ups serve all
    /// their waiters, and a release through one wakes a waiter of another
    /// at once. Default: `true`. [`build`](Self::build) then asks the
    /// server who it is (`hello`: the replica set's name and members, or
    /// the server process's id), at most 2 s, beside creating the index;
    /// without an answer the backend watches on its own.
    ///
    /// `false`: this backend watches with a stream of its own and sees
    /// other backends' releases only through it, as a separate process
    /// would; for tests and benchmarks that stand in for processes.
    pub fn share_release_watcher(mut self, share: bool) -> Self {
        self.share_release_watcher = share;
        self
    }

    /// Collection name. Default: `shylock`.
    pub fn collection(mut self, name: impl Into<String>) -> Self {
        self.collection = name.into();
        self
    }

    /// Whether [`build`](Self::build) creates the TTL index on `expiresAt`.
    /// Default: `true`. Turn it off on platforms that restrict TTL indexes
    /// (some Cosmos DB tiers) or where indexes are managed elsewhere; locks
    /// stay correct, only old documents are not garbage-collected.
    pub fn create_indexes(mut self, create: bool) -> Self {
        self.create_indexes = create;
        self
    }

    /// How long after expiry the TTL index removes a document. Default: one
    /// hour. Changing it for an existing collection needs the old index
    /// (`shylock_expiresAt_ttl`) dropped first.
    pub fn ttl_grace(mut self, grace: Duration) -> Self {
        self.ttl_grace = grace;
        self
    }

    /// Write concern of lock writes. Default: `majority` with a `wtimeout`
    /// of [`DEFAULT_WRITE_CONCERN_TIMEOUT`] (5 s), so a lock write survives a
    /// failover and a write that cannot reach a majority fails instead of
    /// hanging. Lowering `w` lets a failover hand one lock to two owners.
    pub fn write_concern(mut self, concern: WriteConcern) -> Self {
        self.write_concern = concern;
        self
    }

    /// Read concern of `inspect` / `is_locked`. Default: `majority`.
    pub fn read_concern(mut self, concern: ReadConcern) -> Self {
        self.read_concern = concern;
        self
    }

    /// Python shylock compatibility: read and write the layout Python
    /// `shylock` 1.2 uses in the same collection (default `shylock`, as
    /// Python's), so Python and Rust services exclude each other on the
    /// same lock names. Default: `false`. See the README section "Coming
    /// from Python shylock".
    ///
    /// With it on: [`build`](Self::build) also creates Python's unique index
    /// on `name` and TTL index on `createdAt` (300 s) where no index on that
    /// key exists; every lock document carries `name` and `createdAt`
    /// (refreshed by each renewal, so a live lease is never removed by
    /// Python's TTL index); a ttl over 300 s is refused
    /// ([`Error::InvalidOptions`]); a lock a Python process holds counts as
    /// held until its document is gone or its `createdAt` + 300 s has
    /// passed by the server's clock, and `inspect` reports it with owner
    /// [`PYTHON_SHYLOCK_OWNER`](crate::PYTHON_SHYLOCK_OWNER) and fence 0.
    /// Semaphores, fair queues and read/write locks are not offered (their
    /// documents have no `name`, which Python's unique index allows once):
    /// they fail with `ErrorKind::Misconfigured`. Every Rust service on the
    /// collection must turn it on.
    ///
    /// What Python's side cannot give: its release deletes whatever
    /// document has the name (no owner check), so a Python holder that ran
    /// past 300 s frees the next holder's lock; it has no fencing token and
    /// no renewal; its `createdAt` comes from the Python host's clock.
    pub fn python_shylock_compat(mut self, on: bool) -> Self {
        self.python_compat = on;
        self
    }

    /// [`build`](Self::build) for programs without async, run on shylock's
    /// background runtime; blocks the calling thread until the backend is
    /// ready. Build the database's client with
    /// [`MongoBackend::client_blocking`] (a client must be created inside a
    /// runtime, and that one lives as long as the process).
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_blocking(self) -> Result<MongoBackend> {
        shylock_core::block_on("building the MongoDB backend", self.build())
    }

    /// Builds the backend; with `create_indexes` on (the default) it creates
    /// the TTL index, which is idempotent and safe for many processes
    /// starting at once.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the server cannot be reached or refuses the
    /// index (e.g. an index of the same name with other options exists).
    pub async fn build(self) -> Result<MongoBackend> {
        if self.create_indexes && self.ttl_grace.subsec_nanos() != 0 {
            return Err(Error::InvalidOptions {
                reason: format!(
                    "ttl_grace {:?} has a fraction of a second; TTL indexes count whole \
                     seconds, so use a whole number of seconds",
                    self.ttl_grace
                ),
            });
        }
        let collection = self.database.collection_with_options::<Document>(
            &self.collection,
            CollectionOptions::builder()
                .write_concern(self.write_concern.clone())
                .read_concern(self.read_concern.clone())
                .build(),
        );
        let namespace = format!("{}.{}", self.database.name(), self.collection);
        let identity = async {
            if self.watch_releases && self.share_release_watcher {
                deployment_identity(&self.database).await
            } else {
                None
            }
        };
        let index = async {
            if !self.create_indexes {
                return Ok(());
            }
            create_ttl_index(&collection, &namespace, self.ttl_grace).await?;
            if self.python_compat {
                create_python_indexes(&collection).await?;
            }
            Ok(())
        };
        let (identity, index) = tokio::join!(identity, index);
        index?;
        let share = identity.map(|deployment| format!("{deployment} {namespace}"));
        Ok(MongoBackend::from_parts(
            collection,
            namespace,
            self.watch_releases,
            share,
            self.own_client,
            self.python_compat,
        ))
    }
}

/// Who the server is, for sharing one release watcher per deployment and
/// collection: a replica set by its name and members, any other server by
/// its process id. `None` without a clear answer within 2 s.
async fn deployment_identity(database: &Database) -> Option<String> {
    let hello = tokio::time::timeout(
        Duration::from_secs(2),
        database.run_command(doc! { "hello": 1 }),
    )
    .await
    .ok()?
    .ok()?;
    if let Ok(set) = hello.get_str("setName") {
        let mut hosts: Vec<&str> = hello
            .get_array("hosts")
            .map(|hosts| hosts.iter().filter_map(|h| h.as_str()).collect())
            .unwrap_or_default();
        hosts.sort_unstable();
        return Some(format!("replica set {set} [{}]", hosts.join(",")));
    }
    let process = hello
        .get_document("topologyVersion")
        .ok()?
        .get_object_id("processId")
        .ok()?;
    Some(format!("server process {process}"))
}

impl MongoBackend {
    /// A builder on `database` with the defaults: collection `shylock`, TTL
    /// index created, write and read concern `majority`.
    pub fn builder(database: Database) -> MongoBackendBuilder {
        MongoBackendBuilder {
            database,
            collection: "shylock".into(),
            create_indexes: true,
            ttl_grace: DEFAULT_TTL_GRACE,
            write_concern: WriteConcern::builder()
                .w(Acknowledgment::Majority)
                .w_timeout(DEFAULT_WRITE_CONCERN_TIMEOUT)
                .build(),
            read_concern: ReadConcern::majority(),
            watch_releases: true,
            share_release_watcher: true,
            own_client: false,
            python_compat: false,
        }
    }

    /// A backend with default settings on `database` (creates the TTL
    /// index).
    ///
    /// The database's client keeps working only while the runtime that
    /// created it runs (the driver runs its monitors and connection pool
    /// there); after that runtime shuts down, operations fail with an error
    /// that says so. For a backend that outlives its runtime, use
    /// [`connect`](Self::connect) or a client from
    /// [`client_blocking`](Self::client_blocking).
    pub async fn new(database: Database) -> Result<Self> {
        Self::builder(database).build().await
    }

    /// Connects to `uri` and uses `database` with default settings. Unless
    /// the URI sets `serverSelectionTimeoutMS`, an unreachable server fails
    /// after [`DEFAULT_SERVER_SELECTION_TIMEOUT`] (5 s) instead of the
    /// driver's 30 s.
    ///
    /// The client is created on shylock's background runtime (see
    /// [`background_runtime`](shylock_core::background_runtime)), where the
    /// driver runs its monitors and connection pool: the backend works from
    /// any runtime and from threads without one, also after the runtime
    /// that called `connect` has shut down (one backend shared by several
    /// `#[tokio::test]`s, say).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] for an invalid URI or an unreachable server.
    pub async fn connect(uri: &str, database: &str) -> Result<Self> {
        let client = client_on_background_runtime(uri).await?;
        let mut builder = Self::builder(client.database(database));
        builder.own_client = true;
        builder.build().await
    }

    /// [`connect`](Self::connect) for programs without async: the client is
    /// created on shylock's background runtime (see
    /// [`background_runtime`](shylock_core::background_runtime)), so it
    /// outlives the caller's scope and needs no runtime of the caller's.
    /// Blocks the calling thread until the backend is ready.
    ///
    /// ```no_run
    /// # mod shylock { pub use shylock_core::*; pub mod mongo { pub use shylock_mongo::*; } }
    /// use shylock::mongo::MongoBackend;
    ///
    /// # fn main() -> shylock::Result<()> {
    /// let backend = MongoBackend::connect_blocking("mongodb://localhost:27017", "app")?;
    /// let guard = shylock::Lock::with_backend("nightly-job", backend).acquire()?;
    /// guard.release()?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub fn connect_blocking(uri: &str, database: &str) -> Result<Self> {
        let (uri, database) = (uri.to_owned(), database.to_owned());
        shylock_core::block_on("connecting to MongoDB", async move {
            Self::connect(&uri, &database).await
        })
    }

    /// A client for `uri` created on shylock's background runtime, for
    /// programs without async that want [`builder`](Self::builder)'s
    /// settings: pass `client.database(..)` to `builder`, then call
    /// [`MongoBackendBuilder::build_blocking`]. Sets a 5 s server selection
    /// timeout unless the URI sets one, as [`connect`](Self::connect) does.
    ///
    /// ```no_run
    /// # mod shylock { pub use shylock_core::*; pub mod mongo { pub use shylock_mongo::*; } }
    /// use shylock::mongo::MongoBackend;
    ///
    /// # fn main() -> shylock::Result<()> {
    /// let client = MongoBackend::client_blocking("mongodb://localhost:27017")?;
    /// let backend = MongoBackend::builder(client.database("app"))
    ///     .collection("locks")
    ///     .build_blocking()?;
    /// # let _ = backend;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] for an invalid URI.
    pub fn client_blocking(uri: &str) -> Result<Client> {
        let uri = uri.to_owned();
        shylock_core::block_on("creating the MongoDB client", async move {
            client_for(&uri).await
        })
    }
}

/// [`client_for`] run on shylock's background runtime: the driver's
/// monitors and connection pool run where the client was created and stop
/// with that runtime, so a client created there serves every runtime of
/// the process, and threads with none, for as long as the process lives
/// (what the driver's own blocking API does with its global runtime).
async fn client_on_background_runtime(uri: &str) -> Result<Client> {
    let uri = uri.to_owned();
    shylock_core::background_runtime()?
        .spawn(async move { client_for(&uri).await })
        .await
        .map_err(|_| Error::Panicked {
            operation: "creating the MongoDB client",
        })?
}

/// A client for `uri`, with a 5 s server selection timeout unless the URI
/// sets one. Must run inside a runtime (the driver starts its monitors on
/// it).
async fn client_for(uri: &str) -> Result<Client> {
    let mut options = ClientOptions::parse(uri).await.map_err(|e| {
        mongo_error(
            "parsing the connection string (expected mongodb://host:port/...)",
            e,
        )
    })?;
    if options.server_selection_timeout.is_none() {
        options.server_selection_timeout = Some(DEFAULT_SERVER_SELECTION_TIMEOUT);
    }
    Client::with_options(options).map_err(|e| mongo_error("creating the MongoDB client", e))
}
