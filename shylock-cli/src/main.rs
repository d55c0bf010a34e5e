//! `shylock`: see and free the locks that services keep with the shylock
//! library, in SQLite, MongoDB, PostgreSQL or ArangoDB.
//!
//! ```text
//! shylock --store sqlite:/var/lib/app/locks.db list
//! shylock --store mongodb://db1/?replicaSet=rs0 --database app inspect orders/42
//! shylock --store postgres://ops@db1/app list jobs/
//! shylock --store http://arango:8529 release orders/42 --force
//! shylock watch jobs/
//! ```
//!
//! Exit codes: 0 ok, 1 not found (or not released), 2 usage, 3 store
//! unreachable or failing.

mod read;
mod release;
mod show;
mod store;
mod watch;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use read::{inspect, inspect_rwlock, list};
use release::release;
use show::Style;
use watch::watch;

const AFTER_HELP: &str = "\
Stores:
  sqlite:PATH                    the lock file the services open
  mongodb://HOST/[DATABASE]      with --database unless the URL names it
  postgres://HOST/DATABASE       the table from --collection [SCHEMA.]TABLE
                                 (default public.shylock_locks)
  http(s)://HOST:PORT            ArangoDB; credentials from ARANGO_USERNAME
                                 (default root) and ARANGO_PASSWORD

Exit codes:
  0  done
  1  not found: no such holder, or nothing was released
  2  usage: bad arguments, unknown store URL, confirmation missing
  3  the store is unreachable or failed";

/// See and free shylock locks.
#[derive(Parser)]
#[command(name = "shylock", version, after_help = AFTER_HELP)]
struct Cli {
    /// The store holding the locks (see "Stores" below).
    #[arg(long, short, env = "SHYLOCK_STORE", global = true, value_name = "URL")]
    store: Option<String>,
    /// Database: MongoDB (required unless the URL names it) or ArangoDB
    /// (default _system).
    #[arg(long, env = "SHYLOCK_DATABASE", global = true)]
    database: Option<String>,
    /// Collection holding the locks (MongoDB, ArangoDB), or
    /// `[SCHEMA.]TABLE` for PostgreSQL (default `public.shylock_locks`).
    #[arg(
        long,
        env = "SHYLOCK_COLLECTION",
        global = true,
        default_value = "shylock"
    )]
    collection: String,
    /// Machine-readable output: JSON (one object per line for `watch`).
    #[arg(long, global = true)]
    json: bool,
    /// Bound on each operation on the store, e.g. 500ms, 10s.
    #[arg(long, global = true, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists what is held, optionally under names starting with PREFIX:
    /// the live holders of locks, the semaphores with their permits used of
    /// the limit and who holds them, and the lines of fair waiters with
    /// their lengths. Holders show as their owner's label (host:pid unless
    /// the program set another) and owner token.
    List {
        /// Only names starting with this.
        prefix: Option<String>,
    },
    /// Shows who holds one name, whatever it is: the lock's holder and how
    /// many wait in its line, or, when no lock of that name is held, the
    /// holders of the semaphore of that name (exit 1 when nobody holds
    /// either).
    Inspect {
        /// The lock name.
        name: String,
        /// NAME is a semaphore: show its permit count and every holder.
        #[arg(long)]
        semaphore: bool,
        /// NAME is a read/write lock: show its readers and writer.
        #[arg(long, conflicts_with = "semaphore")]
        rwlock: bool,
    },
    /// Frees a lock whoever holds it: shows the holder, asks for
    /// confirmation, then releases exactly that holder's lease (if the lock
    /// changed hands meanwhile, nothing is released).
    Release {
        /// The lock name.
        name: String,
        /// Required: the holder may still be working under the lock.
        #[arg(long)]
        force: bool,
        /// Do not ask (needed when not on a terminal).
        #[arg(long, short)]
        yes: bool,
    },
    /// A live view of the holders: a table refreshed in place on a
    /// terminal, one line per change when piped. Ctrl-C ends it.
    Watch {
        /// Only names starting with this.
        prefix: Option<String>,
        /// Time between two looks at the store.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
    },
}

/// Why the command failed, and its exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    pub(crate) message: String,
}

impl Failure {
    const NOT_FOUND: u8 = 1;
    const USAGE: u8 = 2;
    const UNREACHABLE: u8 = 3;

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: Self::USAGE,
            message: message.into(),
        }
    }
    pub(crate) fn unreachable(message: impl Into<String>) -> Self {
        Failure {
            code: Self::UNREACHABLE,
            message: message.into(),
        }
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Failure {
            code: Self::NOT_FOUND,
            message: message.into(),
        }
    }
    pub(crate) fn from_error(error: shylock::Error) -> Self {
        match error {
            shylock::Error::InvalidName { .. } | shylock::Error::InvalidOptions { .. } => {
                Failure::usage(error.to_string())
            }
            other => Failure::unreachable(other.to_string()),
        }
    }
}

/// `500ms`, `2s`, `1.5s`, `3m`, `1h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{text:?} has no unit; write e.g. 500ms, 2s, 1m"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit {unit:?}; use ms, s, m or h")),
    };
    let duration = Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())?;
    if duration < Duration::from_millis(1) || duration > Duration::from_secs(86_400) {
        return Err(format!("{text:?} is out of range (1ms to 24h)"));
    }
    Ok(duration)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(Failure::UNREACHABLE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let url = cli.store.as_deref().ok_or_else(|| {
        Failure::usage(
            "no store given: pass --store URL or set SHYLOCK_STORE \
             (sqlite:PATH, mongodb://..., postgres://..., http(s)://... for ArangoDB)",
        )
    })?;
    let user = std::env::var("ARANGO_USERNAME").unwrap_or_else(|_| "root".into());
    let password = std::env::var("ARANGO_PASSWORD").ok();
    let args = store::StoreArgs {
        url,
        database: cli.database.as_deref(),
        collection: &cli.collection,
        arango_user: &user,
        arango_password: password.as_deref(),
        timeout: cli.timeout,
    };
    let backend = store::open(&args).await?;
    let out = Output {
        json: cli.json,
        style: Style {
            color: std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none()
                && std::env::var("TERM").map_or(true, |t| t != "dumb"),
        },
        timeout: cli.timeout,
    };
    match cli.command {
        Command::List { prefix } => list(&backend, prefix.as_deref().unwrap_or(""), &out).await,
        Command::Inspect {
            name, rwlock: true, ..
        } => inspect_rwlock(&backend, &name, &out).await,
        Command::Inspect {
            name, semaphore, ..
        } => inspect(&backend, &name, semaphore, &out).await,
        Command::Release { name, force, yes } => release(&backend, &name, force, yes, &out).await,
        Command::Watch { prefix, interval } => {
            watch(
                &backend,
                url,
                prefix.as_deref().unwrap_or(""),
                interval,
                &out,
            )
            .await
        }
    }
}

/// How results are shown, and the bound on each store operation.
pub(crate) struct Output {
    pub(crate) json: bool,
    pub(crate) style: Style,
    pub(crate) timeout: Duration,
}

pub(crate) fn check_name(name: &str) -> Result<(), Failure> {
    shylock::backend::validate_name(name).map_err(Failure::from_error)
}

/// One operation on the store, bounded by `--timeout`.
pub(crate) async fn bounded<T>(
    out: &Output,
    operation: impl std::future::Future<Output = shylock::Result<T>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(out.timeout, operation).await {
        Ok(result) => result.map_err(Failure::from_error),
        Err(_) => Err(Failure::unreachable(format!(
            "the store did not answer within {:?}",
            out.timeout
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("0s").unwrap_err().contains("out of range"));
    }
}
