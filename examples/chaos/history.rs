//! The history file of a chaos run: one line per event, appended with one
//! `write` each to a file opened with `O_APPEND`, so lines of the worker
//! processes and of the scheduler never interleave. Times are wall-clock µs
//! since the Unix epoch (one machine, one clock).
//!
//! Lines, fields separated by one space:
//!
//! ```text
//! I slot inc pid at                    scheduler: incarnation inc of worker slot started
//! X slot inc pid at how                scheduler: it ended (killed | stopped | exited:CODE)
//! P slot inc pid from to               scheduler: it was paused (SIGSTOP .. SIGCONT or kill)
//! F kind from to detail                scheduler: a fault (stop, kill, stall, cut, delay, db-restart)
//! B slot inc pid kind limit name token requested start expires
//!                                      worker: granted (limit: 1, or the semaphore's permits)
//! E slot inc pid name token end lost expires
//!                                      worker: the work ended, before release
//! R slot inc pid name token outcome    worker: what release answered (ok | lost | error)
//! M slot inc pid kind name outcome requested at
//!                                      worker: no grant (timeout | error:KIND)
//! ```
//!
//! `requested` is taken just before the acquire call, `start` just after it
//! returned, `expires` (B) is the grant's expiry by the database's clock,
//! `end` is taken when the work stopped; `lost` is when the worker saw the
//! guard lost (`lost()` resolved during the work, or `is_lost()` was true
//! right after `end`), `-` if it did not; `expires` (E) is the lease's
//! expiry as the database last confirmed it. All are written before the
//! release starts.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock µs since the Unix epoch.
pub(crate) fn now_us() -> u64 {
    to_us(SystemTime::now())
}

pub(crate) fn to_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// An append-only handle on the history file.
#[derive(Debug)]
pub(crate) struct Appender {
    file: File,
}

impl Appender {
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Appender { file })
    }

    /// Appends `fields` as one line with one write call. A failed write is
    /// reported on stderr: the checker then sees a gap, never half a line.
    pub(crate) fn line(&mut self, fields: &[&dyn std::fmt::Display]) {
        let mut line = String::new();
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                line.push(' ');
            }
            line.push_str(&field.to_string());
        }
        debug_assert!(!line.contains('\n'));
        line.push('\n');
        if let Err(e) = self.file.write_all(line.as_bytes()) {
            eprintln!("chaos: could not append to the history: {e}");
        }
    }
}

/// Who wrote a worker line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Who {
    pub(crate) slot: u32,
    pub(crate) inc: u32,
    pub(crate) pid: u32,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    Started {
        who: Who,
        at: u64,
    },
    Ended {
        who: Who,
        at: u64,
        how: String,
    },
    Paused {
        who: Who,
        from: u64,
        to: u64,
    },
    Fault {
        kind: String,
        from: u64,
        to: u64,
    },
    Begin {
        who: Who,
        kind: String,
        limit: u32,
        name: String,
        token: u64,
        requested: u64,
        start: u64,
        expires: u64,
    },
    End {
        who: Who,
        name: String,
        token: u64,
        end: u64,
        lost: Option<u64>,
        expires: u64,
    },
    Release {
        who: Who,
        name: String,
        token: u64,
        outcome: String,
    },
    Miss {
        who: Who,
        kind: String,
        name: String,
        outcome: String,
    },
}

/// Parses one line; `None` for an unknown or malformed one.
pub(crate) fn parse(line: &str) -> Option<Line> {
    let f: Vec<&str> = line.split(' ').collect();
    let n = |i: usize| -> Option<u64> { f.get(i)?.parse().ok() };
    let s = |i: usize| -> Option<String> { f.get(i).map(|s| s.to_string()) };
    let who = || -> Option<Who> {
        Some(Who {
            slot: f.get(1)?.parse().ok()?,
            inc: f.get(2)?.parse().ok()?,
            pid: f.get(3)?.parse().ok()?,
        })
    };
    let parsed = match *f.first()? {
        "I" if f.len() == 5 => Line::Started {
            who: who()?,
            at: n(4)?,
        },
        "X" if f.len() == 6 => Line::Ended {
            who: who()?,
            at: n(4)?,
            how: s(5)?,
        },
        "P" if f.len() == 6 => Line::Paused {
            who: who()?,
            from: n(4)?,
            to: n(5)?,
        },
        "F" if f.len() >= 4 => Line::Fault {
            kind: s(1)?,
            from: n(2)?,
            to: n(3)?,
        },
        "B" if f.len() == 11 => Line::Begin {
            who: who()?,
            kind: s(4)?,
            limit: f[5].parse().ok()?,
            name: s(6)?,
            token: n(7)?,
            requested: n(8)?,
            start: n(9)?,
            expires: n(10)?,
        },
        "E" if f.len() == 9 => Line::End {
            who: who()?,
            name: s(4)?,
            token: n(5)?,
            end: n(6)?,
            lost: if f[7] == "-" { None } else { Some(n(7)?) },
            expires: n(8)?,
        },
        "R" if f.len() == 7 => Line::Release {
            who: who()?,
            name: s(4)?,
            token: n(5)?,
            outcome: s(6)?,
        },
        "M" if f.len() == 9 => Line::Miss {
            who: who()?,
            kind: s(4)?,
            name: s(5)?,
            outcome: s(6)?,
        },
        _ => return None,
    };
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_through_the_appender() {
        let dir = std::env::temp_dir().join(format!("shylock-chaos-history-{}", now_us()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("history");
        let mut out = Appender::open(&path).unwrap();
        out.line(&[
            &"B",
            &1,
            &2,
            &30,
            &"lock",
            &1,
            &"chaos/lock-0",
            &7,
            &10,
            &11,
            &2011,
        ]);
        out.line(&[&"E", &1, &2, &30, &"chaos/lock-0", &7, &50, &"-", &2011]);
        out.line(&[&"E", &1, &2, &30, &"chaos/lock-0", &8, &60, &55, &2500]);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Line> = text.lines().filter_map(parse).collect();
        let who = Who {
            slot: 1,
            inc: 2,
            pid: 30,
        };
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            Line::Begin {
                who,
                kind: "lock".into(),
                limit: 1,
                name: "chaos/lock-0".into(),
                token: 7,
                requested: 10,
                start: 11,
                expires: 2011
            }
        );
        assert!(matches!(
            lines[1],
            Line::End {
                lost: None,
                end: 50,
                ..
            }
        ));
        assert!(matches!(lines[2], Line::End { lost: Some(55), .. }));
        assert_eq!(parse("B 1 2"), None);
        assert_eq!(parse("E 1 2 3 n 7 x - 9"), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
