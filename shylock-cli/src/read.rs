//! `list` and `inspect`: what is held, of every kind (lock holders,
//! semaphores with their permits, lines of fair waiters).

use serde_json::json;
use shylock::backend::{list_all, rwlocks_unsupported, semaphores_unsupported, Deadline};
use shylock::{LockInfo, QueueInfo, SemaphoreInfo, SharedBackend};

use crate::show::{
    details, lock_json, printable, queue_json, queue_table, semaphore_json, semaphore_table, table,
};
use crate::{bounded, check_name, Failure, Output};

/// Most semaphores and lines `list` asks the store for.
const LISTED: usize = 1000;

/// Every live lock holder under `prefix`.
pub(crate) async fn fetch(
    backend: &SharedBackend,
    prefix: &str,
    out: &Output,
) -> Result<Vec<LockInfo>, Failure> {
    list_all(&**backend, prefix, 500, out.timeout)
        .await
        .map_err(Failure::from_error)
}

/// The semaphores with live holders under `prefix` (none when the store
/// keeps no semaphores).
async fn semaphores(
    backend: &SharedBackend,
    prefix: &str,
    limit: usize,
    out: &Output,
) -> Result<Vec<SemaphoreInfo>, Failure> {
    let Some(semaphores) = backend.semaphores() else {
        return Ok(Vec::new());
    };
    let deadline = Deadline::after(out.timeout);
    bounded(out, semaphores.list_semaphores(prefix, limit, deadline)).await
}

/// The lines of fair waiters under `prefix` (none when the store keeps no
/// lines).
async fn queues(
    backend: &SharedBackend,
    prefix: &str,
    limit: usize,
    out: &Output,
) -> Result<Vec<QueueInfo>, Failure> {
    let Some(queues) = backend.queues() else {
        return Ok(Vec::new());
    };
    let deadline = Deadline::after(out.timeout);
    bounded(out, queues.list_queues(prefix, limit, deadline)).await
}

pub(crate) async fn list(
    backend: &SharedBackend,
    prefix: &str,
    out: &Output,
) -> Result<(), Failure> {
    let locks = fetch(backend, prefix, out).await?;
    let semaphores = semaphores(backend, prefix, LISTED, out).await?;
    let queues = queues(backend, prefix, LISTED, out).await?;
    if out.json {
        let kind = |mut value: serde_json::Value, kind: &str| {
            value["kind"] = json!(kind);
            value
        };
        let rows: Vec<_> = (locks.iter().map(|l| kind(lock_json(l), "lock")))
            .chain(
                semaphores
                    .iter()
                    .map(|s| kind(semaphore_json(s), "semaphore")),
            )
            .chain(queues.iter().map(|q| kind(queue_json(q), "queue")))
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    if locks.is_empty() && semaphores.is_empty() && queues.is_empty() {
        println!("no locks held{}", prefix_note(prefix));
        return Ok(());
    }
    let mut sections = Vec::new();
    if !locks.is_empty() {
        sections.push(table(&locks, out.style));
    }
    if !semaphores.is_empty() {
        sections.push(semaphore_table(&semaphores, out.style));
    }
    if !queues.is_empty() {
        sections.push(queue_table(&queues, out.style));
    }
    print!("{}", sections.join("\n"));
    if semaphores.len() >= LISTED || queues.len() >= LISTED {
        eprintln!("note: only the first {LISTED} semaphores and lines are listed; give a PREFIX");
    }
    Ok(())
}

pub(crate) fn prefix_note(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!(" under {:?}", prefix)
    }
}

pub(crate) async fn holder(
    backend: &SharedBackend,
    name: &str,
    out: &Output,
) -> Result<Option<LockInfo>, Failure> {
    let deadline = Deadline::after(out.timeout);
    bounded(out, backend.inspect(name, deadline)).await
}

/// How many wait in the line of `name` (0 when none, or when the store
/// keeps no lines).
async fn waiting(backend: &SharedBackend, name: &str, out: &Output) -> Result<u64, Failure> {
    // `name` sorts first among the names it prefixes.
    let lines = queues(backend, name, 1, out).await?;
    Ok(lines
        .first()
        .filter(|q| q.name == name)
        .map_or(0, |q| q.waiting))
}

pub(crate) async fn inspect(
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
        let waiting = waiting(backend, name, out).await?;
        if out.json {
            let mut value = lock_json(&info);
            value["waiting"] = json!(waiting);
            println!("{value}");
        } else {
            print!("{}", details(&info));
            if waiting > 0 {
                println!("waiting:       {waiting} in line");
            }
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
    let waiting = waiting(backend, name, out).await.unwrap_or(0);
    let not_held = match looked {
        Some(Ok(info)) if !info.holders.is_empty() => return show_semaphore(&info, out),
        _ if waiting > 0 => format!(
            "{} is not held; {waiting} waiting in line for it",
            printable(name)
        ),
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
        println!(
            "{}",
            json!({ "name": name, "held": false, "waiting": waiting })
        );
    }
    Err(Failure::not_found(not_held))
}

/// A semaphore's permit count and holders; exit 1 when nobody holds one.
fn show_semaphore(info: &SemaphoreInfo, out: &Output) -> Result<(), Failure> {
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

/// A read/write lock's readers and writer; exit 1 when nobody holds it.
pub(crate) async fn inspect_rwlock(
    backend: &SharedBackend,
    name: &str,
    out: &Output,
) -> Result<(), Failure> {
    check_name(name)?;
    let rwlocks = backend
        .rwlocks()
        .ok_or_else(|| Failure::from_error(rwlocks_unsupported(backend.kind())))?;
    let deadline = Deadline::after(out.timeout);
    let info = bounded(out, rwlocks.inspect_rwlock(name, deadline)).await?;
    if out.json {
        println!("{}", crate::show::rwlock_json(&info));
    } else {
        print!("{}", crate::show::rwlock_text(&info, out.style));
    }
    if info.is_free() {
        return Err(Failure::not_found(format!(
            "nobody holds {}",
            printable(name)
        )));
    }
    Ok(())
}
