//! How holders are shown: tables for people, JSON for scripts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use shylock::{LockInfo, QueueInfo, RwLockInfo, SemaphoreInfo};

/// Terminal styling, on only when stdout is a terminal and `NO_COLOR` is
/// unset.
#[derive(Clone, Copy)]
pub(crate) struct Style {
    pub(crate) color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    pub(crate) fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
    pub(crate) fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
    pub(crate) fn warn(self, text: &str) -> String {
        self.paint("33", text)
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Time until `at` by this host's clock (zero once past).
pub(crate) fn left(at: SystemTime) -> Duration {
    at.duration_since(SystemTime::now()).unwrap_or_default()
}

/// `4.2s`, `3m 05s`, `2h 10m`.
pub(crate) fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h {:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// `2026-11-24T06:52:01Z` (UTC, whole seconds).
pub(crate) fn utc(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60
    )
}

/// Who holds a lease, for people: the label of its owner token (`host:pid`
/// unless the holder set another, see `LockOptions::owner_label`), or the
/// whole token when it has none (a bare UUID).
pub(crate) fn holder_label(owner: &str) -> &str {
    match owner.rsplit_once(':') {
        Some((label, _)) if !label.is_empty() => label,
        _ => owner,
    }
}

/// One holder as JSON.
pub(crate) fn lock_json(info: &LockInfo) -> Value {
    json!({
        "name": info.name,
        "owner": info.owner,
        "holder": holder_label(&info.owner),
        "fencing_token": info.fencing_token,
        "expires_at": utc(info.expires_at),
        "expires_at_ms": unix_ms(info.expires_at),
        "expires_in_ms": left(info.expires_at).as_millis() as u64,
    })
}

/// A semaphore and its holders as JSON.
pub(crate) fn semaphore_json(info: &SemaphoreInfo) -> Value {
    json!({
        "name": info.name,
        "permits": info.permits,
        "used": info.holders.len(),
        "holders": info.holders.iter().map(lock_json).collect::<Vec<_>>(),
    })
}

/// A line of fair waiters as JSON.
pub(crate) fn queue_json(info: &QueueInfo) -> Value {
    json!({ "name": info.name, "waiting": info.waiting })
}

/// Semaphores as a table: permits used of the limit, and who holds them.
pub(crate) fn semaphore_table(rows: &[SemaphoreInfo], style: Style) -> String {
    let cells = rows.iter().map(|s| {
        let limit = s.permits.map_or("?".to_owned(), |p| p.to_string());
        let holders: Vec<String> = (s.holders.iter())
            .map(|h| printable(holder_label(&h.owner)))
            .collect();
        vec![
            printable(&s.name),
            format!("{}/{limit}", s.holders.len()),
            holders.join(", "),
        ]
    });
    columns(&["SEMAPHORE", "PERMITS", "HELD BY"], cells.collect(), style)
}

/// Lines of fair waiters as a table.
pub(crate) fn queue_table(rows: &[QueueInfo], style: Style) -> String {
    let cells = rows
        .iter()
        .map(|q| vec![printable(&q.name), q.waiting.to_string()]);
    columns(&["QUEUE", "WAITING"], cells.collect(), style)
}

/// Cells as left-aligned columns under a bold header.
fn columns(header: &[&str], rows: Vec<Vec<String>>, style: Style) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = (cells.iter().zip(&widths))
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut out = style.bold(&line(&header)) + "\n";
    for row in &rows {
        out += &line(row);
        out.push('\n');
    }
    out
}

/// Holders as an aligned table with a header.
pub(crate) fn table(rows: &[LockInfo], style: Style) -> String {
    let header = ["NAME", "OWNER", "FENCE", "EXPIRES IN"];
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|i| {
            [
                printable(&i.name),
                printable(&i.owner),
                i.fencing_token.to_string(),
                human_duration(left(i.expires_at)),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cols: [&str; 4]| {
        format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}",
            cols[0],
            cols[1],
            cols[2],
            cols[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        )
    };
    let mut out = style.bold(&line(header)) + "\n";
    for (row, info) in cells.iter().zip(rows) {
        let text = line([&row[0], &row[1], &row[2], &row[3]]);
        // Leases about to end stand out: a holder that stopped renewing.
        if left(info.expires_at) < Duration::from_secs(5) {
            out += &style.warn(&text);
        } else {
            out += &text;
        }
        out.push('\n');
    }
    out
}

/// A name or owner with control characters escaped, so a hostile name
/// cannot move the cursor or clear the operator's screen.
pub(crate) fn printable(text: &str) -> String {
    if text.chars().any(char::is_control) {
        text.escape_debug().to_string()
    } else {
        text.to_owned()
    }
}

/// `inspect` of one holder, as `key: value` lines.
pub(crate) fn details(info: &LockInfo) -> String {
    format!(
        "name:          {}\nheld by:       {}\nowner:         {}\nfencing token: {}\nexpires at:    {} (in {})\n",
        printable(&info.name),
        printable(holder_label(&info.owner)),
        printable(&info.owner),
        info.fencing_token,
        utc(info.expires_at),
        human_duration(left(info.expires_at)),
    )
}

/// A read/write lock, its readers and writer as JSON.
pub(crate) fn rwlock_json(info: &RwLockInfo) -> Value {
    json!({
        "name": info.name,
        "readers": info.readers.iter().map(lock_json).collect::<Vec<_>>(),
        "writer": info.writer.as_ref().map(lock_json),
        "writer_waiting": info.writer_waiting,
    })
}

/// A read/write lock as text: a summary line, then its writer or readers.
pub(crate) fn rwlock_text(info: &RwLockInfo, style: Style) -> String {
    let name = printable(&info.name);
    let waiting = if info.writer_waiting {
        " (a writer waits)"
    } else {
        ""
    };
    match &info.writer {
        Some(writer) => format!(
            "read/write lock {name}: held by a writer{waiting}\n{}",
            table(std::slice::from_ref(writer), style)
        ),
        None if info.readers.is_empty() => {
            format!("read/write lock {name} has no readers and no writer{waiting}\n")
        }
        None => format!(
            "read/write lock {name}: {} readers{waiting}\n{}",
            info.readers.len(),
            table(&info.readers, style)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_661); // 2000-02-29
        assert_eq!(utc(leap), "2000-02-29T01:01:01Z");
        let later = UNIX_EPOCH + Duration::from_secs(1_795_478_400); // 2026-11-24
        assert_eq!(utc(later), "2026-11-24T00:00:00Z");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_millis(4_200)), "4.2s");
        assert_eq!(human_duration(Duration::from_secs(185)), "3m 05s");
        assert_eq!(human_duration(Duration::from_secs(7_800)), "2h 10m");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("orders/42"), "orders/42");
    }
}
