//! `shylock::tower::LockLayer` in front of a real axum server on SQLite,
//! driven over HTTP by a hyper client: one handler per key at a time, the
//! documented answers and headers, the lock freed after a dropped
//! connection or a panicking handler, and the lost signal in the handler.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::routing::get;
use axum::{Extension, Router};
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use shylock::tower::{LockLayer, RequestLock};
use shylock::{AsyncLock, LockOptions, SharedBackend, SqliteBackend};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

#[derive(Default)]
struct Inside {
    now: HashMap<String, u32>,
    max: HashMap<String, u32>,
}

struct App {
    inside: Mutex<Inside>,
    entered: mpsc::UnboundedSender<String>,
    gate: Notify,
}

/// GET /work/{key}?hold: counts handlers inside per key; with `hold` it
/// stays until the test opens the gate, else it works 30 ms.
async fn work(
    State(app): State<Arc<App>>,
    Path(key): Path<String>,
    Extension(lock): Extension<RequestLock>,
    req: Request,
) -> String {
    {
        let mut inside = app.inside.lock().unwrap();
        let now = inside.now.entry(key.clone()).or_default();
        *now += 1;
        let now = *now;
        let max = inside.max.entry(key.clone()).or_default();
        *max = (*max).max(now);
    }
    app.entered.send(key.clone()).unwrap();
    if req.uri().query() == Some("hold") {
        app.gate.notified().await;
    } else {
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    *app.inside.lock().unwrap().now.get_mut(&key).unwrap() -= 1;
    lock.fencing_token().to_string()
}

async fn boom(State(app): State<Arc<App>>, Path(key): Path<String>) -> String {
    app.entered.send(key).unwrap();
    panic!("handler panics while holding the request's lock");
}

async fn watch_lost(
    State(app): State<Arc<App>>,
    Extension(lock): Extension<RequestLock>,
) -> &'static str {
    app.entered.send(lock.name().to_owned()).unwrap();
    tokio::select! {
        _ = lock.lost() => "lost",
        _ = tokio::time::sleep(Duration::from_secs(20)) => "kept",
    }
}

struct Server {
    addr: SocketAddr,
    app: Arc<App>,
    entered: mpsc::UnboundedReceiver<String>,
    backend: SharedBackend,
}

fn backend() -> SharedBackend {
    let path = std::env::temp_dir().join(format!("shylock-tower-{}.db", uuid::Uuid::new_v4()));
    SqliteBackend::open(path).unwrap().into()
}

/// "/work/a" -> "t/a": the lock name is the last path segment; "/free/.."
/// takes no lock.
fn name_of(req: &Request) -> Option<String> {
    if req.uri().path().starts_with("/free/") {
        return None;
    }
    let key = req.uri().path().rsplit('/').next()?;
    (!key.is_empty()).then(|| format!("t/{key}"))
}

type Layer = LockLayer<fn(&Request) -> Option<String>>;

async fn serve(layer: impl FnOnce(Layer) -> Layer) -> Server {
    let backend = backend();
    let (tx, entered) = mpsc::unbounded_channel();
    let app = Arc::new(App {
        inside: Mutex::default(),
        entered: tx,
        gate: Notify::new(),
    });
    let base = LockLayer::new(name_of as fn(&Request) -> Option<String>)
        .backend(backend.clone())
        .options(LockOptions::default().ttl(Duration::from_secs(30)));
    let router = Router::new()
        .route("/work/{key}", get(work))
        .route("/boom/{key}", get(boom))
        .route("/lost/{key}", get(watch_lost))
        .route("/free/{key}", get(|| async { "no lock needed" }))
        .layer(layer(base))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Server {
        addr,
        app,
        entered,
        backend,
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// One GET on a connection of its own.
async fn get_path(addr: SocketAddr, path: impl Into<String>) -> Result<Answer, hyper::Error> {
    let path = path.into();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = http::Request::get(path.as_str())
        .header(http::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(req).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    })
}

fn retry_after(answer: &Answer) -> u64 {
    answer.headers[http::header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Waits (bounded) until the lock is free, as seen from the database.
async fn assert_freed(backend: &SharedBackend, name: &str) {
    let lock = AsyncLock::with_backend(name, backend.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while lock.is_locked().await.unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} still held 5 s later (its ttl is 30 s)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_handler_inside_per_key() {
    let server = serve(|l| l.wait_up_to(Duration::from_secs(20))).await;
    let mut requests = Vec::new();
    for i in 0..16 {
        let path = format!("/work/{}", if i % 2 == 0 { "a" } else { "b" });
        requests.push(tokio::spawn(get_path(server.addr, path)));
    }
    let mut tokens: HashMap<char, Vec<u64>> = HashMap::new();
    for (i, r) in requests.into_iter().enumerate() {
        let answer = r.await.unwrap().unwrap();
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "request {i} waited and was served"
        );
        let key = if i % 2 == 0 { 'a' } else { 'b' };
        tokens
            .entry(key)
            .or_default()
            .push(answer.body.parse().unwrap());
    }
    let inside = server.app.inside.lock().unwrap();
    assert_eq!(inside.max["a"], 1, "two handlers inside for key a at once");
    assert_eq!(inside.max["b"], 1, "two handlers inside for key b at once");
    for (key, mut t) in tokens {
        let n = t.len();
        t.sort();
        t.dedup();
        assert_eq!(
            t.len(),
            n,
            "every holder of {key} has its own fencing token"
        );
    }
}

#[tokio::test]
async fn held_key_is_rejected_with_409_and_retry_after() {
    let mut server = serve(|l| l).await;
    let holder = tokio::spawn(get_path(server.addr, "/work/k?hold"));
    assert_eq!(server.entered.recv().await.unwrap(), "k");

    let busy = get_path(server.addr, "/work/k").await.unwrap();
    assert_eq!(busy.status, StatusCode::CONFLICT);
    let secs = retry_after(&busy);
    assert!(
        (1..=30).contains(&secs),
        "Retry-After {secs} is the holder's remaining lease"
    );
    assert!(busy.body.is_empty());

    // Another key is not held; a request without a lock name passes.
    assert_eq!(
        get_path(server.addr, "/work/other").await.unwrap().status,
        StatusCode::OK
    );
    assert_eq!(
        get_path(server.addr, "/").await.unwrap().status,
        StatusCode::NOT_FOUND
    );

    server.app.gate.notify_one();
    assert_eq!(holder.await.unwrap().unwrap().status, StatusCode::OK);
    // Released before the response left: the next request gets in.
    assert_eq!(
        get_path(server.addr, "/work/k").await.unwrap().status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn reject_status_is_configurable() {
    let mut server = serve(|l| l.reject_with(StatusCode::LOCKED)).await;
    let holder = tokio::spawn(get_path(server.addr, "/work/k?hold"));
    server.entered.recv().await.unwrap();
    let busy = get_path(server.addr, "/work/k").await.unwrap();
    assert_eq!(busy.status, StatusCode::LOCKED);
    assert!(retry_after(&busy) >= 1);
    server.app.gate.notify_one();
    holder.await.unwrap().unwrap();
}

#[tokio::test]
async fn wait_policy_answers_503_with_retry_after_when_it_runs_out() {
    let mut server = serve(|l| l.wait_up_to(Duration::from_millis(300))).await;
    let holder = tokio::spawn(get_path(server.addr, "/work/k?hold"));
    server.entered.recv().await.unwrap();
    let started = std::time::Instant::now();
    let busy = get_path(server.addr, "/work/k").await.unwrap();
    assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "it waited first"
    );
    let secs = retry_after(&busy);
    assert!((1..=30).contains(&secs), "Retry-After {secs}");
    server.app.gate.notify_one();
    holder.await.unwrap().unwrap();
}

#[tokio::test]
async fn lock_is_free_after_the_client_disconnects() {
    let mut server = serve(|l| l).await;
    let client = tokio::spawn(get_path(server.addr, "/work/gone?hold"));
    server.entered.recv().await.unwrap();
    assert!(AsyncLock::with_backend("t/gone", server.backend.clone())
        .is_locked()
        .await
        .unwrap());
    // Dropping the client task closes its connection; the server drops
    // the request's future and with it the guard.
    client.abort();
    let _ = client.await;
    assert_freed(&server.backend, "t/gone").await;
    assert_eq!(
        get_path(server.addr, "/work/gone").await.unwrap().status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn lock_is_free_after_the_handler_panics() {
    let mut server = serve(|l| l).await;
    let answer = get_path(server.addr, "/boom/p").await;
    server.entered.recv().await.unwrap();
    assert!(
        answer.is_err(),
        "the connection of a panicking handler is closed"
    );
    assert_freed(&server.backend, "t/p").await;
}

#[tokio::test]
async fn handler_sees_a_lost_lease_through_the_extension() {
    // A short ttl: renewal (every ttl / 3) notices the loss soon.
    let mut server = serve(|l| l.options(LockOptions::default().ttl(Duration::from_secs(3)))).await;
    let client = tokio::spawn(get_path(server.addr, "/lost/l"));
    server.entered.recv().await.unwrap();
    let removed = AsyncLock::with_backend("t/l", server.backend.clone())
        .force_release()
        .await
        .unwrap();
    assert!(removed);
    let answer = client.await.unwrap().unwrap();
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "the layer passes the handler's answer on"
    );
    assert_eq!(answer.body, "lost");
}

#[tokio::test]
async fn requests_without_a_name_pass_unlocked() {
    let server = serve(|l| l).await;
    let answer = get_path(server.addr, "/free/x").await.unwrap();
    assert_eq!(answer.body, "no lock needed");
}

#[test]
fn bounds() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<RequestLock>();
    send_sync::<Layer>();
}
