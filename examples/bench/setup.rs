//! The backend under test, handles on the same store standing in for
//! other processes, and what the raw baseline needs.

use shylock::SharedBackend;

use crate::Kind;

/// The backend under test plus what the raw baseline needs.
pub(crate) struct Setup {
    pub(crate) backend: SharedBackend,
    /// Database commands (mongo) or SQL statements (sqlite) sent so far.
    pub(crate) commands: Box<dyn Fn() -> Option<u64>>,
    pub(crate) command_unit: &'static str,
    pub(crate) raw: Raw,
    /// Independent handles on the same store, one per task, behaving like
    /// separate processes (no in-process release signal between them).
    pub(crate) separate: Vec<SharedBackend>,
    /// Handles on the same clients as `separate` that share the process's
    /// release watcher, as handles in one process do by default (MongoDB).
    pub(crate) sharing: Vec<SharedBackend>,
    pub(crate) cleanup: Box<dyn FnOnce()>,
}

pub(crate) enum Raw {
    Memory(shylock::MemoryBackend),
    Sqlite(std::path::PathBuf),
    #[cfg(feature = "mongo")]
    Mongo(shylock::mongo::mongodb::Collection<bson::Document>),
    /// A handle for its pool and its statements, sent with sqlx directly.
    #[cfg(feature = "postgres")]
    Postgres(shylock::PostgresBackend),
}

pub(crate) async fn setup(kind: Kind) -> Setup {
    match kind {
        Kind::Memory => {
            let backend = shylock::MemoryBackend::new();
            Setup {
                backend: backend.clone().into(),
                commands: Box::new(|| None),
                command_unit: "-",
                raw: Raw::Memory(backend),
                separate: Vec::new(),
                sharing: Vec::new(),
                cleanup: Box::new(|| {}),
            }
        }
        Kind::Sqlite => {
            let dir = std::env::temp_dir().join(format!("shylock-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("locks.db");
            let backend = shylock::SqliteBackend::open(&path).expect("open sqlite");
            let separate = (0..65)
                .map(|_| {
                    shylock::SqliteBackend::open(&path)
                        .expect("open sqlite")
                        .into()
                })
                .collect();
            Setup {
                backend: backend.into(),
                separate,
                sharing: Vec::new(),
                commands: Box::new(|| Some(shylock::sqlite::statements_executed())),
                command_unit: "SQL statements",
                raw: Raw::Sqlite(path),
                cleanup: Box::new(move || {
                    let _ = std::fs::remove_dir_all(dir);
                }),
            }
        }
        #[cfg(feature = "mongo")]
        Kind::Mongo => mongo_setup().await,
        #[cfg(feature = "postgres")]
        Kind::Postgres => postgres_setup().await,
    }
}

/// Fresh tables in the database at `POSTGRES_URL`; the separate handles
/// each have a pool and a `LISTEN` connection of their own, as processes.
#[cfg(feature = "postgres")]
pub(crate) async fn postgres_setup() -> Setup {
    use shylock::PostgresBackend;
    let url = std::env::var("POSTGRES_URL").expect("set POSTGRES_URL");
    let table = format!("shylock_bench_{}", std::process::id());
    let handle = |share: bool| {
        let (url, table) = (url.clone(), table.clone());
        async move {
            let pool = PostgresBackend::pool_for(&url).await.expect("connect");
            PostgresBackend::builder(pool)
                .table(table)
                .share_release_listener(share)
                .build()
                .await
                .expect("set up tables")
        }
    };
    let backend = handle(true).await;
    let mut separate = Vec::new();
    for _ in 0..65 {
        separate.push(handle(false).await.into());
    }
    let pool = backend.pool().clone();
    let drop_sql = format!(
        "DROP TABLE IF EXISTS {table}, {table}_semaphores, {table}_tickets, {table}_rwlocks; DROP SEQUENCE IF EXISTS {table}_fence"
    );
    Setup {
        backend: backend.clone().into(),
        separate,
        sharing: Vec::new(),
        commands: Box::new(|| Some(shylock::postgres::statements_executed())),
        command_unit: "SQL statements",
        raw: Raw::Postgres(backend),
        cleanup: Box::new(move || {
            let _ = shylock::block_on("dropping the bench tables", async move {
                let _ = shylock::postgres::sqlx::raw_sql(&drop_sql)
                    .execute(&pool)
                    .await;
                Ok(())
            });
        }),
    }
}

#[cfg(feature = "mongo")]
pub(crate) async fn mongo_setup() -> Setup {
    use shylock::mongo::mongodb::event::{command::CommandEvent, EventHandler};
    use shylock::mongo::mongodb::{options::ClientOptions, Client};
    use std::future::IntoFuture;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    let Ok(uri) = std::env::var("MONGODB_URI") else {
        eprintln!("set MONGODB_URI, e.g. MONGODB_URI=\"mongodb://127.0.0.1:27017/?directConnection=true\"");
        std::process::exit(2)
    };
    let counter = Arc::new(AtomicU64::new(0));
    let mut options = ClientOptions::parse(&uri).await.expect("MONGODB_URI");
    let c = counter.clone();
    options.command_event_handler = Some(EventHandler::callback(move |event| {
        if let CommandEvent::Started(_) = event {
            c.fetch_add(1, Ordering::SeqCst);
        }
    }));
    let client = Client::with_options(options).unwrap();
    let db_name = format!("shylock_bench_{}", std::process::id());
    let db = client.database(&db_name);
    let backend = shylock::MongoBackend::new(db.clone())
        .await
        .expect("mongo setup");
    // The raw baseline sends the same commands with the same write and
    // read concern as the backend (majority, 5 s wtimeout) ...
    let raw = db.collection_with_options::<bson::Document>(
        "raw_baseline",
        shylock::mongo::mongodb::options::CollectionOptions::builder()
            .write_concern(
                shylock::mongo::mongodb::options::WriteConcern::builder()
                    .w(shylock::mongo::mongodb::options::Acknowledgment::Majority)
                    .w_timeout(Duration::from_secs(5))
                    .build(),
            )
            .read_concern(shylock::mongo::mongodb::options::ReadConcern::majority())
            .build(),
    );
    // ... on a collection indexed as the backend's is (the TTL index on
    // `expiresAt`, which every write that moves an expiry maintains).
    raw.create_index(
        shylock::mongo::mongodb::IndexModel::builder()
            .keys(bson::doc! { "expiresAt": 1 })
            .options(
                shylock::mongo::mongodb::options::IndexOptions::builder()
                    .expire_after(Duration::from_secs(3600))
                    .build(),
            )
            .build(),
    )
    .await
    .unwrap();
    // Separate clients too, as separate processes would have (each with a
    // change stream of its own); and the same clients as one process uses
    // them (one stream for all).
    let (mut separate, mut sharing) = (Vec::new(), Vec::new());
    for _ in 0..65 {
        let own = Client::with_uri_str(&uri).await.unwrap();
        for (share, handles) in [(false, &mut separate), (true, &mut sharing)] {
            let b = shylock::MongoBackend::builder(own.database(&db_name))
                .create_indexes(false)
                .share_release_watcher(share)
                .build()
                .await
                .unwrap();
            handles.push(b.into());
        }
    }
    let c = counter.clone();
    Setup {
        backend: backend.into(),
        separate,
        sharing,
        commands: Box::new(move || Some(c.load(Ordering::SeqCst))),
        command_unit: "commands",
        raw: Raw::Mongo(raw),
        cleanup: Box::new(move || {
            let rt = tokio::runtime::Handle::current();
            let _ = std::thread::spawn(move || rt.block_on(db.drop().into_future())).join();
        }),
    }
}
