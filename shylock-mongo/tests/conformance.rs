//! The conformance suite against a real MongoDB-wire server.
//!
//! Needs `MONGODB_URI` (scripts/test.sh starts a local server, sets it and
//! runs these with `--ignored`). Without it cargo reports them as ignored;
//! run with `--ignored` and no server, they fail and say what is missing.

use std::sync::OnceLock;
use std::time::Duration;

use shylock_core::backend::Backend;
use shylock_core::testkit::{op_deadline, server_url, unique_store_name};
use shylock_core::SharedBackend;
use shylock_mongo::mongodb::{options::ClientOptions, Client};
use shylock_mongo::MongoBackend;

/// One random database per test run.
fn run_database() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| unique_store_name("shylock_test"))
}

async fn client() -> Client {
    let uri = server_url("MONGODB_URI");
    let mut options = ClientOptions::parse(&uri)
        .await
        .expect("invalid MONGODB_URI");
    options.server_selection_timeout = Some(Duration::from_secs(10));
    Client::with_options(options).unwrap()
}

async fn mongo() -> SharedBackend {
    let client = client().await;
    let backend = MongoBackend::builder(client.database(run_database()))
        .build()
        .await
        .expect("could not set up the lock collection");
    backend.into()
}

// The semaphore cases run from semaphore.rs, last: they rewrite one
// document thousands of times, which slows the SecantusDB test server.
#[cfg(not(feature = "testcontainers"))]
shylock_core::conformance_tests!(
    mongo(),
    ignore = "needs MONGODB_URI",
    groups = [locks, queues]
);
#[cfg(feature = "testcontainers")]
shylock_core::conformance_tests!(mongo(), groups = [locks, queues]);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(feature = "testcontainers"), ignore = "needs MONGODB_URI")]
async fn many_backends_starting_at_once_set_up_cleanly() {
    let client = client().await;
    let db = client.database(run_database());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            MongoBackend::builder(db)
                .collection("setup_race")
                .build()
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("concurrent setup failed");
    }
    let names: Vec<String> = db
        .collection::<bson::Document>("setup_race")
        .list_index_names()
        .await
        .unwrap();
    assert!(
        names.iter().any(|n| n == "shylock_expiresAt_ttl"),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(feature = "testcontainers"), ignore = "needs MONGODB_URI")]
async fn documents_have_the_documented_shape() {
    let client = client().await;
    let db = client.database(run_database());
    let backend = MongoBackend::builder(db.clone())
        .collection("shape")
        .build()
        .await
        .unwrap();
    let name = shylock_core::testkit::unique_name("shape");
    let lock = shylock_core::AsyncLock::with_backend(name.clone(), backend);
    let guard = lock.acquire().await.unwrap();
    let doc = db
        .collection::<bson::Document>("shape")
        .find_one(bson::doc! { "_id": &name })
        .await
        .unwrap()
        .expect("no document for the lock");
    assert_eq!(doc.get_str("owner").unwrap(), guard.owner());
    assert!(doc.get_datetime("expiresAt").is_ok());
    assert_eq!(doc.get_i64("fence").unwrap() as u64, guard.fencing_token());
    guard.release().await.unwrap();
    let doc = db
        .collection::<bson::Document>("shape")
        .find_one(bson::doc! { "_id": &name })
        .await
        .unwrap()
        .expect("release must keep the document (its fence)");
    assert!(doc.get("owner").is_none(), "{doc:?}");

    // force_release leaves the documented fields only.
    let guard = lock.acquire().await.unwrap();
    assert!(lock.force_release().await.unwrap());
    assert!(matches!(
        guard.release().await,
        Err(shylock_core::Error::LockLost { .. })
    ));
    let doc = db
        .collection::<bson::Document>("shape")
        .find_one(bson::doc! { "_id": &name })
        .await
        .unwrap()
        .unwrap();
    let mut fields: Vec<&str> = doc.keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(fields, ["_id", "expiresAt", "fence"], "{doc:?}");

    // A name over MAX_PLAIN_ID bytes: digest `_id`, full name in `name`.
    let long = format!("{name}/{}", "y".repeat(shylock_mongo::MAX_PLAIN_ID));
    let guard = shylock_core::AsyncLock::with_backend(long.clone(), lock_backend(&db).await)
        .acquire()
        .await
        .unwrap();
    let doc = db
        .collection::<bson::Document>("shape")
        .find_one(bson::doc! { "_id": shylock_mongo::document_id(&long) })
        .await
        .unwrap()
        .expect("no document under the digest id");
    assert!(
        matches!(doc.get("_id"), Some(bson::Bson::Binary(_))),
        "{doc:?}"
    );
    assert_eq!(doc.get_str("name").unwrap(), long);
    assert_eq!(doc.get_str("owner").unwrap(), guard.owner());
    guard.release().await.unwrap();
}

async fn lock_backend(db: &shylock_mongo::mongodb::Database) -> MongoBackend {
    MongoBackend::builder(db.clone())
        .collection("shape")
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(feature = "testcontainers"), ignore = "needs MONGODB_URI")]
async fn fencing_survives_garbage_collection_of_the_document() {
    let client = client().await;
    let db = client.database(run_database());
    let backend = MongoBackend::builder(db.clone())
        .collection("gc")
        .build()
        .await
        .unwrap();
    let name = shylock_core::testkit::unique_name("gc");
    let lock = shylock_core::AsyncLock::with_backend(name.clone(), backend);
    let mut last = 0;
    for _ in 0..3 {
        let g = lock.acquire().await.unwrap();
        assert!(g.fencing_token() > last);
        last = g.fencing_token();
        g.release().await.unwrap();
        // What the TTL monitor does eventually.
        db.collection::<bson::Document>("gc")
            .delete_one(bson::doc! { "_id": &name })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_unreachable_server_fails_fast_with_a_clear_error() {
    // A port nothing listens on; connect() sets a 5 s selection timeout.
    let started = std::time::Instant::now();
    let err = MongoBackend::connect("mongodb://127.0.0.1:9/?connectTimeoutMS=500", "x")
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        err.kind(),
        Some(shylock_core::ErrorKind::Unavailable),
        "{err}"
    );
    assert!(err.is_transient());
    // The first request is the index creation: a refused connection says
    // so, and gets no hint about platforms that restrict TTL indexes.
    let message = err.to_string();
    assert!(message.contains("refused the connection"), "{message}");
    assert!(!message.contains("Cosmos"), "{message}");
    assert!(!message.contains("restrict TTL"), "{message}");
    assert!(std::error::Error::source(&err).is_some());
}

#[tokio::test]
async fn an_invalid_uri_is_a_clear_error() {
    let err = MongoBackend::connect("not-a-uri", "x").await.unwrap_err();
    assert!(err.to_string().contains("connection string"), "{err}");
    assert_eq!(
        err.kind(),
        Some(shylock_core::ErrorKind::Misconfigured),
        "{err}"
    );
    assert!(!err.is_transient(), "a malformed URI is not transient");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(feature = "testcontainers"), ignore = "needs MONGODB_URI")]
async fn a_release_in_another_process_wakes_waiters_through_the_change_stream() {
    let client = client().await;
    let db = client.database(run_database());
    // Two backends: no in-process signal between them, like two processes.
    let holder_side = MongoBackend::builder(db.clone())
        .collection("watch")
        .share_release_watcher(false)
        .build()
        .await
        .unwrap();
    let waiter_side = MongoBackend::builder(db)
        .collection("watch")
        .share_release_watcher(false)
        .build()
        .await
        .unwrap();
    assert!(
        waiter_side
            .release_watcher_ready(Duration::from_secs(10))
            .await,
        "the change stream did not open"
    );
    let name = shylock_core::testkit::unique_name("watch");
    let holder = shylock_core::AsyncLock::with_backend(name.clone(), holder_side)
        .acquire()
        .await
        .unwrap();
    let counting = shylock_core::testkit::CountingBackend::new(waiter_side);
    // A 60 s backoff: only the change stream can explain a fast handoff.
    let waiter =
        shylock_core::AsyncLock::with_backend(name, SharedBackend::from_arc(counting.clone()))
            .with_options(
                shylock_core::LockOptions::default()
                    .backoff(Duration::from_secs(60), Duration::from_secs(60)),
            );
    let task = tokio::spawn(async move { waiter.acquire().await });
    // Release only once the waiter's first attempt failed and it waits.
    let waiting = shylock_core::testkit::wait_for(Duration::from_secs(10), || {
        let counting = counting.clone();
        async move { (counting.claim_count() >= 1).then_some(()) }
    })
    .await;
    assert!(waiting.is_some(), "the waiter never tried");
    holder.release().await.unwrap();
    let guard = tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("the waiter was not woken by the change stream")
        .unwrap()
        .unwrap();
    guard.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(feature = "testcontainers"), ignore = "needs MONGODB_URI")]
async fn a_release_wakes_only_the_fair_waiter_first_in_line() {
    // The holder's side and the waiters' side: like two processes.
    shylock_core::testkit::a_release_wakes_only_the_first_in_line(
        process_side("turns").await,
        process_side("turns").await,
    )
    .await;
}

/// The first in line leaving a free lock wakes the next one, in another
/// process (its `$pull` bumps `releases`, which the change stream matches).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(feature = "testcontainers"), ignore = "needs MONGODB_URI")]
async fn a_first_waiter_leaving_wakes_the_next_in_another_process() {
    shylock_core::testkit::a_first_waiter_leaving_wakes_the_next(
        process_side("leaving").await,
        process_side("leaving").await,
    )
    .await;
}

/// A handle on `collection` with a change stream of its own, as another
/// process has.
async fn process_side(collection: &str) -> SharedBackend {
    let db = client().await.database(run_database());
    SharedBackend::from(
        MongoBackend::builder(db)
            .collection(collection)
            .share_release_watcher(false)
            .build()
            .await
            .unwrap(),
    )
}

/// Two sides as two processes: a fair waiter behind another, while the
/// change stream runs, sends no claim before its turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(feature = "testcontainers"), ignore = "needs MONGODB_URI")]
async fn a_fair_waiter_behind_others_tries_only_at_its_turn() {
    shylock_core::testkit::a_waiter_behind_others_tries_only_at_its_turn(
        process_side("turn_first").await,
        process_side("turn_first").await,
    )
    .await;
}

/// A client that counts the change streams it opens (`aggregate` with a
/// `$changeStream` stage), as command monitoring sees them.
async fn stream_counting_client() -> (Client, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use shylock_mongo::mongodb::event::{command::CommandEvent, EventHandler};
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut options = ClientOptions::parse(server_url("MONGODB_URI"))
        .await
        .expect("invalid MONGODB_URI");
    let seen = counter.clone();
    options.command_event_handler = Some(EventHandler::callback(move |event| {
        if let CommandEvent::Started(started) = event {
            let opens_stream = started.command_name == "aggregate"
                && format!("{:?}", started.command.get("pipeline")).contains("$changeStream");
            if opens_stream {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }));
    (Client::with_options(options).unwrap(), counter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(feature = "testcontainers"), ignore = "needs MONGODB_URI")]
async fn backends_of_one_process_share_one_change_stream() {
    use std::sync::atomic::Ordering;
    let collection = format!("share{}", uuid::Uuid::new_v4().simple());
    let build = |client: Client, share: bool| {
        let collection = collection.clone();
        async move {
            MongoBackend::builder(client.database(run_database()))
                .collection(collection)
                .share_release_watcher(share)
                .build()
                .await
                .unwrap()
        }
    };
    // Two clients, as two parts of one program might have.
    let ((one, one_streams), (two, two_streams)) = (
        stream_counting_client().await,
        stream_counting_client().await,
    );
    let (a, b) = (
        build(one.clone(), true).await,
        build(two.clone(), true).await,
    );
    assert!(a.release_watcher_ready(Duration::from_secs(10)).await);
    assert!(b.release_watcher_ready(Duration::from_secs(10)).await);
    let opened = one_streams.load(Ordering::SeqCst) + two_streams.load(Ordering::SeqCst);
    assert_eq!(opened, 1, "one stream serves both backends");
    // A release through one wakes a waiter of the other at once, with or
    // without the stream.
    let name = shylock_core::testkit::unique_name("share");
    assert!(a
        .claim(&name, "holder", Duration::from_secs(30), op_deadline())
        .await
        .unwrap()
        .is_some());
    let signal = b.release_signal(&name).unwrap();
    let woken = signal.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    assert!(a.release(&name, "holder", op_deadline()).await.unwrap());
    tokio::time::timeout(Duration::from_secs(10), woken)
        .await
        .expect("the other backend's waiter was not woken");

    // Opting out: a stream of its own, as a separate process has.
    let (three, three_streams) = stream_counting_client().await;
    let c = build(three, false).await;
    assert!(c.release_watcher_ready(Duration::from_secs(10)).await);
    assert_eq!(three_streams.load(Ordering::SeqCst), 1);
    let opened = one_streams.load(Ordering::SeqCst) + two_streams.load(Ordering::SeqCst);
    assert_eq!(opened, 1, "the opted-out backend did not join");
}

/// A client whose commands a `failCommand` fail point can target by
/// `appName`. A server without test commands fails the test, saying how to
/// enable them or leave the test out on purpose (a skip is never a pass).
async fn failpoint_client(app: &str) -> Client {
    let uri = server_url("MONGODB_URI");
    let mut options = ClientOptions::parse(&uri).await.unwrap();
    options.app_name = Some(app.to_owned());
    let client = Client::with_options(options).unwrap();
    let probe = client
        .database("admin")
        .run_command(bson::doc! { "configureFailPoint": "failCommand", "mode": "off" })
        .await;
    if let Err(error) = probe {
        panic!(
            "this fault-injection test needs configureFailPoint, which the server at \
             MONGODB_URI refused ({error}): start mongod with `--setParameter \
             enableTestCommands=1` (docker-compose.yml and the testcontainers setup do), \
             or leave this test out with `--skip rate_limit_errors`"
        );
    }
    client
}

async fn fail_next(client: &Client, app: &str, command: &str, times: i32, code: i32) {
    let data = bson::doc! { "failCommands": [command], "errorCode": code, "appName": app };
    client
        .database("admin")
        .run_command(bson::doc! {
            "configureFailPoint": "failCommand",
            "mode": { "times": times },
            "data": data,
        })
        .await
        .expect("configureFailPoint failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(feature = "testcontainers"), ignore = "needs MONGODB_URI")]
async fn rate_limit_errors_are_retried_and_other_errors_surface() {
    let app = format!("shylock-failpoint-{}", uuid::Uuid::new_v4().simple());
    let client = failpoint_client(&app).await;
    let backend = MongoBackend::builder(client.database(run_database()))
        .collection("faults")
        .build()
        .await
        .unwrap();
    let name = shylock_core::testkit::unique_name("faults");
    // Cosmos DB's "request rate is large" twice, then success.
    fail_next(&client, &app, "findAndModify", 2, 16500).await;
    backend
        .claim(&name, "owner-a", Duration::from_secs(30), op_deadline())
        .await
        .expect("16500 must be retried")
        .expect("a free lock");
    assert!(backend
        .release(&name, "owner-a", op_deadline())
        .await
        .unwrap());
    // Other server errors surface as backend errors with the driver error.
    fail_next(&client, &app, "findAndModify", 1, 2).await;
    let err = backend
        .claim(&name, "owner-c", Duration::from_secs(30), op_deadline())
        .await
        .unwrap_err();
    assert!(matches!(err, shylock_core::Error::Backend { .. }), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(feature = "testcontainers"), ignore = "needs MONGODB_URI")]
async fn foreign_documents_are_taken_over_or_reported_never_a_panic() {
    use bson::{doc, Bson, DateTime};
    let client = client().await;
    let db = client.database(run_database());
    let backend: SharedBackend = MongoBackend::builder(db.clone())
        .collection("foreign")
        .build()
        .await
        .unwrap()
        .into();
    let raw = db.collection::<bson::Document>("foreign");
    let future = DateTime::from_millis(4_000_000_000_000);
    let past = DateTime::from_millis(1_000);
    let free_cases = [
        doc! { "owner": 5, "expiresAt": future, "fence": 7_i64 },
        doc! { "owner": "someone", "expiresAt": "tomorrow", "fence": 7_i64 },
        doc! { "owner": "someone", "expiresAt": Bson::Null, "fence": 7_i64 },
        doc! {},
        doc! { "owner": "someone", "expiresAt": past, "fence": "seven" },
        doc! { "owner": "someone", "expiresAt": past, "fence": 1_i64, "pad": "p".repeat(1 << 20) },
    ];
    for (i, mut d) in free_cases.into_iter().enumerate() {
        let name = shylock_core::testkit::unique_name(&format!("foreign-{i}"));
        d.insert("_id", &name);
        raw.insert_one(d).await.unwrap();
        shylock_core::testkit::takes_over_foreign_record(backend.clone(), &name).await;
    }
    let live_cases = [
        doc! { "owner": "someone", "expiresAt": future, "fence": "seven" },
        // A number where a date belongs: read as ms since the epoch.
        doc! { "owner": "someone", "expiresAt": 4_000_000_000_000_i64, "fence": 7_i64 },
    ];
    for (i, mut d) in live_cases.into_iter().enumerate() {
        let name = shylock_core::testkit::unique_name(&format!("foreign-live-{i}"));
        d.insert("_id", &name);
        raw.insert_one(d).await.unwrap();
        shylock_core::testkit::frees_live_foreign_record(backend.clone(), &name).await;
    }
}

/// Two collections of one database as two shards.
async fn sharded_mongo() -> SharedBackend {
    let client = client().await;
    let db = client.database(run_database());
    let mut shards = Vec::new();
    for collection in ["shard_a", "shard_b"] {
        shards.push(
            MongoBackend::builder(db.clone())
                .collection(collection)
                .build()
                .await
                .expect("could not set up a shard collection"),
        );
    }
    shylock_core::ShardedBackend::new(shards).unwrap().into()
}

mod sharded {
    use super::*;
    #[cfg(not(feature = "testcontainers"))]
    shylock_core::conformance_tests!(
        sharded_mongo(),
        ignore = "needs MONGODB_URI",
        groups = [locks]
    );
    #[cfg(feature = "testcontainers")]
    shylock_core::conformance_tests!(sharded_mongo(), groups = [locks]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(feature = "testcontainers"), ignore = "needs MONGODB_URI")]
async fn reentrant_holds_share_one_lease_and_other_owners_wait() {
    use shylock_core::testkit::CountingBackend;
    let counting = CountingBackend::new(mongo().await);
    let backend = SharedBackend::from(counting.clone());
    let name = shylock_core::testkit::unique_name("reentrant");
    let owner = shylock_core::AsyncReentrantLock::with_backend(&name, backend.clone());
    let outer = owner.acquire().await.unwrap();
    let claims = counting.claim_count();
    let inner = owner.clone().acquire().await.unwrap();
    assert_eq!(
        counting.claim_count(),
        claims,
        "a nested acquire went to the database"
    );
    assert_eq!(inner.fencing_token(), outer.fencing_token());
    let other = shylock_core::AsyncReentrantLock::with_backend(&name, backend);
    assert!(other.try_acquire().await.unwrap().is_none());
    inner.release().await.unwrap();
    assert!(other.try_acquire().await.unwrap().is_none());
    let first_token = outer.fencing_token();
    outer.release().await.unwrap();
    let taken = other
        .acquire_timeout(Duration::from_secs(10))
        .await
        .unwrap()
        .expect("never freed");
    assert!(taken.fencing_token() > first_token);
    taken.release().await.unwrap();
}

/// A line of `MAX_WAITERS` live tickets (written directly, as that many
/// waiters would) refuses new owners with a clear error; the document
/// stays far below MongoDB's 16 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(feature = "testcontainers"), ignore = "needs MONGODB_URI")]
async fn a_full_line_refuses_new_owners() {
    use bson::{doc, DateTime};
    let client = client().await;
    let db = client.database(run_database());
    let backend: SharedBackend = MongoBackend::builder(db.clone())
        .collection("full_line")
        .build()
        .await
        .unwrap()
        .into();
    let name = shylock_core::testkit::unique_name("full-line");
    let far = DateTime::from_millis(4_000_000_000_000);
    let queue: Vec<bson::Document> = (0..shylock_core::MAX_WAITERS)
        .map(|i| doc! { "o": shylock_core::testkit::seeded_owner(i), "e": far })
        .collect();
    db.collection::<bson::Document>("full_line")
        .insert_one(doc! { "_id": &name, "queue": queue })
        .await
        .unwrap();
    shylock_core::testkit::a_full_line_refuses_new_owners(backend, &name).await;
}

/// The TTL index reads `expiresAt`: a document whose line holds live
/// tickets but no holder (created by an enqueue, or released while others
/// wait) keeps `expiresAt` at least at its latest ticket's expiry, so the
/// TTL monitor does not delete the line under its waiters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(feature = "testcontainers"), ignore = "needs MONGODB_URI")]
async fn a_line_without_a_holder_is_kept_from_the_ttl_monitor() {
    use shylock_core::backend::QueueBackend;
    let client = client().await;
    let db = client.database(run_database());
    let backend = MongoBackend::builder(db.clone())
        .collection("ttl_line")
        .build()
        .await
        .unwrap();
    let raw = db.collection::<bson::Document>("ttl_line");
    let expires_at = |name: String| {
        let raw = raw.clone();
        async move {
            raw.find_one(bson::doc! { "_id": name })
                .await
                .unwrap()
                .expect("the line's document")
                .get_datetime("expiresAt")
                .map(|d| d.timestamp_millis())
                .expect("a document with a line has expiresAt for the TTL index")
        }
    };
    let name = shylock_core::testkit::unique_name("ttl-line");
    let ttl = Duration::from_secs(600);
    let before = bson::DateTime::now().timestamp_millis();
    backend
        .enqueue(&name, "waiter", ttl, op_deadline())
        .await
        .unwrap();
    assert!(expires_at(name.clone()).await >= before + 600_000);

    // Held, then released while the ticket lives: the ticket's renewal
    // pushes expiresAt out again (the release set it to now).
    backend
        .claim(&name, "holder", Duration::from_secs(30), op_deadline())
        .await
        .unwrap()
        .unwrap();
    assert!(backend
        .release(&name, "holder", op_deadline())
        .await
        .unwrap());
    let renewed = bson::DateTime::now().timestamp_millis();
    assert!(backend
        .extend_ticket(&name, "waiter", ttl, op_deadline())
        .await
        .unwrap());
    assert!(expires_at(name.clone()).await >= renewed + 600_000);

    // A holder's lease is its own: a ticket never lengthens it.
    let lease = backend
        .claim(&name, "holder2", Duration::from_secs(30), op_deadline())
        .await
        .unwrap()
        .unwrap();
    backend
        .enqueue(&name, "waiter", ttl, op_deadline())
        .await
        .unwrap();
    let stored = expires_at(name.clone()).await;
    let granted = lease
        .expires_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert_eq!(stored, granted, "the lease's expiry is left as granted");
}
