//! Names: edge cases, distinctness, and listing in byte order.

use std::time::Duration;

use crate::backend::{list_all, SharedBackend, MAX_NAME_LEN};
use crate::error::Error;
use crate::lock::AsyncLock;
use crate::testkit::{claim_or_panic, op_deadline, owner, unique_name};

use super::suite_options;

/// `list` returns exactly the live holders under a prefix, in byte order of
/// their names, page by page; released, expired and other-prefix locks
/// are left out.
pub async fn list_live_holders(backend: SharedBackend) {
    let base = unique_name("list");
    let prefix = format!("{base}/");
    let long = Duration::from_secs(30);
    // Byte order, not insertion order; "é" sorts after every ASCII letter.
    let suffixes = ["é", "b", "a/1", "a", "c\0", "a/2", "B"];
    let mut expected = Vec::new();
    for suffix in suffixes {
        let name = format!("{prefix}{suffix}");
        let me = owner();
        let grant = claim_or_panic(&backend, &name, &me, long).await;
        expected.push((name, me, grant.fencing_token));
    }
    expected.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    // Not listed: a released lock, an expired one, and names just outside
    // the prefix on both sides.
    let released = format!("{prefix}released");
    let me = owner();
    claim_or_panic(&backend, &released, &me, long).await;
    assert!(backend
        .release(&released, &me, op_deadline())
        .await
        .unwrap());
    let expired = format!("{prefix}expired");
    claim_or_panic(&backend, &expired, &owner(), Duration::from_millis(1)).await;
    for outside in [base.clone(), format!("{base}0"), format!("{base}.")] {
        claim_or_panic(&backend, &outside, &owner(), long).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;

    for page in [1, 2, 3, 100] {
        let all = list_all(&*backend, &prefix, page, Duration::from_secs(30))
            .await
            .unwrap();
        let got: Vec<(String, String, u64)> = all
            .iter()
            .map(|i| (i.name.clone(), i.owner.clone(), i.fencing_token))
            .collect();
        assert_eq!(got, expected, "list with pages of {page}");
        assert!(all
            .iter()
            .all(|i| i.expires_at > std::time::SystemTime::UNIX_EPOCH));
    }
    // One page starting after a given name.
    let page = backend
        .list(&prefix, Some(&expected[2].0), 2, op_deadline())
        .await
        .unwrap();
    let names: Vec<&str> = page.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, [expected[3].0.as_str(), expected[4].0.as_str()]);
    // A prefix nobody uses.
    assert!(backend
        .list(&format!("{base}/none/"), None, 10, op_deadline())
        .await
        .unwrap()
        .is_empty());
}

/// Names with slashes, dots, `$`, spaces, emoji, NUL, and names up to 64 KiB
/// are valid and distinct; empty and oversize names are `InvalidName`.
pub async fn name_edge_cases(backend: SharedBackend) {
    let base = unique_name("names");
    let suffixes = [
        "/a/b",
        ".dots.",
        "$dollar",
        "with space",
        "emoji-🔒",
        "nul\0byte",
        "nul\0bytf",
        "UPPER",
        "upper",
        "a.b",
        "a_b",
        "a%2Fb",
        "a/b",
        "tab\t",
        "quote\"'",
        "\\back",
    ];
    let locks: Vec<AsyncLock> = suffixes
        .iter()
        .map(|s| {
            AsyncLock::with_backend(format!("{base}{s}"), backend.clone())
                .with_options(suite_options())
        })
        .collect();
    let mut guards = Vec::new();
    for lock in &locks {
        let guard = lock.try_acquire().await.unwrap();
        assert!(
            guard.is_some(),
            "name {:?} clashed with another name",
            lock.name()
        );
        guards.push(guard.unwrap());
    }
    for (lock, guard) in locks.iter().zip(&guards) {
        let info = lock.inspect().await.unwrap().expect("held");
        assert_eq!(info.name, lock.name());
        assert_eq!(info.fencing_token, guard.fencing_token());
        assert!(lock.try_acquire().await.unwrap().is_none());
    }
    for guard in guards {
        guard.release().await.unwrap();
    }
    // The longest valid name, and names differing only in their last byte.
    let prefix_len = MAX_NAME_LEN - 1;
    let mut long = "x".repeat(prefix_len - base.len());
    long.insert_str(0, &base);
    let long_a = AsyncLock::with_backend(format!("{long}a"), backend.clone());
    let long_b = AsyncLock::with_backend(format!("{long}b"), backend.clone());
    assert_eq!(long_a.name().len(), MAX_NAME_LEN);
    let ga = long_a
        .try_acquire()
        .await
        .unwrap()
        .expect("64 KiB name rejected");
    let gb = long_b
        .try_acquire()
        .await
        .unwrap()
        .expect("long names clashed");
    ga.release().await.unwrap();
    gb.release().await.unwrap();
    for bad in [String::new(), format!("{long}ab")] {
        let result = AsyncLock::with_backend(bad, backend.clone())
            .try_acquire()
            .await;
        assert!(
            matches!(result, Err(Error::InvalidName { .. })),
            "{result:?}"
        );
    }
}

/// Generated names (seeded, reproducible): arbitrary UTF-8 including
/// control characters and NUL, look-alikes (case, width, Cyrillic letters,
/// zero-width and combining characters, escapes, hash-like forms) and long
/// names near the limit. Distinct names never collide: each is held by its
/// own owner at once, `inspect` returns that owner under the exact name,
/// and `list` returns exactly the set in byte order. Set
/// `SHYLOCK_TEST_SEED` to replay a run; the seed is printed on failure.
pub async fn generated_names_never_collide(backend: SharedBackend) {
    let seed = std::env::var("SHYLOCK_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let base = format!("{}/", unique_name("gen"));
    let mut tails: Vec<String> = [
        "lock",
        "Lock",
        "LOCK",
        "lock ",
        " lock",
        "lock\0",
        "\0lock",
        "lock\u{200b}",
        "ｌｏｃｋ",
        "l\u{043e}ck",
        "\u{e9}",
        "e\u{301}",
        "a/b",
        "a%2Fb",
        "a.b",
        "a_b",
        "a$b",
        "a:b",
        "sha256:00",
        "_",
        "-",
        "0",
        "00",
        "\u{10ffff}",
        "\u{7f}",
        "\u{1b}[0m",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for _ in 0..24 {
        let len = rng.usize(1..40);
        tails.push(
            (0..len)
                .map(|_| match rng.u8(0..4) {
                    0 => rng.char('\0'..='\u{1f}'),
                    1 => rng.char(' '..='~'),
                    2 => rng.char('\u{80}'..='\u{ffff}'),
                    _ => rng.char('\u{10000}'..='\u{10ffff}'),
                })
                .collect(),
        );
    }
    for _ in 0..3 {
        // Long names that share all but their last character.
        let room = MAX_NAME_LEN - base.len() - 1;
        let stem: String = std::iter::repeat_with(|| rng.alphanumeric())
            .take(room)
            .collect();
        for last in ['a', 'b'] {
            tails.push(format!("{stem}{last}"));
        }
    }
    tails.sort();
    tails.dedup();
    let names: Vec<String> = tails.iter().map(|t| format!("{base}{t}")).collect();
    let context = format!("seed {seed} (replay with SHYLOCK_TEST_SEED={seed})");
    let owners: Vec<String> = names.iter().map(|_| owner()).collect();
    for (name, owner) in names.iter().zip(&owners) {
        let deadline = op_deadline();
        let grant = backend
            .claim(name, owner, Duration::from_secs(60), deadline)
            .await;
        assert!(
            matches!(grant, Ok(Some(_))),
            "{context}: name {name:?} collided with another name or failed: {grant:?}"
        );
    }
    for (name, owner) in names.iter().zip(&owners) {
        let info = backend
            .inspect(name, op_deadline())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{context}: {name:?} is not held"));
        assert_eq!(&info.name, name, "{context}");
        assert_eq!(
            &info.owner, owner,
            "{context}: {name:?} has another name's owner"
        );
    }
    let listed: Vec<String> = list_all(&*backend, &base, 7, Duration::from_secs(30))
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    let mut expected = names.clone();
    expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(
        listed, expected,
        "{context}: list is not the set in byte order"
    );
    for (name, owner) in names.iter().zip(&owners) {
        assert!(
            backend.release(name, owner, op_deadline()).await.unwrap(),
            "{context}: {name:?}"
        );
    }
}
