//! `shylock::tower::LockLayer` in an axum service: one payment per order at
//! a time across every replica, without lock code in the handlers.
//!
//! - `POST /orders/{id}/pay` fails fast: a second payment of the same
//!   order while one runs is answered `409 Conflict` with `Retry-After`.
//! - `POST /reports/{id}` waits up to 5 s for the report's lock, then
//!   answers `503` with `Retry-After`.
//!
//! ```sh
//! cargo run --example request_lock --features tower          # SQLite file in the temp dir
//! MONGODB_URI="mongodb://127.0.0.1:27017/?directConnection=true" \
//!     cargo run --example request_lock --features tower,mongo
//! curl -i -X POST localhost:3000/orders/42/pay
//! ```
//!
//! With `--demo` it serves on a free port, sends three concurrent payments
//! of one order and two reports to itself, prints the answers and exits.

use std::io::{Read, Write};
use std::time::Duration;

use axum::extract::{Path, Request};
use axum::routing::post;
use axum::{Extension, Router};
use shylock::tower::{LockLayer, RequestLock};
use shylock::{LockOptions, SharedBackend};

/// The lock name of a request: "/orders/42/pay" -> "orders/42".
fn resource(req: &Request) -> Option<String> {
    let mut parts = req.uri().path().trim_start_matches('/').split('/');
    Some(format!("{}/{}", parts.next()?, parts.next()?))
}

async fn pay(Path(order): Path<u64>, Extension(lock): Extension<RequestLock>) -> String {
    // The fencing token goes along with the write, so a store that checks
    // it refuses this request if its lock was lost meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    format!(
        "order {order} paid under fencing token {}",
        lock.fencing_token()
    )
}

async fn report(Path(id): Path<u64>, Extension(lock): Extension<RequestLock>) -> String {
    tokio::select! {
        _ = lock.lost() => format!("report {id} abandoned: its lock was lost"),
        _ = tokio::time::sleep(Duration::from_millis(200)) => format!("report {id} built"),
    }
}

async fn backend() -> Result<SharedBackend, Box<dyn std::error::Error>> {
    if let Ok(uri) = std::env::var("MONGODB_URI") {
        #[cfg(feature = "mongo")]
        return Ok(shylock::MongoBackend::connect(&uri, "shylock_example")
            .await?
            .into());
        #[cfg(not(feature = "mongo"))]
        return Err(format!(
            "MONGODB_URI is set ({uri}) but this build has no MongoDB backend: \
             run with --features tower,mongo"
        )
        .into());
    }
    let path = std::env::temp_dir().join("shylock-request-lock-example.db");
    Ok(shylock::SqliteBackend::open(path)?.into())
}

fn post_blocking(port: u16, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or_default();
    let retry = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("retry-after:"))
        .map(|l| format!(" ({})", l.trim()))
        .unwrap_or_default();
    format!("{path}: {status}{retry} {}", body.trim())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = std::env::args().any(|a| a == "--demo");
    shylock::configure_with(
        backend().await?,
        LockOptions::default().ttl(Duration::from_secs(10)),
    )?;

    let app = Router::new()
        .route(
            "/orders/{order}/pay",
            post(pay).layer(LockLayer::new(resource)),
        )
        .route(
            "/reports/{id}",
            post(report).layer(LockLayer::new(resource).wait_up_to(Duration::from_secs(5))),
        );
    let address = if demo {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    };
    let listener = tokio::net::TcpListener::bind(address).await?;
    let port = listener.local_addr()?.port();
    if !demo {
        println!("listening on http://127.0.0.1:{port}; try: curl -i -X POST localhost:{port}/orders/42/pay");
        axum::serve(listener, app).await?;
        return Ok(());
    }
    tokio::spawn(async move { axum::serve(listener, app).await });
    let paths = [
        "/orders/42/pay",
        "/orders/42/pay",
        "/orders/42/pay",
        "/reports/1",
        "/reports/1",
    ];
    let requests: Vec<_> = paths
        .into_iter()
        .map(|path| tokio::task::spawn_blocking(move || post_blocking(port, path)))
        .collect();
    for request in requests {
        println!("{}", request.await?);
    }
    Ok(())
}
