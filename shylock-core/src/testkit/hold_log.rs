//! A shared log of critical sections, for tests with several processes.
//!
//! Each holder appends a `begin` line right after it got the lock and an
//! `end` line right before it releases it. Appends go through `O_APPEND`
//! with one write per line, so the order of lines in the file is the order
//! in which holders were inside their critical sections; two holders at
//! once show up as a `begin` before the previous holder's `end`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An append-only handle to a hold log.
#[derive(Debug)]
pub struct HoldLog {
    file: File,
}

/// Whether a line marks the start or the end of a critical section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldKind {
    /// The holder just got the lock.
    Begin,
    /// The holder is about to release the lock.
    End,
}

/// One line of a hold log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldEvent {
    /// Wall-clock time of the event, in ms since the Unix epoch.
    pub at_ms: u64,
    /// Begin or end.
    pub kind: HoldKind,
    /// Who wrote it.
    pub worker: String,
    /// The holder's fencing token.
    pub fencing_token: u64,
    /// How long the holder waited for the lock, in µs (begin lines only).
    pub waited_us: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl HoldLog {
    /// Opens (creating if needed) the log at `path` for appending.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(HoldLog { file })
    }

    fn write(&mut self, kind: &str, worker: &str, token: u64, waited: Duration) -> io::Result<()> {
        assert!(
            !worker.contains(char::is_whitespace),
            "worker ids have no spaces"
        );
        let line = format!(
            "{} {kind} {worker} {token} {}\n",
            now_ms(),
            waited.as_micros()
        );
        // One write call per line: appends of one call are not interleaved.
        self.file.write_all(line.as_bytes())?;
        self.file.flush()
    }

    /// Records that `worker` got the lock with `token` after waiting `waited`.
    pub fn begin(&mut self, worker: &str, token: u64, waited: Duration) -> io::Result<()> {
        self.write("begin", worker, token, waited)
    }

    /// Records that `worker` is about to release the lock.
    pub fn end(&mut self, worker: &str, token: u64) -> io::Result<()> {
        self.write("end", worker, token, Duration::ZERO)
    }
}

/// Parses one log line; `None` for a malformed (e.g. half-written) line.
pub fn parse_hold_line(line: &str) -> Option<HoldEvent> {
    let mut parts = line.split_whitespace();
    let at_ms = parts.next()?.parse().ok()?;
    let kind = match parts.next()? {
        "begin" => HoldKind::Begin,
        "end" => HoldKind::End,
        _ => return None,
    };
    let worker = parts.next()?.to_owned();
    let fencing_token = parts.next()?.parse().ok()?;
    let waited_us = parts.next()?.parse().ok()?;
    Some(HoldEvent {
        at_ms,
        kind,
        worker,
        fencing_token,
        waited_us,
    })
}

/// Reads every complete line of the log at `path`.
pub fn read_hold_log(path: impl AsRef<Path>) -> io::Result<Vec<HoldEvent>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().filter_map(parse_hold_line).collect())
}

/// What [`check_hold_log`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldReport {
    /// Number of critical sections (begin lines).
    pub acquisitions: usize,
    /// Begin lines written while another live holder had not ended, and end
    /// lines that do not close the current holder's section.
    pub overlaps: usize,
    /// Begin lines whose fencing token was not above the previous one.
    pub token_regressions: usize,
}

impl HoldReport {
    /// True when no two holders overlapped and tokens always increased.
    pub fn is_exclusive(&self) -> bool {
        self.overlaps == 0 && self.token_regressions == 0
    }
}

/// Checks a hold log: sections never overlap and fencing tokens strictly
/// increase in log order. Workers in `crashed` were killed while holding;
/// their last section has no end line, and the next begin is not counted
/// as an overlap.
pub fn check_hold_log(events: &[HoldEvent], crashed: &[&str]) -> HoldReport {
    let mut report = HoldReport::default();
    let mut current: Option<(&str, u64)> = None;
    let mut last_token = 0u64;
    for event in events {
        match event.kind {
            HoldKind::Begin => {
                report.acquisitions += 1;
                if let Some((holder, _)) = current {
                    if !crashed.contains(&holder) {
                        report.overlaps += 1;
                    }
                }
                if event.fencing_token <= last_token {
                    report.token_regressions += 1;
                }
                last_token = last_token.max(event.fencing_token);
                current = Some((&event.worker, event.fencing_token));
            }
            HoldKind::End => {
                if current == Some((event.worker.as_str(), event.fencing_token)) {
                    current = None;
                } else {
                    report.overlaps += 1;
                }
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: HoldKind, worker: &str, token: u64) -> HoldEvent {
        HoldEvent {
            at_ms: 0,
            kind,
            worker: worker.into(),
            fencing_token: token,
            waited_us: 0,
        }
    }

    #[test]
    fn detects_overlaps_regressions_and_allows_crashed_holders() {
        use HoldKind::*;
        let clean = [
            ev(Begin, "a", 1),
            ev(End, "a", 1),
            ev(Begin, "b", 2),
            ev(End, "b", 2),
        ];
        assert!(check_hold_log(&clean, &[]).is_exclusive());
        let overlap = [
            ev(Begin, "a", 1),
            ev(Begin, "b", 2),
            ev(End, "a", 1),
            ev(End, "b", 2),
        ];
        assert!(check_hold_log(&overlap, &[]).overlaps >= 1);
        let regress = [
            ev(Begin, "a", 5),
            ev(End, "a", 5),
            ev(Begin, "b", 5),
            ev(End, "b", 5),
        ];
        assert_eq!(check_hold_log(&regress, &[]).token_regressions, 1);
        let crash = [ev(Begin, "a", 1), ev(Begin, "b", 2), ev(End, "b", 2)];
        assert!(check_hold_log(&crash, &["a"]).is_exclusive());
        assert!(!check_hold_log(&crash, &[]).is_exclusive());
        assert_eq!(
            parse_hold_line("12 begin w1 7 30"),
            Some(HoldEvent {
                at_ms: 12,
                kind: Begin,
                worker: "w1".into(),
                fencing_token: 7,
                waited_us: 30
            })
        );
        assert_eq!(parse_hold_line("12 beg"), None);
    }
}
