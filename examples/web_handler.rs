//! An axum handler that holds a per-resource lock for the length of the
//! request: two payments for the same order never run at once, payments for
//! different orders run in parallel.
//!
//! ```sh
//! docker compose up -d mongo   # or any MongoDB 4.4+
//! MONGODB_URI="mongodb://127.0.0.1:27017/?directConnection=true" \
//!     cargo run --example web_handler --features mongo
//! curl -X POST localhost:3000/orders/42/pay
//! ```
//!
//! With `--demo` it serves on a free port, sends five concurrent requests
//! for one order and two for another to itself, prints the answers and
//! exits.

use std::io::{Read, Write};
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use shylock::{AsyncLock, Error, LockOptions, MongoBackend};

/// POST /orders/{id}/pay
async fn pay(Path(order): Path<u64>) -> (StatusCode, String) {
    let lock = AsyncLock::new(format!("orders/{order}")).with_options(
        LockOptions::default()
            .ttl(Duration::from_secs(10))
            .wait_timeout(Some(Duration::from_secs(5))),
    );
    let guard = match lock.acquire().await {
        Ok(guard) => guard,
        Err(Error::Timeout { .. }) => {
            return (
                StatusCode::CONFLICT,
                format!("order {order} is busy, retry later\n"),
            )
        }
        Err(error) => return (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")),
    };
    // Stop if the lock is lost mid-request (e.g. the database was
    // unreachable for longer than the ttl).
    let token = guard.fencing_token();
    let outcome = tokio::select! {
        _ = guard.lost() => Err("lost the order lock"),
        receipt = charge(order, token) => Ok(receipt),
    };
    let released = guard.release().await;
    match (outcome, released) {
        (Ok(receipt), Ok(())) => (StatusCode::OK, receipt),
        (Err(why), _) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        (Ok(_), Err(error)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")),
    }
}

/// Stands in for a payment provider call. A real one would pass `token`
/// along so the provider can refuse a stale holder.
async fn charge(order: u64, token: u64) -> String {
    tokio::time::sleep(Duration::from_millis(100)).await;
    format!("order {order} charged under fencing token {token}\n")
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
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_owned();
    format!("{status}: {body}")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(uri) = std::env::var("MONGODB_URI") else {
        eprintln!(
            "MONGODB_URI is not set. Start MongoDB (e.g. `docker compose up -d mongo`) and run\n  \
             MONGODB_URI=\"mongodb://127.0.0.1:27017/?directConnection=true\" \
             cargo run --example web_handler --features mongo"
        );
        std::process::exit(2);
    };
    let demo = std::env::args().any(|a| a == "--demo");
    shylock::configure(MongoBackend::connect(&uri, "shylock_example").await?)?;

    let app = Router::new().route("/orders/{order}/pay", post(pay));
    let address = if demo {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    };
    let listener = tokio::net::TcpListener::bind(address).await?;
    let port = listener.local_addr()?.port();
    if !demo {
        println!("listening on http://127.0.0.1:{port}; try: curl -X POST localhost:{port}/orders/42/pay");
        axum::serve(listener, app).await?;
        return Ok(());
    }
    tokio::spawn(async move { axum::serve(listener, app).await });
    let started = std::time::Instant::now();
    let requests: Vec<_> = [42, 42, 42, 42, 42, 7, 7]
        .into_iter()
        .map(|order| {
            tokio::task::spawn_blocking(move || {
                post_blocking(port, &format!("/orders/{order}/pay"))
            })
        })
        .collect();
    for request in requests {
        println!("{}", request.await?);
    }
    println!(
        "{:.2} s for 5 payments of order 42 (one at a time, 100 ms each) beside 2 of order 7",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
