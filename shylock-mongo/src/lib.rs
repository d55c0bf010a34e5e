//! MongoDB backend for [shylock](https://crates.io/crates/shylock) locks.
//!
//! One collection (default `shylock`), one document per lock:
//!
//! | field | meaning |
//! |---|---|
//! | `_id` | the lock name (MongoDB's own unique index keeps it unique) |
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
//! use shylock_core::AsyncLock;
//! use shylock_mongo::MongoBackend;
//!
//! # #[tokio::main]
//! # async fn main() -> shylock_core::Result<()> {
//! let backend = MongoBackend::connect("mongodb://localhost:27017", "myapp").await?;
//! let guard = AsyncLock::with_backend("orders/42", backend).acquire().await?;
//! guard.release().await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bson::{doc, Bson, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{
    ClientOptions, CollectionOptions, IndexOptions, ReadConcern, ReturnDocument, WriteConcern,
};
use mongodb::{Client, Collection, Database, IndexModel};
use shylock_core::{duration_to_millis, Backend, Error, Lease, LockInfo, ReleaseSignals, Result};

pub use mongodb;

const BACKEND: &str = "mongodb";

/// Server selection timeout that [`MongoBackend::connect`] sets when the URI
/// does not set `serverSelectionTimeoutMS` (the driver's own default is 30 s).
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// How long after expiry the TTL index removes a lock document by default.
pub const DEFAULT_TTL_GRACE: Duration = Duration::from_secs(3600);

/// Locks in a MongoDB collection.
///
/// Cheap to clone (an `Arc` inside); convert it into a
/// [`SharedBackend`](shylock_core::SharedBackend) with `.into()`. Its `Debug`
/// output names the database and collection, never credentials.
#[derive(Clone)]
pub struct MongoBackend {
    inner: Arc<Inner>,
}

struct Inner {
    collection: Collection<Document>,
    namespace: String,
    signals: ReleaseSignals,
    watch_releases: bool,
    watcher_started: AtomicBool,
    /// True while a change stream is open.
    watcher_ready: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for MongoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoBackend")
            .field("namespace", &self.inner.namespace)
            .finish()
    }
}

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
}

impl MongoBackendBuilder {
    /// Whether waiters in this process learn of releases made by other
    /// processes through a change stream on the collection, so they retry at
    /// once instead of at their next backoff step. Default: `true`. One
    /// stream per backend, open while waiters wait and for a few seconds
    /// after (it holds one pooled connection then); where change streams are
    /// unavailable
    /// (standalone servers) waiters just poll.
    pub fn watch_releases(mut self, watch: bool) -> Self {
        self.watch_releases = watch;
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

    /// Write concern of lock writes. Default: `majority`, so a lock write
    /// survives a failover. Lowering it lets a failover hand one lock to two
    /// owners.
    pub fn write_concern(mut self, concern: WriteConcern) -> Self {
        self.write_concern = concern;
        self
    }

    /// Read concern of `inspect` / `is_locked`. Default: `majority`.
    pub fn read_concern(mut self, concern: ReadConcern) -> Self {
        self.read_concern = concern;
        self
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
        let collection = self.database.collection_with_options::<Document>(
            &self.collection,
            CollectionOptions::builder()
                .write_concern(self.write_concern.clone())
                .read_concern(self.read_concern.clone())
                .build(),
        );
        let namespace = format!("{}.{}", self.database.name(), self.collection);
        if self.create_indexes {
            let index = IndexModel::builder()
                .keys(doc! { "expiresAt": 1 })
                .options(
                    IndexOptions::builder()
                        .name("shylock_expiresAt_ttl".to_owned())
                        .expire_after(self.ttl_grace)
                        .build(),
                )
                .build();
            retry_rate_limited(|| collection.create_index(index.clone()))
                .await
                .map_err(|e| {
                    mongo_error(
                        &format!(
                            "creating the TTL index on {namespace} (if an index named \
                             shylock_expiresAt_ttl exists with another grace, drop it or keep \
                             the old grace; or turn index creation off)"
                        ),
                        e,
                    )
                })?;
        }
        Ok(MongoBackend {
            inner: Arc::new(Inner {
                collection,
                namespace,
                signals: ReleaseSignals::new(),
                watch_releases: self.watch_releases,
                watcher_started: AtomicBool::new(false),
                watcher_ready: tokio::sync::watch::channel(false).0,
            }),
        })
    }
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
            write_concern: WriteConcern::majority(),
            read_concern: ReadConcern::majority(),
            watch_releases: true,
        }
    }

    /// A backend with default settings on `database` (creates the TTL
    /// index).
    pub async fn new(database: Database) -> Result<Self> {
        Self::builder(database).build().await
    }

    /// Connects to `uri` and uses `database` with default settings. Unless
    /// the URI sets `serverSelectionTimeoutMS`, an unreachable server fails
    /// after [`DEFAULT_SERVER_SELECTION_TIMEOUT`] (5 s) instead of the
    /// driver's 30 s.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] for an invalid URI or an unreachable server.
    pub async fn connect(uri: &str, database: &str) -> Result<Self> {
        let mut options = ClientOptions::parse(uri).await.map_err(|e| {
            mongo_error(
                "parsing the connection string (expected mongodb://host:port/...)",
                e,
            )
        })?;
        if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(DEFAULT_SERVER_SELECTION_TIMEOUT);
        }
        let client = Client::with_options(options)
            .map_err(|e| mongo_error("creating the MongoDB client", e))?;
        Self::new(client.database(database)).await
    }

    /// The `database.collection` this backend uses.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The collection holding the lock documents.
    pub fn collection(&self) -> &Collection<Document> {
        &self.inner.collection
    }

    /// Starts the release watcher (see
    /// [`MongoBackendBuilder::watch_releases`]) if it is not running and
    /// waits at most `timeout` for its change stream to open. Returns whether
    /// releases by other processes now wake this process's waiters; `false`
    /// when watching is off or change streams are unavailable.
    pub async fn release_watcher_ready(&self, timeout: Duration) -> bool {
        self.ensure_watcher();
        let mut ready = self.inner.watcher_ready.subscribe();
        let opened = tokio::time::timeout(timeout, ready.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok());
        opened
    }

    /// Starts the release watcher once, on the current runtime.
    fn ensure_watcher(&self) {
        if !self.inner.watch_releases || self.inner.watcher_started.swap(true, Ordering::SeqCst) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(watch_releases(
                    self.inner.collection.clone(),
                    Arc::downgrade(&self.inner),
                ));
            }
            Err(_) => self.inner.watcher_started.store(false, Ordering::SeqCst),
        }
    }
}

/// Follows releases (owner removed, document deleted) through a change
/// stream and wakes this process's waiters. Ends when the backend is
/// dropped or the stream fails; waiters then rely on polling alone.
async fn watch_releases(collection: Collection<Document>, backend: Weak<Inner>) {
    let released = doc! { "$match": { "$or": [
        { "operationType": "delete" },
        { "updateDescription.removedFields": "owner" },
    ]}};
    let mut stream = match collection
        .watch()
        .pipeline([released])
        .max_await_time(Duration::from_secs(1))
        .await
    {
        Ok(stream) => stream,
        Err(error) => {
            tracing::debug!(%error, "change streams unavailable; waiters poll with backoff only");
            return;
        }
    };
    match backend.upgrade() {
        Some(inner) => inner.watcher_ready.send_replace(true),
        None => return,
    };
    // Rounds (of up to 1 s each) without any waiter before the stream closes.
    const IDLE_ROUNDS: u32 = 5;
    let mut idle_rounds = 0;
    loop {
        // The stream holds a pooled connection while it waits for events:
        // give it back once nobody in this process has waited for a few
        // seconds. The next waiter opens a new stream.
        match backend.upgrade() {
            Some(inner) if inner.signals.has_subscribers() => idle_rounds = 0,
            Some(_) if idle_rounds < IDLE_ROUNDS => idle_rounds += 1,
            Some(inner) => {
                inner.watcher_ready.send_replace(false);
                inner.watcher_started.store(false, Ordering::SeqCst);
                if inner.signals.has_subscribers() {
                    // A waiter arrived meanwhile and may have found the
                    // watcher still marked as running: keep going for it.
                    if !inner.watcher_started.swap(true, Ordering::SeqCst) {
                        inner.watcher_ready.send_replace(true);
                        idle_rounds = 0;
                        continue;
                    }
                }
                return;
            }
            None => return,
        }
        match stream.next_if_any().await {
            Ok(Some(event)) => {
                let Some(inner) = backend.upgrade() else {
                    return;
                };
                if let Some(Ok(name)) = event.document_key.as_ref().map(|k| k.get_str("_id")) {
                    inner.signals.notify(name);
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, "release watcher stopped; waiters poll with backoff only");
                if let Some(inner) = backend.upgrade() {
                    // Let a later waiter start a new stream.
                    inner.watcher_ready.send_replace(false);
                    inner.watcher_started.store(false, Ordering::SeqCst);
                }
                return;
            }
        }
    }
}

/// `{$toLong: expr}`: dates compared as ms, which every server version
/// (and stand-ins) compare reliably inside `$expr`.
fn ms(expr: impl Into<Bson>) -> Bson {
    Bson::Document(doc! { "$toLong": expr.into() })
}

fn expires_ms() -> Bson {
    ms(doc! { "$ifNull": ["$expiresAt", 0_i64] })
}

/// `$$NOW` in ms. It is truncated to the millisecond, so a lease counts as
/// expired only when `expiresAt < now` (strictly): stored as
/// `now + ttl`, it then never ends before a full ttl after the request.
fn now_ms() -> Bson {
    ms("$$NOW")
}

/// The update pipeline `acquire` sends with `findOneAndUpdate` on
/// `{_id: name}` (upsert, return the new document): it takes the lock if it
/// is free, expired or already `owner`'s; a new holder gets
/// `max(fence + 1, server time in ms)` so tokens keep increasing even after
/// the document was garbage-collected. Public so tools and benchmarks can
/// replay the same command.
pub fn acquire_pipeline(owner: &str, ttl_ms: i64) -> Vec<Document> {
    // `$literal`: an owner token is a value even if it starts with `$`.
    let owner = doc! { "$literal": owner };
    let free = doc! { "$or": [
        { "$eq": [{ "$ifNull": ["$owner", Bson::Null] }, Bson::Null] },
        { "$lt": [expires_ms(), now_ms()] },
        { "$eq": ["$owner", owner.clone()] },
    ]};
    let ours_and_live = doc! { "$and": [
        { "$eq": ["$owner", owner.clone()] },
        { "$gte": [expires_ms(), now_ms()] },
    ]};
    let next_fence = doc! { "$max": [
        { "$add": [{ "$ifNull": ["$fence", 0_i64] }, 1_i64] },
        now_ms(),
    ]};
    vec![doc! { "$set": {
        "fence": { "$cond": [free.clone(), { "$cond": [ours_and_live, "$fence", next_fence] }, "$fence"] },
        "owner": { "$cond": [free.clone(), owner, "$owner"] },
        "expiresAt": { "$cond": [free, { "$add": ["$$NOW", ttl_ms] }, "$expiresAt"] },
    }}]
}

fn fence_of(doc: &Document) -> Result<u64> {
    let raw = match doc.get("fence") {
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Int32(v)) => i64::from(*v),
        Some(Bson::Double(v)) => *v as i64,
        other => {
            return Err(Error::backend_msg(
                BACKEND,
                format!("lock document has no valid `fence` field ({other:?}); was it written by another program?"),
            ))
        }
    };
    Ok(u64::try_from(raw).unwrap_or(0))
}

fn expires_of(doc: &Document) -> Result<std::time::SystemTime> {
    match doc.get("expiresAt") {
        Some(Bson::DateTime(dt)) => Ok(dt.to_system_time()),
        other => Err(Error::backend_msg(
            BACKEND,
            format!("lock document has no valid `expiresAt` date ({other:?}); was it written by another program?"),
        )),
    }
}

/// The server error code of a command or write error, if any.
fn error_code(error: &mongodb::error::Error) -> Option<i32> {
    match &*error.kind {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        _ => None,
    }
}

/// 11000: two first-time creators raced on the same `_id`.
fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    error_code(error) == Some(11000)
}

/// 16500: Cosmos DB's "request rate is large".
fn is_rate_limited(error: &mongodb::error::Error) -> bool {
    error_code(error) == Some(16500)
}

/// Runs `op`, retrying rate-limit errors (Cosmos DB 16500) with backoff,
/// at most 6 attempts over about 1.5 s.
async fn retry_rate_limited<T, F, Fut>(mut op: F) -> mongodb::error::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::IntoFuture<Output = mongodb::error::Result<T>>,
{
    let mut pause = Duration::from_millis(25);
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if is_rate_limited(&e) && attempt < 6 => {
                tracing::debug!(attempt, "mongodb rate limited (16500); retrying");
                let jitter = fastrand::u64(0..pause.as_millis() as u64);
                tokio::time::sleep(pause + Duration::from_millis(jitter)).await;
                pause *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn mongo_error(what: &str, error: mongodb::error::Error) -> Error {
    let hint = match &*error.kind {
        ErrorKind::ServerSelection { .. } => {
            "; no server answered within the server selection timeout: check the URI, that \
             MongoDB is running and reachable, and the TLS and auth settings"
        }
        ErrorKind::Authentication { .. } => "; check the user name, password and authSource",
        ErrorKind::Io(_) => "; the connection failed, check the network and the server",
        _ => "",
    };
    Error::backend(BACKEND, format!("{what} failed{hint}"), error)
}

#[shylock_core::async_trait]
impl Backend for MongoBackend {
    async fn acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<Option<Lease>> {
        let pipeline = acquire_pipeline(owner, duration_to_millis(ttl));
        let outcome = retry_rate_limited(|| {
            self.inner
                .collection
                .find_one_and_update(doc! { "_id": name }, pipeline.clone())
                .upsert(true)
                .return_document(ReturnDocument::After)
                .projection(doc! { "_id": 0, "owner": 1, "expiresAt": 1, "fence": 1 })
        })
        .await;
        let doc = match outcome {
            Ok(Some(doc)) => doc,
            // An upsert always returns the document; treat "none" as held.
            Ok(None) => return Ok(None),
            Err(e) if is_duplicate_key(&e) => return Ok(None),
            Err(e) => return Err(mongo_error("acquire (findOneAndUpdate)", e)),
        };
        if doc.get_str("owner").ok() != Some(owner) {
            return Ok(None);
        }
        Ok(Some(Lease::new(
            name,
            owner,
            fence_of(&doc)?,
            expires_of(&doc)?,
        )))
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Option<Lease>> {
        let ttl_ms = duration_to_millis(ttl);
        let doc = retry_rate_limited(|| {
            self.inner
                .collection
                .find_one_and_update(
                    doc! { "_id": lease.name(), "owner": lease.owner() },
                    vec![doc! { "$set": { "expiresAt": { "$add": ["$$NOW", ttl_ms] } } }],
                )
                .return_document(ReturnDocument::After)
                .projection(doc! { "_id": 0, "expiresAt": 1, "fence": 1 })
        })
        .await
        .map_err(|e| mongo_error("extend (findOneAndUpdate)", e))?;
        match doc {
            Some(doc) => Ok(Some(Lease::new(
                lease.name(),
                lease.owner(),
                fence_of(&doc)?,
                expires_of(&doc)?,
            ))),
            None => Ok(None),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        let result = retry_rate_limited(|| {
            self.inner.collection.update_one(
                doc! { "_id": lease.name(), "owner": lease.owner() },
                doc! { "$unset": { "owner": "" }, "$currentDate": { "expiresAt": true } },
            )
        })
        .await
        .map_err(|e| mongo_error("release (updateOne)", e))?;
        let released = result.matched_count == 1;
        if released {
            self.inner.signals.notify(lease.name());
        }
        Ok(released)
    }

    async fn inspect(&self, name: &str) -> Result<Option<LockInfo>> {
        let doc = retry_rate_limited(|| {
            self.inner
                .collection
                .find_one(doc! {
                    "_id": name,
                    "owner": { "$type": "string" },
                    "$expr": { "$gte": [expires_ms(), now_ms()] },
                })
                .projection(doc! { "_id": 0, "owner": 1, "expiresAt": 1, "fence": 1 })
        })
        .await
        .map_err(|e| mongo_error("inspect (find)", e))?;
        match doc {
            Some(doc) => {
                let owner = doc.get_str("owner").unwrap_or_default().to_owned();
                Ok(Some(LockInfo::new(
                    name,
                    owner,
                    fence_of(&doc)?,
                    expires_of(&doc)?,
                )))
            }
            None => Ok(None),
        }
    }

    async fn force_release(&self, name: &str) -> Result<bool> {
        // One round trip that also tells whether the removed lease was live:
        // the old document is compared with the server clock in the pipeline.
        let doc = retry_rate_limited(|| {
            self.inner
                .collection
                .find_one_and_update(
                    doc! { "_id": name, "owner": { "$type": "string" } },
                    vec![
                        doc! { "$set": {
                            "forcedLive": { "$gte": [expires_ms(), now_ms()] },
                            "expiresAt": "$$NOW",
                        }},
                        doc! { "$unset": "owner" },
                    ],
                )
                .return_document(ReturnDocument::After)
                .projection(doc! { "_id": 0, "forcedLive": 1 })
        })
        .await
        .map_err(|e| mongo_error("force_release (findOneAndUpdate)", e))?;
        self.inner.signals.notify(name);
        Ok(doc.is_some_and(|d| d.get_bool("forcedLive").unwrap_or(false)))
    }

    fn release_signal(&self, name: &str) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        self.ensure_watcher();
        Some(self.inner.signals.subscribe(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_takes_owner_and_ttl_as_values_not_code() {
        let p = acquire_pipeline("$where", 1500);
        let text = format!("{p:?}");
        assert!(text.contains("1500"));
        // The owner token is wrapped in $literal, so even an owner that
        // looks like a field path stays a plain string.
        assert!(text.contains("$literal"));
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn fence_and_expiry_are_read_from_documents() {
        let now = bson::DateTime::now();
        let d = doc! { "fence": 5_i64, "expiresAt": now };
        assert_eq!(fence_of(&d).unwrap(), 5);
        assert_eq!(expires_of(&d).unwrap(), now.to_system_time());
        assert!(fence_of(&doc! {}).is_err());
        assert!(expires_of(&doc! { "expiresAt": 3 }).is_err());
    }
}
