//! [`FaultProxy`]: a TCP proxy that injects network faults.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A fault-injecting TCP proxy on a loopback port, between a client and a
/// server. Dropping it closes the listener and every connection.
///
/// Point a backend at [`FaultProxy::addr`] instead of the server, then:
/// - [`stall`](FaultProxy::stall): stop forwarding bytes while keeping every
///   connection open, so in-flight requests hang with no error and no reset
///   (a stalled server or a black-holed network path);
/// - [`cut`](FaultProxy::cut): close every open connection at once;
/// - [`set_delay`](FaultProxy::set_delay): add latency to every chunk;
/// - [`refuse`](FaultProxy::refuse): close new connections as soon as
///   they arrive (a server that is down).
///
/// Works for any backend that talks TCP (MongoDB, ArangoDB over HTTP).
///
/// ```
/// use shylock_core::testkit::FaultProxy;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let proxy = FaultProxy::start(server.local_addr()?).await?;
/// let client = tokio::net::TcpStream::connect(proxy.addr()).await?;
/// proxy.stall();
/// // ... requests through `client` now hang ...
/// proxy.resume();
/// # drop((client, server));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    control: Arc<Control>,
    accept: JoinHandle<()>,
}

#[derive(Debug)]
struct Control {
    upstream: SocketAddr,
    stalled: watch::Sender<bool>,
    /// Bumped by `cut`: every connection opened before closes.
    generation: watch::Sender<u64>,
    delay: Mutex<Duration>,
    refuse: AtomicBool,
    accepted: AtomicU64,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let control = Arc::new(Control {
            upstream,
            stalled: watch::channel(false).0,
            generation: watch::channel(0).0,
            delay: Mutex::new(Duration::ZERO),
            refuse: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, control.clone()));
        Ok(FaultProxy {
            addr,
            control,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops forwarding bytes in both directions; connections stay open and
    /// new ones are accepted, but nothing gets through until
    /// [`resume`](Self::resume).
    pub fn stall(&self) {
        self.control.stalled.send_replace(true);
    }

    /// Forwards again, including whatever was held back while stalled.
    pub fn resume(&self) {
        self.control.stalled.send_replace(false);
    }

    /// Closes every connection open now (both sides see the close); later
    /// connections work as before.
    pub fn cut(&self) {
        self.control.generation.send_modify(|g| *g += 1);
    }

    /// Delays each forwarded chunk by `delay` (zero: no delay).
    pub fn set_delay(&self, delay: Duration) {
        *self.control.delay.lock().unwrap_or_else(|p| p.into_inner()) = delay;
    }

    /// While `true`, new connections are closed as soon as they arrive.
    pub fn refuse(&self, refuse: bool) {
        self.control.refuse.store(refuse, Ordering::SeqCst);
    }

    /// How many connections the proxy has accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.control.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn accept_loop(listener: TcpListener, control: Arc<Control>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        control.accepted.fetch_add(1, Ordering::SeqCst);
        if control.refuse.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        tokio::spawn(connection(client, control.clone()));
    }
}

async fn connection(client: TcpStream, control: Arc<Control>) {
    let mut generation = control.generation.subscribe();
    generation.borrow_and_update();
    let Ok(server) = TcpStream::connect(control.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        _ = pump(client_read, server_write, &control) => {}
        _ = pump(server_read, client_write, &control) => {}
        _ = generation.changed() => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: &Control,
) {
    let mut stalled = control.stalled.subscribe();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Nothing is read while stalled, so the sender's requests pile up
        // in the socket buffers, as on a path that stopped delivering.
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let delay = *control.delay.lock().unwrap_or_else(|p| p.into_inner());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        // A chunk read just before a stall is held until it ends.
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        s.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await?;
        Ok(buf.to_vec())
    }

    #[tokio::test]
    async fn forwards_stalls_resumes_and_cuts() {
        let proxy = FaultProxy::start(echo_server().await).await.unwrap();
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut s).await.unwrap(), b"ping");

        proxy.stall();
        let hung = tokio::time::timeout(Duration::from_millis(200), round_trip(&mut s)).await;
        assert!(hung.is_err(), "a stalled proxy must not answer");
        proxy.resume();
        // The stalled request's answer arrives after the resume.
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
            .await
            .expect("no answer after resume")
            .unwrap();
        assert_eq!(&buf, b"ping");

        proxy.cut();
        let mut buf = [0u8; 4];
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("a cut connection must close");
        assert!(matches!(closed, Ok(0) | Err(_)));

        let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut again).await.unwrap(), b"ping");

        proxy.refuse(true);
        let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(5), round_trip(&mut refused))
            .await
            .expect("a refused connection must close");
        assert!(r.is_err());
        assert!(proxy.connections_accepted() >= 3);
    }
}
