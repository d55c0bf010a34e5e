//! The ArangoDB backend against a fake server that answers as ArangoDB
//! documents (see `fake/mod.rs`): the whole conformance suite, plus
//! authentication, errors and the conflict numbers.
//!
//! These tests show the backend speaks the documented protocol; they are
//! not a substitute for the real-server suite (`real_server.rs`).

mod fake;

use std::time::Duration;

use fake::{FakeArango, Fault};
use shylock_arango::{queries, ArangoBackend};
use shylock_core::backend::Backend;
use shylock_core::testkit::op_deadline;
use shylock_core::{AsyncLock, Error, ErrorKind, SharedBackend};

async fn backend_on(fake: &FakeArango) -> ArangoBackend {
    ArangoBackend::builder(fake.url())
        .basic_auth("root", "secret")
        .database("locks")
        .build()
        .await
        .expect("setup against the fake server")
}

async fn fake_backend() -> SharedBackend {
    let fake = FakeArango::start().await;
    backend_on(&fake).await.into()
}

shylock_core::conformance_tests!(fake_backend());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jwt_login_works_and_debug_hides_the_password() {
    let fake = FakeArango::start().await;
    let builder = ArangoBackend::builder(fake.url())
        .jwt("root", "secret")
        .database("locks");
    assert!(!format!("{builder:?}").contains("secret"));
    let backend = builder.build().await.unwrap();
    assert!(!format!("{backend:?}").contains("secret"));
    shylock_core::testkit::try_acquire_while_held(backend.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_jwt_is_renewed_and_the_held_lock_kept() {
    let fake = FakeArango::start().await;
    let backend = ArangoBackend::builder(fake.url())
        .jwt("root", "secret")
        .database("locks")
        .build()
        .await
        .unwrap();
    let lock = AsyncLock::with_backend("jwt/expiry", backend.clone());
    let guard = lock.acquire().await.unwrap();
    assert_eq!(fake.logins(), 1);
    // The server's session timeout passes: every token is refused now.
    fake.expire_tokens();
    guard.extend(Duration::from_secs(30)).await.unwrap();
    assert_eq!(fake.logins(), 2, "the backend did not log in again");
    assert!(lock.try_acquire().await.unwrap().is_none());
    fake.expire_tokens();
    // Several operations at once log in once between them.
    let (a, b, c) = tokio::join!(lock.is_locked(), lock.inspect(), lock.is_locked());
    assert!(a.unwrap() && b.unwrap().is_some() && c.unwrap());
    assert_eq!(fake.logins(), 3);
    guard.release().await.unwrap();
}

#[tokio::test]
async fn basic_auth_is_not_affected_by_token_expiry() {
    let fake = FakeArango::start().await;
    let backend = backend_on(&fake).await;
    fake.expire_tokens(); // no effect on basic auth
    assert!(!AsyncLock::with_backend("basic", backend)
        .is_locked()
        .await
        .unwrap());
}

#[tokio::test]
async fn urls_the_client_cannot_use_are_invalid_options() {
    for url in [
        "not a url",
        "localhost:8529",
        "ftp://localhost:8529",
        "http://localhost:8529/arango",
        "http://localhost:8529/?x=1",
        "http://root:secret@localhost:8529",
    ] {
        let err = ArangoBackend::builder(url).build().await.unwrap_err();
        assert!(matches!(err, Error::InvalidOptions { .. }), "{url}: {err}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}

#[tokio::test]
async fn a_server_hiding_its_product_header_is_a_clear_error() {
    let fake = FakeArango::start().await;
    fake.hide_product_header(true);
    let err = ArangoBackend::builder(fake.url())
        .basic_auth("root", "secret")
        .database("locks")
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::Misconfigured), "{err}");
    assert!(
        err.to_string().contains("--http.hide-product-header"),
        "{err}"
    );
    // With a trailing slash the URL is the same server.
    fake.hide_product_header(false);
    ArangoBackend::builder(format!("{}/", fake.url()))
        .basic_auth("root", "secret")
        .database("locks")
        .build()
        .await
        .unwrap();
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error() {
    let fake = FakeArango::start().await;
    for builder in [
        ArangoBackend::builder(fake.url()).basic_auth("root", "wrong"),
        ArangoBackend::builder(fake.url()).jwt("root", "wrong"),
        ArangoBackend::builder(fake.url()),
    ] {
        let err = builder.database("locks").build().await.unwrap_err();
        assert!(matches!(err, Error::Backend { .. }));
        assert!(std::error::Error::source(&err).is_some());
        let text = err.to_string();
        assert!(
            text.contains("credentials") || text.contains("failed"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn an_unknown_database_is_a_clear_error() {
    let fake = FakeArango::start().await;
    let err = ArangoBackend::builder(fake.url())
        .basic_auth("root", "secret")
        .database("nope")
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("\"nope\""), "{err}");
}

#[tokio::test]
async fn a_dead_server_gives_an_error_not_a_hang() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let started = std::time::Instant::now();
    let err = ArangoBackend::builder(url)
        .request_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(err, Error::Backend { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_processes_setting_up_at_once_is_fine() {
    let fake = FakeArango::start().await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let url = fake.url();
            tokio::spawn(async move {
                ArangoBackend::builder(url)
                    .basic_auth("root", "secret")
                    .database("locks")
                    .build()
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await
            .unwrap()
            .expect("concurrent setup failed (1207 must be tolerated)");
    }
}

#[tokio::test]
async fn a_conflict_on_acquire_is_retried_and_only_a_lasting_one_means_held() {
    let fake = FakeArango::start().await;
    let backend = backend_on(&fake).await;
    for (status, num) in [(409, 1210), (409, 1200)] {
        let name = format!("race-{num}");
        fake.inject(Fault {
            query: queries::ACQUIRE,
            status,
            error_num: num,
            message: "injected",
        });
        let got = backend
            .claim(&name, "me", Duration::from_secs(5), op_deadline())
            .await
            .unwrap();
        assert!(
            got.is_some(),
            "after {num}, the free lock is won on a retry"
        );
        // A conflict on every try until the retries run out reads as held.
        for _ in 0..20 {
            fake.inject(Fault {
                query: queries::ACQUIRE,
                status,
                error_num: num,
                message: "injected",
            });
        }
        let got = backend
            .claim(&name, "other", Duration::from_secs(5), op_deadline())
            .await
            .unwrap();
        assert!(
            got.is_none(),
            "a lasting {num} must mean held, not an error"
        );
    }
}

/// Ticket writes (enqueue, renewals) on a free lock's document conflict
/// with claims of it; the claims are retried, so none reports the free
/// lock as held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_writes_do_not_make_a_free_lock_look_held() {
    use shylock_core::backend::QueueBackend;
    let fake = FakeArango::start().await;
    let backend = backend_on(&fake).await;
    let ttl = Duration::from_secs(30);
    for round in 0..40 {
        let name = format!("busy-line-{round}");
        let (line, claimer) = (backend.clone(), backend.clone());
        let (n1, n2) = (name.clone(), name.clone());
        let tickets = tokio::spawn(async move {
            for i in 0..3 {
                line.enqueue(&n1, &format!("w{i}"), ttl, op_deadline())
                    .await
                    .unwrap();
            }
        });
        let claim = tokio::spawn(async move {
            claimer
                .claim(&n2, "holder", ttl, op_deadline())
                .await
                .unwrap()
        });
        tickets.await.unwrap();
        assert!(
            claim.await.unwrap().is_some(),
            "round {round}: a plain claim of the free lock was answered \"held\""
        );
    }
}

#[tokio::test]
async fn a_write_conflict_on_release_is_retried() {
    let fake = FakeArango::start().await;
    let backend = backend_on(&fake).await;
    backend
        .claim("conflict", "me", Duration::from_secs(30), op_deadline())
        .await
        .unwrap()
        .unwrap();
    fake.inject(Fault {
        query: queries::RELEASE,
        status: 409,
        error_num: 1200,
        message: "conflict",
    });
    assert!(backend
        .release("conflict", "me", op_deadline())
        .await
        .unwrap());
    assert!(backend
        .inspect("conflict", op_deadline())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn other_server_errors_are_backend_errors_with_source() {
    let fake = FakeArango::start().await;
    let backend = backend_on(&fake).await;
    fake.inject(Fault {
        query: queries::INSPECT,
        status: 503,
        error_num: 503,
        message: "service unavailable",
    });
    let err = backend.inspect("x", op_deadline()).await.unwrap_err();
    assert!(matches!(
        err,
        Error::Backend {
            backend: "arangodb",
            ..
        }
    ));
    assert_eq!(err.kind(), Some(ErrorKind::Unavailable));
    assert!(err.is_transient());
    assert!(std::error::Error::source(&err)
        .unwrap()
        .to_string()
        .contains("service unavailable"));
}

#[tokio::test]
async fn documents_have_the_documented_shape_and_keep_their_fence() {
    let fake = FakeArango::start().await;
    let backend = backend_on(&fake).await;
    let lock = AsyncLock::with_backend("orders/42 🔒", backend.clone());
    let guard = lock.acquire().await.unwrap();
    let docs = fake.documents("locks", "shylock");
    assert_eq!(docs.len(), 1);
    let doc = &docs[0];
    assert_eq!(doc["_key"], shylock_arango::document_key("orders/42 🔒"));
    assert_eq!(doc["name"], "orders/42 🔒");
    assert_eq!(doc["owner"], guard.owner());
    assert_eq!(doc["sortKey"], shylock_arango::sort_key("orders/42 🔒"));
    assert!(
        doc["expiresAt"].as_f64().unwrap() > 1e9,
        "expiresAt is in seconds"
    );
    let first = guard.fencing_token();
    guard.release().await.unwrap();
    assert!(fake.documents("locks", "shylock")[0].get("owner").is_none());
    // After the TTL index removed the document, tokens still increase.
    fake.garbage_collect("locks", "shylock");
    let again = lock.acquire().await.unwrap();
    assert!(again.fencing_token() > first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_documents_are_taken_over_or_reported_never_a_panic() {
    use serde_json::json;
    let fake = FakeArango::start().await;
    let backend: SharedBackend = backend_on(&fake).await.into();
    let future = 4_000_000_000_000_i64;
    let free_cases = [
        json!({ "owner": 5, "expiresAtMs": future, "fence": 7 }),
        json!({ "owner": "someone", "expiresAtMs": "tomorrow", "fence": 7 }),
        json!({ "owner": "someone", "fence": 7 }),
        json!({}),
        json!({ "owner": "someone", "expiresAtMs": 1, "fence": "seven" }),
        json!({ "owner": "someone", "expiresAtMs": 1, "fence": 1, "pad": "p".repeat(1 << 20) }),
    ];
    for (i, doc) in free_cases.into_iter().enumerate() {
        let name = format!("foreign-{i}");
        let serde_json::Value::Object(doc) = doc else {
            unreachable!()
        };
        fake.put_document(
            "locks",
            "shylock",
            &shylock_arango::document_key(&name),
            doc,
        );
        shylock_core::testkit::takes_over_foreign_record(backend.clone(), &name).await;
    }
    let name = "foreign-live";
    let serde_json::Value::Object(doc) =
        json!({ "owner": "someone", "expiresAtMs": future, "fence": "seven", "name": name })
    else {
        unreachable!()
    };
    fake.put_document("locks", "shylock", &shylock_arango::document_key(name), doc);
    shylock_core::testkit::frees_live_foreign_record(backend, name).await;
}

/// A program without async builds the backend with `build_blocking` and
/// uses blocking locks; the client lives on shylock's background runtime,
/// so it keeps working after the thread that built it is gone.
#[test]
fn a_program_without_async_builds_the_backend_blocking() {
    // The fake server needs a runtime of its own; the program below does not.
    let server = tokio::runtime::Runtime::new().unwrap();
    let fake = server.block_on(FakeArango::start());
    let url = fake.url();
    let backend = std::thread::spawn(move || {
        ArangoBackend::builder(url)
            .jwt("root", "secret")
            .database("locks")
            .build_blocking()
    })
    .join()
    .unwrap()
    .expect("build_blocking against the fake server");
    assert!(tokio::runtime::Handle::try_current().is_err());
    let lock = shylock_core::Lock::with_backend("blocking/arango", backend);
    let guard = lock.acquire().unwrap();
    assert!(lock.try_acquire().unwrap().is_none());
    guard.release().unwrap();
    assert!(!lock.is_locked().unwrap());
    drop(fake);
}

/// A line of `MAX_WAITERS` live tickets (written directly, as that many
/// waiters would) refuses new owners with a clear error.
#[tokio::test]
async fn a_full_line_refuses_new_owners() {
    use serde_json::json;
    let fake = FakeArango::start().await;
    let backend = backend_on(&fake).await;
    let name = "full-line";
    let far = 4_000_000_000_000_i64;
    let queue: Vec<serde_json::Value> = (0..shylock_core::MAX_WAITERS)
        .map(|i| json!({ "owner": shylock_core::testkit::seeded_owner(i), "expiresAtMs": far }))
        .collect();
    let serde_json::Value::Object(doc) = json!({ "name": name, "queue": queue }) else {
        unreachable!()
    };
    fake.put_document("locks", "shylock", &shylock_arango::document_key(name), doc);
    shylock_core::testkit::a_full_line_refuses_new_owners(backend.into(), name).await;
}

/// The TTL index reads `expiresAt`: a line's tickets keep it at least at
/// their expiry, also after a release set it to now, so the TTL monitor
/// does not remove a line under its live waiters.
#[tokio::test]
async fn a_line_keeps_its_document_from_the_ttl_monitor() {
    use shylock_core::backend::QueueBackend;
    let fake = FakeArango::start().await;
    let backend = backend_on(&fake).await;
    let ttl = Duration::from_secs(600);
    let ttl_field = |fake: &FakeArango| {
        fake.documents("locks", "shylock")
            .iter()
            .find(|d| d.get("name").and_then(|n| n.as_str()) == Some("ttl-line"))
            .and_then(|d| d.get("expiresAt").and_then(|e| e.as_f64()))
            .expect("the line's document has the TTL field")
    };
    let now_s = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let before = now_s();
    backend
        .enqueue("ttl-line", "waiter", ttl, op_deadline())
        .await
        .unwrap();
    assert!(ttl_field(&fake) >= before + 599.0);
    backend
        .claim("ttl-line", "holder", Duration::from_secs(5), op_deadline())
        .await
        .unwrap()
        .unwrap();
    assert!(backend
        .release("ttl-line", "holder", op_deadline())
        .await
        .unwrap());
    let renewed = now_s();
    assert!(backend
        .extend_ticket("ttl-line", "waiter", ttl, op_deadline())
        .await
        .unwrap());
    assert!(ttl_field(&fake) >= renewed + 599.0);
}

/// An application's fenced write to its own collection, sent as an
/// application would (its own HTTP call), answered by the fake as ArangoDB
/// documents AQL: a stale holder's write is refused after a newer holder
/// wrote. Shows the fragments compose into a query with the declared bind
/// parameters; the real-server suite is where AQL itself is checked.
#[tokio::test]
async fn fenced_write_of_a_stale_holder_is_refused() {
    use serde_json::{json, Map};
    let fake = FakeArango::start().await;
    let backend = backend_on(&fake).await;
    fake.put_document(
        "locks",
        "accounts",
        "42",
        Map::from_iter([("balance".into(), json!(0))]),
    );
    let http = reqwest::Client::new();
    let write = |balance: i64, token: u64| {
        let request = http
            .post(format!("{}/_db/locks/_api/cursor", fake.url()))
            .basic_auth("root", Some("secret"))
            .body(
                json!({
                    "query": fake::fenced_write_query(),
                    "bindVars": { "@coll": "accounts", "key": "42", "balance": balance, "fence": token },
                })
                .to_string(),
            );
        async move {
            let body = request.send().await.unwrap().bytes().await.unwrap();
            let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(answer["error"], false, "{answer}");
            answer["result"].as_array().unwrap().len() == 1
        }
    };
    let lock = AsyncLock::with_backend("accounts/42", backend);
    let stale = lock.acquire().await.unwrap();
    assert!(write(10, stale.fencing_token()).await);
    assert!(lock.force_release().await.unwrap());
    let newer = lock.acquire().await.unwrap();
    assert!(newer.fencing_token() > stale.fencing_token());
    assert!(write(20, newer.fencing_token()).await);
    assert!(write(25, newer.fencing_token()).await, "same holder again");
    assert!(
        !write(99, stale.fencing_token()).await,
        "stale write refused"
    );
    let doc = &fake.documents("locks", "accounts")[0];
    assert_eq!(doc["balance"], 25);
    assert_eq!(doc["fence"], json!(newer.fencing_token()));
}
