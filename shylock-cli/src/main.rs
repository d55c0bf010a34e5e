//! `shylock`: see and free the locks that services keep with the shylock
//! library, in SQLite, MongoDB or ArangoDB.
//!
//! ```text
//! shylock --store sqlite:/var/lib/app/locks.db list
//! shylock --store mongodb://db1/?replicaSet=rs0 --database app inspect orders/42
//! shylock --store http://arango:8529 release orders/42 --force
//! shylock watch jobs/
//! ```
//!
//! Exit codes: 0 ok, 1 not found (or not released), 2 usage, 3 store
//! unreachable or failing.

mod show;
mod store;

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::json;
use shylock::backend::{list_all, rwlocks_unsupported, semaphores_unsupported, Deadline};
use shylock::{LockInfo, SharedBackend};

use show::{details, lock_json, printable, semaphore_json, table, utc, Style};

const AFTER_HELP: &str = "\
Stores:
  sqlite:PATH                    the lock file the services open
  mongodb://HOST/[DATABASE]      with --database unless the URL names it
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
    /// Collection holding the locks (MongoDB, ArangoDB).
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
    /// Lists the live holders of locks, optionally of names starting with
    /// PREFIX. Semaphores and the lines of fair waiters are not listed (the
    /// stores offer no way to list them): `inspect NAME` shows a semaphore.
    List {
        /// Only names starting with this.
        prefix: Option<String>,
    },
    /// Shows who holds one lock, or, when no lock of that name is held,
    /// the holders of the semaphore of that name (exit 1 when nobody holds
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
    message: String,
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
    fn not_found(message: impl Into<String>) -> Self {
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
             (sqlite:PATH, mongodb://..., http(s)://... for ArangoDB)",
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

struct Output {
    json: bool,
    style: Style,
    timeout: Duration,
}

fn check_name(name: &str) -> Result<(), Failure> {
    shylock::backend::validate_name(name).map_err(Failure::from_error)
}

async fn fetch(
    backend: &SharedBackend,
    prefix: &str,
    out: &Output,
) -> Result<Vec<LockInfo>, Failure> {
    list_all(&**backend, prefix, 500, out.timeout)
        .await
        .map_err(Failure::from_error)
}

async fn list(backend: &SharedBackend, prefix: &str, out: &Output) -> Result<(), Failure> {
    let rows = fetch(backend, prefix, out).await?;
    if out.json {
        let rows: Vec<_> = rows.iter().map(lock_json).collect();
        println!("{}", serde_json::Value::Array(rows));
    } else if rows.is_empty() {
        println!("no locks held{}", prefix_note(prefix));
        eprintln!("note: semaphores are not listed; `shylock inspect NAME` shows one");
    } else {
        print!("{}", table(&rows, out.style));
    }
    Ok(())
}

fn prefix_note(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!(" under {:?}", prefix)
    }
}

async fn holder(
    backend: &SharedBackend,
    name: &str,
    out: &Output,
) -> Result<Option<LockInfo>, Failure> {
    let deadline = Deadline::after(out.timeout);
    bounded(out, backend.inspect(name, deadline)).await
}

/// One operation on the store, bounded by `--timeout`.
async fn bounded<T>(
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

async fn inspect(
    backend: &SharedBackend,
    name: &str,
    semaphore: bool,
    out: &Output,
) -> Result<(), Failure> {
    check_name(name)?;
    if semaphore {
        let deadline = Deadline::after(out.timeout);
        let semaphores = backend
            .semaphores()
            .ok_or_else(|| Failure::from_error(semaphores_unsupported(backend.kind())))?;
        let info = bounded(out, semaphores.inspect_semaphore(name, deadline)).await?;
        return show_semaphore(&info, out);
    }
    if let Some(info) = holder(backend, name, out).await? {
        if out.json {
            println!("{}", lock_json(&info));
        } else {
            print!("{}", details(&info));
        }
        return Ok(());
    }
    // Locks and semaphores are kept apart; a name that is no held lock may
    // be a semaphore.
    let deadline = Deadline::after(out.timeout);
    let looked = match backend.semaphores() {
        Some(semaphores) => Some(bounded(out, semaphores.inspect_semaphore(name, deadline)).await),
        None => None,
    };
    let not_held = match looked {
        Some(Ok(info)) if !info.holders.is_empty() => return show_semaphore(&info, out),
        Some(Ok(_)) => format!(
            "{} is not held: no lock or semaphore of that name has a live holder",
            printable(name)
        ),
        // This store cannot say (no semaphores, or the semaphore read
        // failed): the lock is not held, and a semaphore is for the
        // operator to ask about.
        Some(Err(_)) | None => format!(
            "{} is not held; if it is a semaphore, use `shylock inspect {} --semaphore`",
            printable(name),
            printable(name)
        ),
    };
    if out.json {
        println!("{}", json!({ "name": name, "held": false }));
    }
    Err(Failure::not_found(not_held))
}

/// A read/write lock's readers and writer; exit 1 when nobody holds it.
async fn inspect_rwlock(backend: &SharedBackend, name: &str, out: &Output) -> Result<(), Failure> {
    check_name(name)?;
    let rwlocks = backend
        .rwlocks()
        .ok_or_else(|| Failure::from_error(rwlocks_unsupported(backend.kind())))?;
    let deadline = Deadline::after(out.timeout);
    let info = bounded(out, rwlocks.inspect_rwlock(name, deadline)).await?;
    if out.json {
        println!("{}", show::rwlock_json(&info));
    } else {
        print!("{}", show::rwlock_text(&info, out.style));
    }
    if info.is_free() {
        return Err(Failure::not_found(format!(
            "nobody holds {}",
            printable(name)
        )));
    }
    Ok(())
}

/// A semaphore's permit count and holders; exit 1 when nobody holds one.
fn show_semaphore(info: &shylock::SemaphoreInfo, out: &Output) -> Result<(), Failure> {
    let name = &info.name;
    if out.json {
        println!("{}", semaphore_json(info));
    } else if info.holders.is_empty() {
        println!("semaphore {} has no holders", printable(name));
    } else {
        let permits = info.permits.map_or("?".to_owned(), |p| p.to_string());
        println!(
            "semaphore {}: {} of {permits} permits held",
            printable(name),
            info.holders.len()
        );
        print!("{}", table(&info.holders, out.style));
    }
    if info.holders.is_empty() {
        return Err(Failure::not_found(format!(
            "nobody holds a permit of {}",
            printable(name)
        )));
    }
    Ok(())
}

async fn release(
    backend: &SharedBackend,
    name: &str,
    force: bool,
    yes: bool,
    out: &Output,
) -> Result<(), Failure> {
    check_name(name)?;
    if !force {
        return Err(Failure::usage(format!(
            "release frees a lock that another process may still be working under; \
             run `shylock release {} --force` if that is what you want",
            printable(name)
        )));
    }
    let Some(info) = holder(backend, name, out).await? else {
        if out.json {
            println!(
                "{}",
                json!({ "name": name, "released": false, "held": false })
            );
        }
        return Err(Failure::not_found(format!(
            "{} is not held; nothing to release",
            printable(name)
        )));
    };
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::usage(
                "not on a terminal, so there is nobody to confirm: add --yes",
            ));
        }
        eprint!("{}", details(&info));
        eprint!(
            "Release {} held by {} (fencing token {})? [y/N] ",
            printable(name),
            printable(&info.owner),
            info.fencing_token
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            return Err(Failure::not_found("not released"));
        }
    }
    // Owner-checked: only the holder shown above is released.
    let deadline = Deadline::after(out.timeout);
    let freed = bounded(out, backend.release(name, &info.owner, deadline)).await?;
    if !freed {
        if out.json {
            println!(
                "{}",
                json!({ "name": name, "released": false, "held": true })
            );
        }
        return Err(Failure::not_found(format!(
            "{} changed hands (or expired) since it was read; nothing was released. \
             Run the command again to see the new holder",
            printable(name)
        )));
    }
    if out.json {
        let mut value = lock_json(&info);
        value["released"] = json!(true);
        println!("{value}");
    } else {
        println!(
            "released {} (was held by {}, fencing token {})",
            printable(name),
            printable(&info.owner),
            info.fencing_token
        );
    }
    Ok(())
}

async fn watch(
    backend: &SharedBackend,
    url: &str,
    prefix: &str,
    interval: Duration,
    out: &Output,
) -> Result<(), Failure> {
    let screen = std::io::stdout().is_terminal() && !out.json;
    // The first look must work: a wrong store is an error, not an empty view.
    let mut rows = fetch(backend, prefix, out).await?;
    let mut previous: BTreeMap<String, LockInfo> = BTreeMap::new();
    let mut error: Option<String> = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if screen {
            draw(url, prefix, interval, &rows, error.as_deref(), out.style);
        } else {
            let now: BTreeMap<String, LockInfo> =
                rows.iter().map(|i| (i.name.clone(), i.clone())).collect();
            changes(&previous, &now, out.json);
            previous = now;
            if let Some(e) = &error {
                eprintln!("{} error: {e}", utc(std::time::SystemTime::now()));
            }
        }
        tokio::select! {
            _ = &mut ctrl_c => {
                if screen {
                    println!();
                }
                return Ok(());
            }
            _ = tokio::time::sleep(interval) => {}
        }
        match fetch(backend, prefix, out).await {
            Ok(now) => {
                rows = now;
                error = None;
            }
            // Shown, and tried again at the next interval.
            Err(failure) => error = Some(failure.message),
        }
    }
}

/// One screen of `watch` on a terminal, drawn over the last one.
fn draw(
    url: &str,
    prefix: &str,
    interval: Duration,
    rows: &[LockInfo],
    error: Option<&str>,
    style: Style,
) {
    let mut screen = String::from("\x1b[H\x1b[2J");
    screen += &style.bold(&format!(
        "shylock watch  {}{}",
        printable(&redact(url)),
        prefix_note(prefix)
    ));
    screen += &style.dim(&format!(
        "   every {}  Ctrl-C quits\n",
        show::human_duration(interval)
    ));
    screen += &format!(
        "{} held at {}\n\n",
        match rows.len() {
            1 => "1 lock".to_owned(),
            n => format!("{n} locks"),
        },
        utc(std::time::SystemTime::now())
    );
    if let Some(e) = error {
        screen += &style.warn(&format!("store error (showing the last answer): {e}\n\n"));
    }
    if rows.is_empty() {
        screen += "no locks held\n";
    } else {
        screen += &table(rows, style);
    }
    print!("{screen}");
    let _ = std::io::stdout().flush();
}

/// One line per change between two looks: acquired, changed hands,
/// released or expired.
fn changes(before: &BTreeMap<String, LockInfo>, now: &BTreeMap<String, LockInfo>, json: bool) {
    let at = utc(std::time::SystemTime::now());
    let line = |event: &str, info: &LockInfo| {
        if json {
            let mut value = lock_json(info);
            value["event"] = json!(event);
            value["at"] = json!(at);
            println!("{value}");
        } else {
            println!(
                "{at} {event} {} owner={} fence={} expires_in={}",
                printable(&info.name),
                printable(&info.owner),
                info.fencing_token,
                show::human_duration(show::left(info.expires_at))
            );
        }
    };
    for (name, info) in now {
        match before.get(name) {
            None => line("acquired", info),
            Some(old) if old.owner != info.owner || old.fencing_token != info.fencing_token => {
                line("changed", info)
            }
            Some(_) => {}
        }
    }
    for (name, info) in before {
        if !now.contains_key(name) {
            let event = if show::left(info.expires_at).is_zero() {
                "expired"
            } else {
                "released"
            };
            line(event, info);
        }
    }
    let _ = std::io::stdout().flush();
}

/// The store URL without a password, for the screen.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
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

    #[test]
    fn passwords_never_reach_the_screen() {
        assert_eq!(
            redact("mongodb://admin:s3cret@db1:27017/app"),
            "mongodb://admin:***@db1:27017/app"
        );
        assert_eq!(redact("sqlite:/tmp/a@b.db"), "sqlite:/tmp/a@b.db");
        assert_eq!(redact("mongodb://db1/app"), "mongodb://db1/app");
    }
}
