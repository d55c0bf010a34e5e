//! `watch`: a live view of the holders, redrawn in place on a terminal,
//! one line per change when piped.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde_json::json;
use shylock::{LockInfo, SharedBackend};

use crate::read::{fetch, prefix_note};
use crate::show::{self, lock_json, printable, table, utc, Style};
use crate::{Failure, Output};

pub(crate) async fn watch(
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
    fn passwords_never_reach_the_screen() {
        assert_eq!(
            redact("mongodb://admin:s3cret@db1:27017/app"),
            "mongodb://admin:***@db1:27017/app"
        );
        assert_eq!(redact("sqlite:/tmp/a@b.db"), "sqlite:/tmp/a@b.db");
        assert_eq!(redact("mongodb://db1/app"), "mongodb://db1/app");
    }
}
