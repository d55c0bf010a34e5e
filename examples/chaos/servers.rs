//! Database servers a chaos run starts, kills (no shutdown) and starts again
//! on the same port with the same data: SecantusDB (a MongoDB wire-protocol
//! server) with an on-disk store, and a throwaway PostgreSQL cluster.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

#[cfg(feature = "mongo")]
use tokio::process::Child;
use tokio::process::Command;

/// A server on a fixed loopback port.
pub(crate) enum Server {
    #[cfg(feature = "mongo")]
    Secantus(Secantus),
    #[cfg(feature = "postgres")]
    Postgres(Cluster),
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

async fn wait_for_port(port: u16, dir: &Path) -> Result<(), String> {
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < until {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("the server did not start; see {}", dir.display()))
}

impl Server {
    /// SecantusDB at `binary` with its store in `dir/mongo`.
    #[cfg(feature = "mongo")]
    pub(crate) async fn secantus(binary: &str, dir: &Path) -> Result<Server, String> {
        let mut server = Secantus {
            port: free_port()?,
            dir: dir.join("mongo"),
            binary: binary.to_owned(),
            child: None,
        };
        std::fs::create_dir_all(&server.dir).map_err(|e| e.to_string())?;
        server.start().await?;
        Ok(Server::Secantus(server))
    }

    /// A PostgreSQL cluster made with the binaries in `bin` in `dir/pg`.
    #[cfg(feature = "postgres")]
    pub(crate) async fn postgres(bin: &str, dir: &Path) -> Result<Server, String> {
        Ok(Server::Postgres(Cluster::create(bin, dir).await?))
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        let port = match self {
            #[cfg(feature = "mongo")]
            Server::Secantus(s) => s.port,
            #[cfg(feature = "postgres")]
            Server::Postgres(c) => c.port,
        };
        ([127, 0, 0, 1], port).into()
    }

    /// Starts the server (again) on its port and waits until it accepts.
    pub(crate) async fn start(&mut self) -> Result<(), String> {
        match self {
            #[cfg(feature = "mongo")]
            Server::Secantus(s) => s.start().await,
            #[cfg(feature = "postgres")]
            Server::Postgres(c) => c.start().await,
        }
    }

    /// Kills the server without a shutdown.
    pub(crate) async fn crash(&mut self) {
        match self {
            #[cfg(feature = "mongo")]
            Server::Secantus(s) => s.crash().await,
            #[cfg(feature = "postgres")]
            Server::Postgres(c) => c.crash().await,
        }
    }
}

/// SecantusDB with an on-disk store and journaled commits: what it
/// acknowledged survives SIGKILL, as `w: majority` writes do on a MongoDB
/// replica set.
#[cfg(feature = "mongo")]
pub(crate) struct Secantus {
    port: u16,
    dir: PathBuf,
    binary: String,
    child: Option<Child>,
}

#[cfg(feature = "mongo")]
impl Secantus {
    async fn start(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .map_err(|e| e.to_string())?;
        let child = Command::new(&self.binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--storage-path")
            .arg(self.dir.join("data"))
            .args(["--sync-on-commit", "--cache-size", "256M"])
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", self.binary))?;
        self.child = Some(child);
        wait_for_port(self.port, &self.dir).await
    }

    /// SIGKILL.
    async fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// A throwaway PostgreSQL cluster; as root its binaries run as the user
/// `SHYLOCK_PG_RUN_AS` names (initdb refuses root), e.g. `runuser -u
/// postgres --`.
#[cfg(feature = "postgres")]
pub(crate) struct Cluster {
    port: u16,
    dir: PathBuf,
    bin: String,
    running: bool,
}

#[cfg(feature = "postgres")]
impl Cluster {
    async fn create(bin: &str, dir: &Path) -> Result<Cluster, String> {
        let mut cluster = Cluster {
            port: free_port()?,
            dir: dir.join("pg"),
            bin: bin.to_owned(),
            running: false,
        };
        std::fs::create_dir_all(&cluster.dir).map_err(|e| e.to_string())?;
        if let Some(user) = std::env::var("SHYLOCK_PG_RUN_AS")
            .ok()
            .and_then(|p| p.split_whitespace().nth(2).map(str::to_owned))
        {
            run(Command::new("chown").arg(&user).arg(&cluster.dir), "chown").await?;
        }
        let mut initdb = cluster.pg("initdb");
        initdb
            .arg("-D")
            .arg(cluster.dir.join("data"))
            .args(["-A", "trust", "-U", "postgres"]);
        run(&mut initdb, "initdb").await?;
        cluster.start().await?;
        Ok(cluster)
    }

    /// `binary` of the installation, run as `SHYLOCK_PG_RUN_AS`.
    fn pg(&self, binary: &str) -> Command {
        let path = format!("{}/{binary}", self.bin);
        let prefix = std::env::var("SHYLOCK_PG_RUN_AS").unwrap_or_default();
        let mut words = prefix.split_whitespace();
        let mut command = match words.next() {
            Some(first) => {
                let mut c = Command::new(first);
                c.args(words).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        command.stdout(Stdio::null()).stderr(Stdio::null());
        command
    }

    async fn start(&mut self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
            self.port,
            self.dir.display()
        );
        let mut start = self.pg("pg_ctl");
        start
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &options, "-w", "-l"])
            .arg(self.dir.join("server.log"))
            .arg("start");
        run(&mut start, "pg_ctl start").await?;
        self.running = true;
        wait_for_port(self.port, &self.dir).await
    }

    /// `pg_ctl stop -m immediate`: PostgreSQL's crash (no checkpoint,
    /// recovery from the WAL at the next start).
    async fn crash(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let mut stop = self.pg("pg_ctl");
        stop.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"]);
        if let Err(e) = run(&mut stop, "pg_ctl stop").await {
            eprintln!("chaos: {e}");
        }
    }
}

async fn run(command: &mut Command, what: &str) -> Result<(), String> {
    match command.status().await {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{what} failed: {status}")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}
