//! Opening the store a URL names, read-only in spirit: nothing is created
//! (no SQLite file, no collection, no index).

use std::path::Path;
use std::time::Duration;

use shylock::mongo::mongodb::options::ClientOptions;
use shylock::mongo::mongodb::Client;
use shylock::postgres::{StatementMode, DEFAULT_SCHEMA, DEFAULT_TABLE};
use shylock::{ArangoBackend, MongoBackend, PostgresBackend, SharedBackend, SqliteBackend};

use crate::Failure;

/// Where the store is and how to reach it.
pub(crate) struct StoreArgs<'a> {
    pub(crate) url: &'a str,
    pub(crate) database: Option<&'a str>,
    pub(crate) collection: &'a str,
    pub(crate) arango_user: &'a str,
    pub(crate) arango_password: Option<&'a str>,
    pub(crate) timeout: Duration,
}

const SCHEMES: &str = "sqlite:PATH, mongodb://HOST/..., mongodb+srv://..., \
                       postgres://HOST/DATABASE, or http(s)://HOST:PORT for ArangoDB";

/// Opens the store.
pub(crate) async fn open(args: &StoreArgs<'_>) -> Result<SharedBackend, Failure> {
    let url = args.url;
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        return open_sqlite(path);
    }
    if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") {
        return open_mongo(args).await;
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return open_arango(args).await;
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return open_postgres(args).await;
    }
    Err(Failure::usage(format!(
        "the store {url:?} is not a URL shylock knows; use {SCHEMES}"
    )))
}

fn open_sqlite(path: &str) -> Result<SharedBackend, Failure> {
    if path.is_empty() || path == ":memory:" {
        return Err(Failure::usage(
            "sqlite: needs the path of the lock file the services open (sqlite:/var/lib/app/locks.db)",
        ));
    }
    // Opening a missing file would create an empty store and show no locks:
    // a mistyped path must be an error instead.
    if !Path::new(path).is_file() {
        return Err(Failure::unreachable(format!(
            "there is no lock file at {path}; give the path the services pass to SqliteBackend::open"
        )));
    }
    SqliteBackend::open(path)
        .map(SharedBackend::from)
        .map_err(Failure::from_error)
}

async fn open_mongo(args: &StoreArgs<'_>) -> Result<SharedBackend, Failure> {
    let mut options = ClientOptions::parse(args.url)
        .await
        .map_err(|e| Failure::usage(format!("the MongoDB connection string is not valid: {e}")))?;
    if options.server_selection_timeout.is_none() {
        options.server_selection_timeout = Some(args.timeout.min(Duration::from_secs(5)));
    }
    let database =
        match (args.database, options.default_database.clone()) {
            (Some(database), _) => database.to_owned(),
            (None, Some(database)) => database,
            (None, None) => return Err(Failure::usage(
                "which MongoDB database holds the locks? Pass --database (or SHYLOCK_DATABASE), \
                 the name the services give MongoBackend, or put it in the URL \
                 (mongodb://host/DATABASE)",
            )),
        };
    let client = Client::with_options(options)
        .map_err(|e| Failure::usage(format!("cannot use the MongoDB connection string: {e}")))?;
    MongoBackend::builder(client.database(&database))
        .collection(args.collection)
        .create_indexes(false)
        .watch_releases(false)
        .build()
        .await
        .map(SharedBackend::from)
        .map_err(Failure::from_error)
}

async fn open_arango(args: &StoreArgs<'_>) -> Result<SharedBackend, Failure> {
    let mut builder = ArangoBackend::builder(args.url)
        .database(args.database.unwrap_or("_system"))
        .collection(args.collection)
        .create_collection(false)
        .request_timeout(args.timeout);
    if let Some(password) = args.arango_password {
        builder = builder.basic_auth(args.arango_user, password);
    }
    builder
        .build()
        .await
        .map(SharedBackend::from)
        .map_err(Failure::from_error)
}

/// The collection option's default, which names no PostgreSQL table.
const DEFAULT_COLLECTION: &str = "shylock";

async fn open_postgres(args: &StoreArgs<'_>) -> Result<SharedBackend, Failure> {
    // `--collection [SCHEMA.]TABLE`; the default collection name means the
    // backend's default table.
    let (schema, table) = match args.collection.split_once('.') {
        Some((schema, table)) => (schema, table),
        None if args.collection == DEFAULT_COLLECTION => (DEFAULT_SCHEMA, DEFAULT_TABLE),
        None => (DEFAULT_SCHEMA, args.collection),
    };
    let pool = PostgresBackend::pool_for(args.url)
        .await
        .map_err(Failure::from_error)?;
    // Unprepared statements work behind any connection pooler, and create
    // nothing on the server; without a LISTEN pool, `watch` polls.
    PostgresBackend::builder(pool)
        .schema(schema)
        .table(table)
        .create_tables(false)
        .statement_mode(StatementMode::Unprepared)
        .build()
        .await
        .map(SharedBackend::from)
        .map_err(Failure::from_error)
}
