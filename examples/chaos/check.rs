//! The checker: reads a run's history (see `history.rs`) and reports every
//! violation of what the locks promise.
//!
//! A critical section counts from its `start` to its *valid end*: `end`,
//! or the instant the worker saw its guard lost if that came first. A
//! paused process sees nothing: when a pause of the worker (`P` line)
//! overlaps the time from the lease's last confirmed expiry to the instant
//! the loss was seen, the section counts until that expiry instead (the
//! database grants the name to nobody else before it, and the guard must
//! have stopped vouching for the lease by then). Otherwise the instant seen
//! stands, so a guard that tells a running process of a loss after another
//! holder got in shows up as an overlap. A section with no `E` line (its
//! worker was killed mid-hold: no release was ever sent) counts until the
//! grant's expiry. A section whose valid end is not after its start
//! protected nothing and takes no part in the exclusion checks.
//!
//! - exclusion: per name, at no instant more sections inside than the
//!   name's limit (1 for locks and fair locks, the permits of a semaphore);
//! - fencing tokens, per name: unique; a section that started before
//!   another section's acquire was called has the smaller token (its grant
//!   came first); and for locks, tokens increase in start order;
//! - progress: every worker slot got a grant, and so did every incarnation
//!   that ran (not paused) for at least [`PROGRESS_WINDOW_US`];
//! - no worker exited on its own or failed to stop when asked;
//! - nothing was held at the end (`H` lines, written by the scheduler).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use crate::history::{parse, Line, Who};

/// An incarnation that ran this long (µs, pauses excluded) without a single
/// grant did not make progress.
pub(crate) const PROGRESS_WINDOW_US: u64 = 60_000_000;

/// Violations listed in full per check and name; the rest are counted.
const DETAIL_LIMIT: usize = 5;

/// What the checker found.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Sections (grants).
    pub(crate) grants: usize,
    /// Sections whose guard reported the lease lost before the work ended.
    pub(crate) lost: usize,
    /// Sections with no `E` line (the worker was killed mid-hold).
    pub(crate) unfinished: usize,
    /// Acquire calls that timed out or failed.
    pub(crate) misses: usize,
    /// Faults by kind (`F` lines).
    pub(crate) faults: BTreeMap<String, usize>,
    /// Each violation, with the history lines that show it.
    pub(crate) violations: Vec<String>,
}

#[derive(Debug, Clone)]
struct Section {
    who: Who,
    kind: String,
    limit: u32,
    name: String,
    token: u64,
    requested: u64,
    start: u64,
    expires: u64,
    /// The `E` line, if the worker wrote it.
    end: Option<End>,
    /// The valid end (see the module docs), once every line is read.
    until: u64,
    /// Whether the loss was seen late because the worker was paused, so
    /// the section counts until the lease's expiry.
    seen_late: bool,
}

#[derive(Debug, Clone, Copy)]
struct End {
    end: u64,
    lost: Option<u64>,
    expires: u64,
}

impl Section {
    fn valid_end(&self) -> u64 {
        self.until
    }

    /// Sets the valid end, given the pauses of this section's worker.
    fn settle(&mut self, pauses: &[(u64, u64)]) {
        let Some(End { end, lost, expires }) = self.end else {
            self.until = self.expires;
            return;
        };
        let Some(lost) = lost else {
            self.until = end;
            return;
        };
        self.seen_late = lost > expires
            && pauses
                .iter()
                .any(|&(from, to)| from <= lost && to >= expires);
        self.until = end.min(if self.seen_late { expires } else { lost });
    }

    fn protected(&self) -> bool {
        self.valid_end() > self.start
    }

    fn describe(&self) -> String {
        let Who { slot, inc, pid } = self.who;
        let begin = format!(
            "B {slot} {inc} {pid} {} {} {} {} {} {} {}",
            self.kind, self.limit, self.name, self.token, self.requested, self.start, self.expires
        );
        let end = match self.end {
            Some(End { end, lost, expires }) => format!(
                "E {slot} {inc} {pid} {} {} {end} {} {expires}",
                self.name,
                self.token,
                lost.map_or("-".to_owned(), |l| l.to_string())
            ),
            None => "(no E line: killed mid-hold; valid until the grant's expiry)".to_owned(),
        };
        let note = if self.seen_late {
            " (loss seen late, after a pause: counted until the lease's expiry)"
        } else {
            ""
        };
        format!(
            "    {begin}\n    {end}\n    -> inside from {} to {}{note}",
            self.start,
            self.valid_end()
        )
    }
}

/// Checks the history `text` (the whole file).
pub(crate) fn check(text: &str) -> Report {
    let mut report = Report::default();
    let mut sections: Vec<Section> = Vec::new();
    let mut index: HashMap<(u32, u32, String, u64), usize> = HashMap::new();
    let mut incarnations: BTreeMap<(u32, u32), Incarnation> = BTreeMap::new();
    let mut held_at_end = Vec::new();
    for raw in text.lines() {
        if let Some(rest) = raw.strip_prefix("H ") {
            held_at_end.push(rest.to_owned());
            continue;
        }
        let Some(line) = parse(raw) else { continue };
        match line {
            Line::Started { who, at } => {
                incarnations.entry((who.slot, who.inc)).or_default().started = Some(at);
            }
            Line::Ended { who, at, how } => {
                let inc = incarnations.entry((who.slot, who.inc)).or_default();
                inc.ended = Some(at);
                if how.starts_with("exited") || how == "killed-at-end" {
                    report.violations.push(format!(
                        "worker slot {} incarnation {} (pid {}) {}: {raw}",
                        who.slot,
                        who.inc,
                        who.pid,
                        if how == "killed-at-end" {
                            "did not stop when asked and was killed"
                        } else {
                            "exited on its own"
                        }
                    ));
                }
            }
            Line::Paused { who, from, to } => {
                let inc = incarnations.entry((who.slot, who.inc)).or_default();
                inc.paused += to.saturating_sub(from);
                inc.pauses.push((from, to));
            }
            Line::Fault { kind, .. } => *report.faults.entry(kind).or_default() += 1,
            Line::Begin {
                who,
                kind,
                limit,
                name,
                token,
                requested,
                start,
                expires,
            } => {
                incarnations.entry((who.slot, who.inc)).or_default().grants += 1;
                index.insert((who.slot, who.inc, name.clone(), token), sections.len());
                sections.push(Section {
                    who,
                    kind,
                    limit,
                    name,
                    token,
                    requested,
                    start,
                    expires,
                    end: None,
                    until: expires,
                    seen_late: false,
                });
            }
            Line::End {
                who,
                name,
                token,
                end,
                lost,
                expires,
            } => {
                if let Some(&i) = index.get(&(who.slot, who.inc, name, token)) {
                    sections[i].end = Some(End { end, lost, expires });
                }
            }
            Line::Release { .. } => {}
            Line::Miss { .. } => report.misses += 1,
        }
    }
    report.grants = sections.len();
    for s in &mut sections {
        let pauses = incarnations
            .get(&(s.who.slot, s.who.inc))
            .map_or(&[][..], |i| &i.pauses[..]);
        s.settle(pauses);
        match s.end {
            None => report.unfinished += 1,
            Some(End { lost: Some(_), .. }) => report.lost += 1,
            _ => {}
        }
    }
    let mut by_name: BTreeMap<&str, Vec<&Section>> = BTreeMap::new();
    for s in &sections {
        by_name.entry(&s.name).or_default().push(s);
    }
    for (name, list) in &by_name {
        check_exclusion(name, list, &mut report.violations);
        check_tokens(name, list, &mut report.violations);
    }
    check_progress(&incarnations, &mut report.violations);
    for held in held_at_end {
        report.violations.push(format!(
            "still held after every worker stopped and the ttl passed: {held}"
        ));
    }
    report
}

#[derive(Debug, Default)]
struct Incarnation {
    started: Option<u64>,
    ended: Option<u64>,
    paused: u64,
    pauses: Vec<(u64, u64)>,
    grants: usize,
}

/// At no instant more protected sections of `name` than its limit.
fn check_exclusion(name: &str, list: &[&Section], out: &mut Vec<String>) {
    let limit = list.iter().map(|s| s.limit).max().unwrap_or(1) as usize;
    let mut inside: Vec<&Section> = list.iter().copied().filter(|s| s.protected()).collect();
    inside.sort_by_key(|s| (s.start, s.token));
    // Sections still inside, by valid end (earliest first).
    let mut active: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut found = 0;
    for (i, s) in inside.iter().enumerate() {
        while let Some(Reverse((until, _))) = active.peek() {
            if *until <= s.start {
                active.pop();
            } else {
                break;
            }
        }
        active.push(Reverse((s.valid_end(), i)));
        if active.len() > limit {
            found += 1;
            if found <= DETAIL_LIMIT {
                let mut who: Vec<usize> = active.iter().map(|Reverse((_, j))| *j).collect();
                who.sort_unstable();
                let detail: Vec<String> = who.iter().map(|&j| inside[j].describe()).collect();
                out.push(format!(
                    "{name}: {} holders inside at once (limit {limit}) at {}:\n{}",
                    active.len(),
                    s.start,
                    detail.join("\n")
                ));
            }
        }
    }
    if found > DETAIL_LIMIT {
        out.push(format!(
            "{name}: {} more instants with too many holders",
            found - DETAIL_LIMIT
        ));
    }
}

/// Fencing tokens of `name`: unique; a section that started before another
/// one's acquire was called has the smaller token; for locks (limit 1),
/// increasing in start order among protected sections.
fn check_tokens(name: &str, list: &[&Section], out: &mut Vec<String>) {
    let mut found = 0;
    let mut report = |out: &mut Vec<String>, what: String| {
        found += 1;
        if found <= DETAIL_LIMIT {
            out.push(what);
        }
    };
    let mut by_token: Vec<&Section> = list.to_vec();
    by_token.sort_by_key(|s| s.token);
    for pair in by_token.windows(2) {
        if pair[0].token == pair[1].token {
            report(
                out,
                format!(
                    "{name}: fencing token {} granted twice:\n{}\n{}",
                    pair[0].token,
                    pair[0].describe(),
                    pair[1].describe()
                ),
            );
        }
    }
    // Grant order: A started (so A's grant happened) before B's acquire
    // was called, so B's grant came after A's and its token must be larger.
    let mut by_start: Vec<&Section> = list.to_vec();
    by_start.sort_by_key(|s| s.start);
    let mut by_requested: Vec<&Section> = list.to_vec();
    by_requested.sort_by_key(|s| s.requested);
    let mut next = 0;
    let mut highest: Option<&Section> = None;
    for b in by_requested {
        while next < by_start.len() && by_start[next].start < b.requested {
            let a = by_start[next];
            if highest.is_none_or(|h| a.token > h.token) {
                highest = Some(a);
            }
            next += 1;
        }
        if let Some(a) = highest {
            if a.token >= b.token {
                report(
                    out,
                    format!(
                        "{name}: token {} was granted after token {} (that holder started before this acquire was called):\n{}\n{}",
                        b.token,
                        a.token,
                        a.describe(),
                        b.describe()
                    ),
                );
            }
        }
    }
    if list.iter().all(|s| s.limit == 1) {
        let mut inside: Vec<&Section> = list.iter().copied().filter(|s| s.protected()).collect();
        inside.sort_by_key(|s| s.start);
        for pair in inside.windows(2) {
            if pair[0].token >= pair[1].token {
                report(
                    out,
                    format!(
                        "{name}: fencing tokens out of start order:\n{}\n{}",
                        pair[0].describe(),
                        pair[1].describe()
                    ),
                );
            }
        }
    }
    if found > DETAIL_LIMIT {
        out.push(format!(
            "{name}: {} more fencing token violations",
            found - DETAIL_LIMIT
        ));
    }
}

fn check_progress(incarnations: &BTreeMap<(u32, u32), Incarnation>, out: &mut Vec<String>) {
    let mut per_slot: BTreeMap<u32, usize> = BTreeMap::new();
    let last = incarnations
        .values()
        .filter_map(|i| i.ended.or(i.started))
        .max()
        .unwrap_or(0);
    for (&(slot, inc), i) in incarnations {
        *per_slot.entry(slot).or_default() += i.grants;
        let Some(started) = i.started else { continue };
        let ran = i
            .ended
            .unwrap_or(last)
            .saturating_sub(started)
            .saturating_sub(i.paused);
        if i.grants == 0 && ran >= PROGRESS_WINDOW_US {
            out.push(format!(
                "worker slot {slot} incarnation {inc} ran {:.1} s (not paused) without a single grant",
                ran as f64 / 1e6
            ));
        }
    }
    for (slot, grants) in per_slot {
        if grants == 0 {
            out.push(format!("worker slot {slot} never got a grant"));
        }
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
