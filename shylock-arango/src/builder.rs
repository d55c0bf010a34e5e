//! [`ArangoBackendBuilder`]: connecting, authenticating and setting up the
//! collection.

use std::sync::Arc;
use std::time::Duration;

use arangors::GenericConnection;
use shylock_core::backend::ReleaseSignals;
use shylock_core::Result;

use crate::backend::{ArangoBackend, Inner};
use crate::client::{HttpClient, Login};
use crate::error::{
    annotate, arango_error, error_num, timeout_error, with_timeout, ERROR_DUPLICATE_NAME,
};

/// Default timeout of one operation (one HTTP request).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long after expiry the TTL index removes a lock document by default.
pub const DEFAULT_TTL_GRACE: Duration = Duration::from_secs(3600);

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

    /// JWT authentication: logs in with `POST /_open/auth` at build time, and
    /// again whenever the server answers 401 because the token expired
    /// (after the server's `--server.session-timeout`, one hour by default);
    /// the refused request is then repeated once with the new token.
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

    /// [`build`](Self::build) for programs without async: the client is
    /// created on shylock's background runtime (see
    /// [`background_runtime`](shylock_core::background_runtime)), so it
    /// outlives the caller's scope and needs no runtime of the caller's.
    /// Blocks the calling thread until the backend is ready.
    ///
    /// ```no_run
    /// # mod shylock { pub use shylock_core::*; pub mod arango { pub use shylock_arango::*; } }
    /// use shylock::arango::ArangoBackend;
    ///
    /// # fn main() -> shylock::Result<()> {
    /// let backend = ArangoBackend::builder("http://localhost:8529")
    ///     .jwt("root", std::env::var("ARANGO_PASSWORD").unwrap_or_default())
    ///     .build_blocking()?;
    /// let guard = shylock::Lock::with_backend("nightly-job", backend).acquire()?;
    /// guard.release()?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_blocking(self) -> Result<ArangoBackend> {
        shylock_core::block_on("building the ArangoDB backend", self.build())
    }

    /// Connects, checks the database, and (by default) creates the
    /// collection and TTL index. Safe for many processes starting at once.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](shylock_core::Error::Backend) when the server is unreachable, is not ArangoDB,
    /// refuses the credentials, or the database does not exist.
    /// [`Error::InvalidOptions`](shylock_core::Error::InvalidOptions) for a
    /// URL that is not `http(s)://host[:port]` (a path prefix, as behind a
    /// reverse proxy, is not supported by the client library, which would
    /// drop it).
    pub async fn build(self) -> Result<ArangoBackend> {
        let timeout = self.request_timeout;
        let url = validate_url(&self.url)?;
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
        let relogin = match &self.auth {
            Auth::Jwt { user, password } => Some(Login {
                url: url.clone(),
                user: user.clone(),
                password: password.clone(),
                database: self.database.clone(),
            }),
            _ => None,
        };
        let backend = ArangoBackend::from_inner(Arc::new(Inner {
            db: std::sync::RwLock::new((0, db)),
            relogin,
            relogin_lock: tokio::sync::Mutex::new(()),
            collection: self.collection.clone(),
            timeout,
            signals: ReleaseSignals::new(),
            permit_signals: ReleaseSignals::new(),
            read_signals: ReleaseSignals::new(),
            write_signals: ReleaseSignals::new(),
            location: format!(
                "{} db {} collection {}",
                self.url, self.database, self.collection
            ),
        }));
        if self.create_collection {
            backend.setup(self.ttl_grace).await?;
        }
        Ok(backend)
    }
}

/// Checks that `url` is `http(s)://host[:port]` with nothing after it but
/// a `/`, and returns it without a trailing `/`.
fn validate_url(url: &str) -> Result<String> {
    let invalid = |why: String| shylock_core::Error::InvalidOptions { reason: why };
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        invalid(format!(
            "ArangoDB URL {url:?} is not a URL ({e}); use e.g. http://localhost:8529"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid(format!(
            "ArangoDB URL {url:?} must be http:// or https:// with a host, e.g. http://localhost:8529"
        )));
    }
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid(format!(
            "ArangoDB URL {url:?} has a path, query or fragment; only http(s)://host[:port] is \
             supported (the client library would drop a path prefix, so a server behind a \
             reverse proxy must be reachable at the root of a host or port)"
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(format!(
            "ArangoDB URL has credentials in it; pass them with basic_auth() or jwt() instead \
             (host {:?})",
            parsed.host_str().unwrap_or_default()
        )));
    }
    Ok(url.trim_end_matches('/').to_owned())
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

    pub(crate) async fn setup(&self, grace: Duration) -> Result<()> {
        let inner = self.inner();
        let (_, db) = self.db();
        match tokio::time::timeout(inner.timeout, db.create_collection(&inner.collection)).await {
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
            db.create_index(&inner.collection, &index),
        )
        .await?;
        Ok(())
    }
}
