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
//! use shylock_arango::ArangoBackend;
//! use shylock_core::AsyncLock;
//!
//! # #[tokio::main]
//! # async fn main() -> shylock_core::Result<()> {
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
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arangors::{AqlQuery, ClientError, Database, GenericConnection};
use serde::Deserialize;
use serde_json::{json, Value};
use shylock_core::{
    duration_to_millis, system_time_from_millis, Backend, Error, Lease, LockInfo, ReleaseSignals,
    Result,
};

mod client;
pub mod queries;

pub use client::HttpClient;

const BACKEND: &str = "arangodb";

/// Default timeout of one operation (one HTTP request).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long after expiry the TTL index removes a lock document by default.
pub const DEFAULT_TTL_GRACE: Duration = Duration::from_secs(3600);

/// ArangoDB error number: unique constraint violated.
pub const ERROR_UNIQUE_CONSTRAINT: u16 = 1210;
/// ArangoDB error number: write-write conflict.
pub const ERROR_CONFLICT: u16 = 1200;
const ERROR_DUPLICATE_NAME: u16 = 1207;

/// The `_key` of the document for lock `name`.
///
/// Names made only of ASCII letters, digits and `_-.@()+,=;$!*'` are used
/// as they are; other bytes are percent-encoded (`%2F` for `/`). Keys that
/// would exceed ArangoDB's 254 bytes become `sha256:` and the hex digest of
/// the name. Percent-encoded keys never contain `:`, so the two forms never
/// collide, and distinct names always get distinct keys (up to SHA-256
/// collisions for very long names).
///
/// # Examples
///
/// ```
/// use shylock_arango::document_key;
///
/// assert_eq!(document_key("orders/42"), "orders%2F42");
/// assert!(document_key(&"x".repeat(1000)).starts_with("sha256:"));
/// ```
pub fn document_key(name: &str) -> String {
    const MAX_KEY: usize = 254;
    let mut key = String::with_capacity(name.len());
    for byte in name.bytes() {
        let plain = byte.is_ascii_alphanumeric() || b"_-.@()+,=;$!*'".contains(&byte);
        if plain {
            key.push(byte as char);
        } else {
            key.push_str(&format!("%{byte:02X}"));
        }
        if key.len() > MAX_KEY {
            break;
        }
    }
    if key.len() <= MAX_KEY {
        return key;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[derive(Clone)]
enum Auth {
    None,
    Basic { user: String, password: String },
    Jwt { user: String, password: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { user, .. } => write!(f, "Basic({user:?}, password: <redacted>)"),
            Auth::Jwt { user, .. } => write!(f, "Jwt({user:?}, password: <redacted>)"),
        }
    }
}

/// Settings for an [`ArangoBackend`]; every one has a working default.
/// Its `Debug` output never shows passwords.
#[derive(Debug, Clone)]
#[must_use = "call .build().await to get the backend"]
pub struct ArangoBackendBuilder {
    url: String,
    auth: Auth,
    database: String,
    collection: String,
    create_collection: bool,
    ttl_grace: Duration,
    request_timeout: Duration,
}

impl ArangoBackendBuilder {
    /// HTTP basic authentication.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Auth::Basic {
            user: user.into(),
            password: password.into(),
        };
        self
    }

    /// JWT authentication: logs in with `POST /_open/auth` once at build time.
    /// Tokens last as long as the server's session timeout (one hour by
    /// default); rebuild the backend for longer-lived processes or use basic
    /// auth.
    pub fn jwt(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Auth::Jwt {
            user: user.into(),
            password: password.into(),
        };
        self
    }

    /// Database name. Default: `_system`.
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.database = name.into();
        self
    }

    /// Collection name. Default: `shylock`.
    pub fn collection(mut self, name: impl Into<String>) -> Self {
        self.collection = name.into();
        self
    }

    /// Whether [`build`](Self::build) creates the collection and its TTL
    /// index when missing. Default: `true`. With `false` the collection must
    /// exist.
    pub fn create_collection(mut self, create: bool) -> Self {
        self.create_collection = create;
        self
    }

    /// How long after expiry the TTL index removes a document. Default: one
    /// hour.
    pub fn ttl_grace(mut self, grace: Duration) -> Self {
        self.ttl_grace = grace;
        self
    }

    /// Timeout of each operation. Default: 10 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Connects, checks the database, and (by default) creates the
    /// collection and TTL index. Safe for many processes starting at once.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the server is unreachable, is not ArangoDB,
    /// refuses the credentials, or the database does not exist.
    pub async fn build(self) -> Result<ArangoBackend> {
        let timeout = self.request_timeout;
        let url = self.url.clone();
        let connect = async {
            match &self.auth {
                Auth::None => GenericConnection::<HttpClient>::establish_without_auth(&url).await,
                Auth::Basic { user, password } => {
                    GenericConnection::<HttpClient>::establish_basic_auth(&url, user, password)
                        .await
                }
                Auth::Jwt { user, password } => {
                    GenericConnection::<HttpClient>::establish_jwt(&url, user, password).await
                }
            }
        };
        let connection = with_timeout(timeout, "connecting", connect).await?;
        let db = with_timeout(
            timeout,
            "opening the database",
            connection.db(&self.database),
        )
        .await
        .map_err(|e| {
            annotate(
                e,
                &format!(
                    "check that database {:?} exists and the user may use it",
                    self.database
                ),
            )
        })?;
        let backend = ArangoBackend {
            inner: Arc::new(Inner {
                db,
                collection: self.collection.clone(),
                timeout,
                signals: ReleaseSignals::new(),
                location: format!(
                    "{} db {} collection {}",
                    self.url, self.database, self.collection
                ),
            }),
        };
        if self.create_collection {
            backend.setup(self.ttl_grace).await?;
        }
        Ok(backend)
    }
}

fn annotate(error: Error, hint: &str) -> Error {
    match error {
        Error::Backend {
            backend,
            message,
            source,
        } => Error::Backend {
            backend,
            message: format!("{message}; {hint}"),
            source,
        },
        other => other,
    }
}

async fn with_timeout<T>(
    timeout: Duration,
    what: &str,
    fut: impl std::future::Future<Output = std::result::Result<T, ClientError>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(arango_error(what, e)),
        Err(_) => Err(Error::backend_msg(
            BACKEND,
            format!(
                "{what} got no answer within {timeout:?}; check that ArangoDB is running and \
                 reachable, or raise request_timeout"
            ),
        )),
    }
}

fn error_num(error: &ClientError) -> Option<u16> {
    match error {
        ClientError::Arango(e) => Some(e.error_num()),
        _ => None,
    }
}

fn arango_error(what: &str, error: ClientError) -> Error {
    let hint = match &error {
        ClientError::Arango(e) if e.code() == 401 || e.error_num() == 11 => {
            "; the server refused the credentials: check user and password"
        }
        ClientError::Arango(e) if e.error_num() == 1228 => "; the database does not exist",
        ClientError::InvalidServer(_) => "; the URL does not point at an ArangoDB server",
        ClientError::HttpClient(_) => "; the HTTP request failed: check the URL and the network",
        _ => "",
    };
    Error::backend(BACKEND, format!("{what} failed{hint}"), error)
}

/// Locks in an ArangoDB collection.
///
/// Cheap to clone; convert it into a
/// [`SharedBackend`](shylock_core::SharedBackend) with `.into()`.
#[derive(Clone)]
pub struct ArangoBackend {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database<HttpClient>,
    collection: String,
    timeout: Duration,
    signals: ReleaseSignals,
    location: String,
}

impl std::fmt::Debug for ArangoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArangoBackend")
            .field("location", &self.inner.location)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeaseRow {
    owner: Option<String>,
    fence: f64,
    expires_at_ms: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InfoRow {
    owner: String,
    fence: f64,
    expires_at_ms: f64,
}

impl ArangoBackend {
    /// A builder for the server at `url` (e.g. `http://localhost:8529`),
    /// with no authentication, database `_system` and collection `shylock`.
    pub fn builder(url: impl Into<String>) -> ArangoBackendBuilder {
        ArangoBackendBuilder {
            url: url.into(),
            auth: Auth::None,
            database: "_system".into(),
            collection: "shylock".into(),
            create_collection: true,
            ttl_grace: DEFAULT_TTL_GRACE,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    async fn setup(&self, grace: Duration) -> Result<()> {
        let inner = &self.inner;
        match tokio::time::timeout(inner.timeout, inner.db.create_collection(&inner.collection))
            .await
        {
            Ok(Ok(_)) => {}
            // Another process created it first.
            Ok(Err(e)) if error_num(&e) == Some(ERROR_DUPLICATE_NAME) => {}
            Ok(Err(e)) => return Err(arango_error("creating the lock collection", e)),
            Err(_) => {
                return Err(arango_error(
                    "creating the lock collection",
                    timeout_error(),
                ))
            }
        }
        let index = arangors::index::Index::builder()
            .name("shylock_expiresAt_ttl")
            .fields(vec!["expiresAt".to_owned()])
            .settings(arangors::index::IndexSettings::Ttl {
                expire_after: u32::try_from(grace.as_secs()).unwrap_or(u32::MAX),
            })
            .build();
        with_timeout(
            inner.timeout,
            "creating the TTL index (a collection has at most one TTL index: drop another one \
             on it, or turn create_collection off)",
            inner.db.create_index(&inner.collection, &index),
        )
        .await?;
        Ok(())
    }

    async fn query<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        query: &'static str,
        vars: Vec<(&'static str, Value)>,
    ) -> std::result::Result<Vec<T>, QueryError> {
        let mut bind: HashMap<&str, Value> = vars.into_iter().collect();
        bind.insert("@coll", json!(self.inner.collection));
        let aql = AqlQuery::builder().query(query).bind_vars(bind).build();
        match tokio::time::timeout(self.inner.timeout, self.inner.db.aql_query_batch::<T>(aql))
            .await
        {
            Ok(Ok(cursor)) => Ok(cursor.result),
            Ok(Err(e)) => Err(QueryError {
                what: what.to_owned(),
                error: e,
            }),
            Err(_) => Err(QueryError {
                what: what.to_owned(),
                error: timeout_error(),
            }),
        }
    }

    /// Runs a write query, retrying write conflicts (1200) a few times.
    async fn write<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        query: &'static str,
        vars: Vec<(&'static str, Value)>,
    ) -> Result<Vec<T>> {
        let mut attempt = 1;
        loop {
            match self.query(what, query, vars.clone()).await {
                Err(e) if error_num(&e.error) == Some(ERROR_CONFLICT) && attempt < 5 => {
                    tokio::time::sleep(Duration::from_millis(5 * attempt)).await;
                    attempt += 1;
                }
                other => return other.map_err(QueryError::into_error),
            }
        }
    }
}

fn timeout_error() -> ClientError {
    ClientError::HttpClient("request timed out".into())
}

struct QueryError {
    what: String,
    error: ClientError,
}

impl QueryError {
    fn into_error(self) -> Error {
        arango_error(&self.what, self.error)
    }
}

fn fence_of(value: f64) -> u64 {
    if value.is_finite() && value > 0.0 {
        value as u64
    } else {
        0
    }
}

#[shylock_core::async_trait]
impl Backend for ArangoBackend {
    async fn acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<Option<Lease>> {
        let vars = vec![
            ("key", json!(document_key(name))),
            ("name", json!(name)),
            ("owner", json!(owner)),
            ("ttl", json!(duration_to_millis(ttl))),
        ];
        let rows: Vec<LeaseRow> = match self.query("acquire", queries::ACQUIRE, vars).await {
            Ok(rows) => rows,
            // Two first-time creators raced: the other one holds it now.
            Err(e)
                if matches!(
                    error_num(&e.error),
                    Some(ERROR_UNIQUE_CONSTRAINT | ERROR_CONFLICT)
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e.into_error()),
        };
        Ok(rows
            .into_iter()
            .next()
            .filter(|row| row.owner.as_deref() == Some(owner))
            .map(|row| {
                Lease::new(
                    name,
                    owner,
                    fence_of(row.fence),
                    system_time_from_millis(row.expires_at_ms as i64),
                )
            }))
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Option<Lease>> {
        let vars = vec![
            ("key", json!(document_key(lease.name()))),
            ("owner", json!(lease.owner())),
            ("ttl", json!(duration_to_millis(ttl))),
        ];
        let rows: Vec<LeaseRow> = self.write("extend", queries::EXTEND, vars).await?;
        Ok(rows.into_iter().next().map(|row| {
            Lease::new(
                lease.name(),
                lease.owner(),
                fence_of(row.fence),
                system_time_from_millis(row.expires_at_ms as i64),
            )
        }))
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        let vars = vec![
            ("key", json!(document_key(lease.name()))),
            ("owner", json!(lease.owner())),
        ];
        let rows: Vec<bool> = self.write("release", queries::RELEASE, vars).await?;
        let released = !rows.is_empty();
        if released {
            self.inner.signals.notify(lease.name());
        }
        Ok(released)
    }

    async fn inspect(&self, name: &str) -> Result<Option<LockInfo>> {
        let vars = vec![("key", json!(document_key(name)))];
        let rows: Vec<InfoRow> = self
            .query("inspect", queries::INSPECT, vars)
            .await
            .map_err(QueryError::into_error)?;
        Ok(rows.into_iter().next().map(|row| {
            LockInfo::new(
                name,
                row.owner,
                fence_of(row.fence),
                system_time_from_millis(row.expires_at_ms as i64),
            )
        }))
    }

    async fn force_release(&self, name: &str) -> Result<bool> {
        let vars = vec![("key", json!(document_key(name)))];
        let rows: Vec<bool> = self
            .write("force_release", queries::FORCE_RELEASE, vars)
            .await?;
        self.inner.signals.notify(name);
        Ok(rows.into_iter().any(|live| live))
    }

    fn release_signal(&self, name: &str) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        Some(self.inner.signals.subscribe(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_distinct_and_bounded() {
        let names = [
            "a",
            "A",
            "a/b",
            "a%2Fb",
            "a:b",
            "emoji-🔒",
            "nul\0",
            "sp ace",
            "x.y",
        ];
        let keys: Vec<String> = names.iter().map(|n| document_key(n)).collect();
        for (i, k) in keys.iter().enumerate() {
            assert!(k.len() <= 254 && !k.is_empty());
            assert!(
                k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.@()+,=;$!*'%:".contains(&b)),
                "{k}"
            );
            for other in &keys[i + 1..] {
                assert_ne!(k, other);
            }
        }
        let long = "y".repeat(300);
        assert_eq!(document_key(&long).len(), "sha256:".len() + 64);
        assert_ne!(document_key(&long), document_key(&format!("{long}z")));
    }

    #[test]
    fn debug_never_shows_passwords() {
        let b = ArangoBackend::builder("http://x").basic_auth("root", "hunter2");
        assert!(!format!("{b:?}").contains("hunter2"));
        let b = ArangoBackend::builder("http://x").jwt("root", "hunter2");
        assert!(!format!("{b:?}").contains("hunter2"));
    }
}
