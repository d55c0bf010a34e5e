//! Real servers for the server suites, started with `testcontainers`
//! (feature `testcontainers`) when no URL is set.
//!
//! [`server_url`] answers the URL in the environment variable when it is
//! set; otherwise it starts the server the variable names in a container,
//! once per test binary, and answers its URL. The container lives until
//! the test binary exits (testcontainers' reaper removes it).
//!
//! | variable | container |
//! |---|---|
//! | `MONGODB_URI` | `mongo:7.0`, a one-node replica set (`rs0`) |
//! | `ARANGO_URL` | `arangodb:3.12`, no authentication |
//! | `POSTGRES_URL` | `postgres:16` |

use std::sync::{Mutex, OnceLock};

use testcontainers::core::{CmdWaitFor, ExecCommand, IntoContainerPort, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

/// A started server: the variable it answers for, its URL, its container.
type Running = (String, String, Container<GenericImage>);

/// The containers started so far, kept alive for the whole test binary.
fn started() -> &'static Mutex<Vec<Running>> {
    static STARTED: OnceLock<Mutex<Vec<Running>>> = OnceLock::new();
    STARTED.get_or_init(|| Mutex::new(Vec::new()))
}

/// The URL in `var`, or that of a server started for it in a container.
///
/// # Panics
///
/// When `var` is unset and no container can be started (no Docker engine
/// answers, or the image cannot be pulled): the message says which, and
/// what to set instead. A suite that needs a server fails then; it never
/// passes without one.
pub fn server_url(var: &str) -> String {
    if let Some(url) = std::env::var(var).ok().filter(|u| !u.is_empty()) {
        return url;
    }
    let mut started = started().lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, url, _)) = started.iter().find(|(v, _, _)| v == var) {
        return url.clone();
    }
    let (url, container) = start(var).unwrap_or_else(|e| {
        panic!(
            "this test needs {var}; it is not set, and no container could be started for it \
             ({e}); start Docker, or set {var} (scripts/test.sh starts local servers)"
        )
    });
    started.push((var.to_owned(), url.clone(), container));
    url
}

type Started = (String, Container<GenericImage>);

fn start(var: &str) -> Result<Started, Box<dyn std::error::Error>> {
    match var {
        "MONGODB_URI" => {
            let mongo = GenericImage::new("mongo", "7.0")
                .with_exposed_port(27017.tcp())
                .with_wait_for(WaitFor::message_on_stdout("Waiting for connections"))
                .with_cmd([
                    "--replSet",
                    "rs0",
                    "--bind_ip_all",
                    "--setParameter",
                    "enableTestCommands=1",
                ])
                .start()?;
            mongo.exec(
                ExecCommand::new([
                    "mongosh",
                    "--quiet",
                    "--eval",
                    "rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'localhost:27017'}]}); \
                 while (!db.hello().isWritablePrimary) { sleep(100); }",
                ])
                .with_cmd_ready_condition(CmdWaitFor::exit_code(0)),
            )?;
            let port = mongo.get_host_port_ipv4(27017)?;
            Ok((
                format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
                mongo,
            ))
        }
        "ARANGO_URL" => {
            let arango = GenericImage::new("arangodb", "3.12")
                .with_exposed_port(8529.tcp())
                .with_wait_for(WaitFor::message_on_stdout("is ready for business"))
                .with_env_var("ARANGO_NO_AUTH", "1")
                .start()?;
            let port = arango.get_host_port_ipv4(8529)?;
            Ok((format!("http://127.0.0.1:{port}"), arango))
        }
        "POSTGRES_URL" => {
            let postgres = GenericImage::new("postgres", "16")
                .with_exposed_port(5432.tcp())
                // The image's init server says it first, then the real one
                // (as testcontainers-modules' postgres waits).
                .with_wait_for(WaitFor::message_on_stderr(
                    "database system is ready to accept connections",
                ))
                .with_wait_for(WaitFor::message_on_stdout(
                    "database system is ready to accept connections",
                ))
                .with_env_var("POSTGRES_PASSWORD", "shylock")
                .start()?;
            let port = postgres.get_host_port_ipv4(5432)?;
            Ok((
                format!("postgres://postgres:shylock@127.0.0.1:{port}/postgres"),
                postgres,
            ))
        }
        other => Err(format!("no container is known for {other}").into()),
    }
}
