//! The checker must report what it is for, and nothing on a clean history.

use super::*;

/// A section of `name` by worker `slot`: B line (requested 1 µs before
/// start, grant expiry 2 s after) and, unless `end` is `None`, the E line.
fn section(
    slot: u32,
    name: &str,
    limit: u32,
    token: u64,
    start: u64,
    end: Option<u64>,
    lost: Option<u64>,
) -> String {
    let kind = if limit == 1 { "lock" } else { "sem" };
    let mut text = format!(
        "B {slot} 1 {} {kind} {limit} {name} {token} {} {start} {}\n",
        100 + slot,
        start - 1,
        start + 2_000_000
    );
    if let Some(end) = end {
        let lost = lost.map_or("-".to_owned(), |l| l.to_string());
        text += &format!(
            "E {slot} 1 {} {name} {token} {end} {lost} {}\n",
            100 + slot,
            start + 2_000_000
        );
        text += &format!("R {slot} 1 {} {name} {token} ok\n", 100 + slot);
    }
    text
}

fn workers(slots: u32) -> String {
    (0..slots)
        .map(|s| {
            format!(
                "I {s} 1 {} 0\nX {s} 1 {} 30000000 stopped\n",
                100 + s,
                100 + s
            )
        })
        .collect()
}

fn clean() -> String {
    let mut h = workers(2);
    h += "F stop 5 900\nF kill 10 10 slot=1\n";
    h += &section(0, "chaos/lock-0", 1, 1, 10, Some(20), None);
    h += &section(1, "chaos/lock-0", 1, 2, 25, Some(40), None);
    // Lost at 50 while paused, so the next holder may enter at 55.
    h += &section(0, "chaos/lock-0", 1, 3, 45, Some(90), Some(50));
    h += &section(1, "chaos/lock-0", 1, 4, 55, Some(60), None);
    // A semaphore of two: two inside at once is fine.
    h += &section(0, "chaos/sem", 2, 1, 10, Some(50), None);
    h += &section(1, "chaos/sem", 2, 2, 20, Some(60), None);
    h += &section(0, "chaos/sem", 2, 3, 55, Some(70), None);
    // Killed mid-hold: inside until the grant's expiry, and the next
    // holder came after it.
    h += &section(1, "chaos/lock-1", 1, 7, 100, None, None);
    h += &section(0, "chaos/lock-1", 1, 8, 2_000_200, Some(2_000_300), None);
    h += "M 0 1 100 lock chaos/lock-2 timeout 5 3000005\n";
    h
}

#[test]
fn a_clean_history_has_no_violations() {
    let report = check(&clean());
    assert_eq!(report.violations, Vec::<String>::new());
    assert_eq!(report.grants, 9);
    assert_eq!(report.lost, 1);
    assert_eq!(report.unfinished, 1);
    assert_eq!(report.misses, 1);
    assert_eq!(report.faults.get("stop"), Some(&1));
    assert_eq!(report.faults.get("kill"), Some(&1));
}

#[test]
fn an_overlap_is_reported_with_both_records() {
    let mut h = clean();
    // Slot 1 enters chaos/lock-2 while slot 0 is inside and not lost.
    h += &section(0, "chaos/lock-2", 1, 1, 1000, Some(2000), None);
    h += &section(1, "chaos/lock-2", 1, 2, 1500, Some(2500), None);
    let report = check(&h);
    assert_eq!(report.violations.len(), 1, "{:#?}", report.violations);
    let v = &report.violations[0];
    assert!(v.contains("2 holders inside at once"), "{v}");
    assert!(
        v.contains("B 0 1 100 lock 1 chaos/lock-2 1 999 1000"),
        "{v}"
    );
    assert!(
        v.contains("B 1 1 101 lock 1 chaos/lock-2 2 1499 1500"),
        "{v}"
    );
}

#[test]
fn a_holder_that_was_not_told_it_lost_overlaps() {
    let mut h = clean();
    // Paused past its expiry, but its guard never reported the loss: the
    // second holder's entry at 1500 is an overlap.
    h += &section(0, "chaos/lock-2", 1, 1, 1000, Some(9000), None);
    h += &section(1, "chaos/lock-2", 1, 2, 1500, Some(2500), None);
    assert_eq!(check(&h).violations.len(), 1);
    // Told at 1400: no overlap.
    let mut h = clean();
    h += &section(0, "chaos/lock-2", 1, 1, 1000, Some(9000), Some(1400));
    h += &section(1, "chaos/lock-2", 1, 2, 1500, Some(2500), None);
    assert_eq!(check(&h).violations, Vec::<String>::new());
}

#[test]
fn a_loss_seen_late_counts_from_the_expiry_only_after_a_pause() {
    // Slot 0's lease (confirmed until 2_001_000) was seen lost at
    // 5_000_000; slot 1 got in at 3_000_000.
    let late = "B 0 1 100 lock 1 chaos/lock-2 1 999 1000 2001000\n\
                E 0 1 100 chaos/lock-2 1 5000100 5000000 2001000\n";
    let mut h = clean() + late;
    h += &section(1, "chaos/lock-2", 1, 2, 3_000_000, Some(3_100_000), None);
    // Its process ran all along: the guard told it too late.
    let report = check(&h);
    assert_eq!(report.violations.len(), 1, "{:#?}", report.violations);
    assert!(report.violations[0].contains("2 holders inside at once"));
    // Paused over the expiry: it could not see the loss any earlier.
    h += "P 0 1 100 1500000 4999000\n";
    assert_eq!(check(&h).violations, Vec::<String>::new());
}

#[test]
fn a_killed_holder_is_inside_until_its_grant_expires() {
    let mut h = clean();
    h += &section(0, "chaos/lock-2", 1, 1, 1000, None, None);
    h += &section(1, "chaos/lock-2", 1, 2, 1_500_000, Some(1_600_000), None);
    let report = check(&h);
    assert_eq!(report.violations.len(), 1, "{:#?}", report.violations);
    assert!(report.violations[0].contains("no E line"));
}

#[test]
fn too_many_semaphore_holders_are_reported() {
    let mut h = clean();
    h += &section(0, "chaos/sem-b", 2, 1, 1000, Some(2000), None);
    h += &section(1, "chaos/sem-b", 2, 2, 1100, Some(2000), None);
    h += &section(1, "chaos/sem-b", 2, 3, 1200, Some(2000), None);
    let report = check(&h);
    assert_eq!(report.violations.len(), 1, "{:#?}", report.violations);
    assert!(report.violations[0].contains("3 holders inside at once (limit 2)"));
}

#[test]
fn a_token_regression_is_reported() {
    let mut h = clean();
    // Token 5 then token 4, one after the other: no overlap, but the later
    // grant has the smaller token.
    h += &section(0, "chaos/lock-2", 1, 5, 1000, Some(2000), None);
    h += &section(1, "chaos/lock-2", 1, 4, 3000, Some(4000), None);
    let report = check(&h);
    assert!(!report.violations.is_empty());
    assert!(
        report.violations.iter().all(|v| v.contains("token")),
        "{:#?}",
        report.violations
    );
    // On a semaphore too, where sections may overlap.
    let mut h = clean();
    h += &section(0, "chaos/sem-b", 2, 5, 1000, Some(2000), None);
    h += &section(1, "chaos/sem-b", 2, 5, 3000, Some(4000), None);
    let report = check(&h);
    assert!(report
        .violations
        .iter()
        .any(|v| v.contains("granted twice")));
}

#[test]
fn a_semaphore_grant_answered_late_is_not_a_regression() {
    // Token 5 was granted first but its worker wrote its start after token
    // 6's holder had come and gone: the grant order is unknown, no report.
    let mut h = clean();
    h += "B 0 1 100 sem 2 chaos/sem-b 5 900 3000 2000900\n";
    h += &section(1, "chaos/sem-b", 2, 6, 1000, Some(2000), None);
    assert_eq!(check(&h).violations, Vec::<String>::new());
}

#[test]
fn progress_and_exits_are_checked() {
    let mut h = clean();
    h += "I 2 1 102 0\nX 2 1 102 30000000 stopped\n";
    let report = check(&h);
    assert_eq!(report.violations, vec!["worker slot 2 never got a grant"]);
    let mut h = clean();
    h += "I 0 2 200 0\nX 0 2 200 70000000 killed\nP 0 2 200 1000 5000000\n";
    let report = check(&h);
    assert_eq!(report.violations.len(), 1, "{:#?}", report.violations);
    assert!(report.violations[0].contains("without a single grant"));
    let mut h = clean();
    h += "I 0 3 300 0\nX 0 3 300 1000 exited:101\n";
    assert!(check(&h).violations[0].contains("exited on its own"));
}

#[test]
fn locks_held_at_the_end_are_reported() {
    let mut h = clean();
    h += "H chaos/lock-0 owner=chaos-0-100:x token=9\n";
    let report = check(&h);
    assert_eq!(report.violations.len(), 1);
    assert!(report.violations[0].contains("still held"));
}
