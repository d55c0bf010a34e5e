//! The store under test: a SQLite file, or a MongoDB / PostgreSQL server
//! this program starts (so it can kill and restart it) or one it is given.
//!
//! Workers reach a server through the scheduler's `FaultProxy`; the
//! scheduler's own checks go straight to the server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use shylock::SharedBackend;

#[cfg(any(feature = "mongo", feature = "postgres"))]
use crate::servers::Server;

/// Which backend a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sqlite,
    #[cfg(feature = "mongo")]
    Mongo,
    #[cfg(feature = "postgres")]
    Postgres,
}

impl Kind {
    pub(crate) fn parse(s: &str) -> Option<Kind> {
        match s {
            "sqlite" => Some(Kind::Sqlite),
            #[cfg(feature = "mongo")]
            "mongo" | "mongodb" => Some(Kind::Mongo),
            #[cfg(feature = "postgres")]
            "postgres" | "postgresql" => Some(Kind::Postgres),
            _ => None,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            #[cfg(feature = "mongo")]
            Kind::Mongo => "mongo",
            #[cfg(feature = "postgres")]
            Kind::Postgres => "postgres",
        }
    }
}

/// The store of one run.
pub(crate) struct Store {
    /// `sqlite:PATH`, or the server's address for the proxy.
    sqlite: Option<PathBuf>,
    /// A server this program runs (restartable), if any.
    #[cfg(any(feature = "mongo", feature = "postgres"))]
    server: Option<Server>,
    /// Host and port of the server, for the proxy.
    upstream: Option<SocketAddr>,
    /// Connection string with `{addr}` where the host and port go.
    template: String,
    /// Database (MongoDB) or table (PostgreSQL) of this run.
    namespace: String,
}

impl Store {
    /// Sets up the store of a run in `dir`. MongoDB: a SecantusDB of our
    /// own when `SECANTUSD` names one, else the server at `MONGODB_URI`.
    /// PostgreSQL: a cluster of our own when `SHYLOCK_PG_BIN` names the
    /// binaries, else the server at `POSTGRES_URL`.
    pub(crate) async fn open(kind: Kind, dir: &Path, run_id: &str) -> Result<Store, String> {
        let mut store = Store {
            sqlite: None,
            #[cfg(any(feature = "mongo", feature = "postgres"))]
            server: None,
            upstream: None,
            template: String::new(),
            namespace: format!("shylock_chaos_{run_id}"),
        };
        match kind {
            Kind::Sqlite => store.sqlite = Some(dir.join("locks.db")),
            #[cfg(feature = "mongo")]
            Kind::Mongo => {
                if let Ok(binary) = std::env::var("SECANTUSD") {
                    let server = Server::secantus(&binary, dir).await?;
                    store.upstream = Some(server.addr());
                    store.server = Some(server);
                    store.template = "mongodb://{addr}/?directConnection=true".into();
                } else if let Ok(uri) = std::env::var("MONGODB_URI") {
                    let (addr, template) = split_addr(&uri, "mongodb://")?;
                    store.upstream = Some(addr);
                    store.template = template;
                } else {
                    return Err("set SECANTUSD (a secantusd-py to start) or MONGODB_URI".into());
                }
            }
            #[cfg(feature = "postgres")]
            Kind::Postgres => {
                if let Ok(bin) = std::env::var("SHYLOCK_PG_BIN") {
                    let server = Server::postgres(&bin, dir).await?;
                    store.upstream = Some(server.addr());
                    store.server = Some(server);
                    store.template = "postgres://postgres@{addr}/postgres".into();
                } else if let Ok(url) = std::env::var("POSTGRES_URL") {
                    let (addr, template) = split_addr(&url, "postgres://")?;
                    store.upstream = Some(addr);
                    store.template = template;
                } else {
                    return Err(
                        "set SHYLOCK_PG_BIN (initdb and pg_ctl to run) or POSTGRES_URL".into(),
                    );
                }
            }
        }
        // Creates the collection's indexes or the tables once, up front.
        connect(&store.spec(None), false)
            .await
            .map_err(|e| e.to_string())?;
        Ok(store)
    }

    /// The server's address, when there is a server to put a proxy before.
    pub(crate) fn upstream(&self) -> Option<SocketAddr> {
        self.upstream
    }

    /// The spec a worker connects with (see [`connect`]), through `via`
    /// (the proxy) when given.
    pub(crate) fn spec(&self, via: Option<SocketAddr>) -> String {
        if let Some(path) = &self.sqlite {
            return format!("sqlite:{}", path.display());
        }
        let addr = via
            .or(self.upstream)
            .expect("a server store has an address");
        let url = self.template.replace("{addr}", &addr.to_string());
        let scheme = if url.starts_with("mongodb") {
            "mongo"
        } else {
            "postgres"
        };
        format!("{scheme}:{url}|{}", self.namespace)
    }

    /// Whether [`crash`](Self::crash) and [`restart`](Self::restart) work.
    pub(crate) fn restartable(&self) -> bool {
        #[cfg(any(feature = "mongo", feature = "postgres"))]
        return self.server.is_some();
        #[cfg(not(any(feature = "mongo", feature = "postgres")))]
        false
    }

    /// Kills the server without a shutdown (SIGKILL, or PostgreSQL's
    /// `pg_ctl stop -m immediate`).
    pub(crate) async fn crash(&mut self) {
        #[cfg(any(feature = "mongo", feature = "postgres"))]
        if let Some(server) = &mut self.server {
            server.crash().await;
        }
    }

    /// Starts the server again on the same port with the same data.
    pub(crate) async fn restart(&mut self) -> Result<(), String> {
        #[cfg(any(feature = "mongo", feature = "postgres"))]
        if let Some(server) = &mut self.server {
            return server.start().await;
        }
        Ok(())
    }

    /// Stops a server of our own for good.
    pub(crate) async fn shutdown(&mut self) {
        #[cfg(any(feature = "mongo", feature = "postgres"))]
        if let Some(server) = &mut self.server {
            server.crash().await;
        }
    }
}

/// `(host:port, url with {addr} in its place)` of a single-host URL.
#[cfg(any(feature = "mongo", feature = "postgres"))]
fn split_addr(url: &str, scheme: &str) -> Result<(SocketAddr, String), String> {
    use std::net::ToSocketAddrs;
    let rest = url
        .strip_prefix(scheme)
        .ok_or_else(|| format!("{url}: expected {scheme}..."))?;
    let hosts_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (userinfo, host) = match rest[..hosts_end].rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), &rest[..hosts_end]),
    };
    let addr = host
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("{url}: one host:port is needed to put a proxy before it"))?;
    Ok((
        addr,
        format!("{scheme}{userinfo}{{addr}}{}", &rest[hosts_end..]),
    ))
}

/// Builds a backend from a spec: `sqlite:PATH`, `mongo:URI|DB` or
/// `postgres:URL|TABLE`. Workers (`worker`) skip creating indexes and
/// tables (the scheduler did) and use short connection timeouts.
pub(crate) async fn connect(spec: &str, worker: bool) -> shylock::Result<SharedBackend> {
    if let Some(path) = spec.strip_prefix("sqlite:") {
        return Ok(shylock::SqliteBackend::open(path)?.into());
    }
    #[cfg(feature = "mongo")]
    if let Some(rest) = spec.strip_prefix("mongo:") {
        use shylock::mongo::mongodb::Client;
        let (uri, db) = rest.split_once('|').expect("mongo:URI|DB");
        let sep = if uri.contains('?') { '&' } else { '?' };
        let uri = format!(
            "{uri}{sep}serverSelectionTimeoutMS=2000&connectTimeoutMS=1000&heartbeatFrequencyMS=500"
        );
        let client =
            Client::with_uri_str(&uri)
                .await
                .map_err(|e| shylock::Error::InvalidOptions {
                    reason: e.to_string(),
                })?;
        return Ok(shylock::MongoBackend::builder(client.database(db))
            .create_indexes(!worker)
            .build()
            .await?
            .into());
    }
    #[cfg(feature = "postgres")]
    if let Some(rest) = spec.strip_prefix("postgres:") {
        let (url, table) = rest.split_once('|').expect("postgres:URL|TABLE");
        let pool = shylock::PostgresBackend::pool_for(url).await?;
        return Ok(shylock::PostgresBackend::builder(pool)
            .table(table)
            .create_tables(!worker)
            .build()
            .await?
            .into());
    }
    Err(shylock::Error::InvalidOptions {
        reason: format!("unknown store spec {spec:?}"),
    })
}
