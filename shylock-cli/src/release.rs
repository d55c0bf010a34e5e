//! `release --force`: frees exactly the holder it showed.

use std::io::{BufRead, IsTerminal, Write};

use serde_json::json;
use shylock::backend::Deadline;
use shylock::SharedBackend;

use crate::read::holder;
use crate::show::{details, lock_json, printable};
use crate::{bounded, check_name, Failure, Output};

pub(crate) async fn release(
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
