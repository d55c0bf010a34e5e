//! Checks for lock records that another program wrote: wrong types,
//! missing fields, huge values. Each backend's tests write such a record
//! with their own driver, then call one of these.

use std::time::Duration;

use super::{op_deadline, owner};
use crate::backend::{list_all, SharedBackend};
use crate::error::{Error, ErrorKind};

/// `name`'s record is malformed in a way that cannot be a live lease (an
/// owner that is not a string, an expiry that is not a time, missing
/// fields): reading it reports the lock free or a
/// [`CorruptRecord`](ErrorKind::CorruptRecord) error, never a panic, and a
/// claim takes it over cleanly; the new holder can extend and release it,
/// and the next holder's fencing token is greater.
pub async fn takes_over_foreign_record(backend: SharedBackend, name: &str) {
    assert_free_or_corrupt(
        "inspect",
        backend
            .inspect(name, op_deadline())
            .await
            .map(|i| i.is_some()),
    );
    assert_free_or_corrupt(
        "list",
        list_all(&*backend, name, 10, Duration::from_secs(10))
            .await
            .map(|l| l.iter().any(|i| i.name == name)),
    );
    let first = owner();
    let grant = backend
        .claim(name, &first, Duration::from_secs(30), op_deadline())
        .await
        .unwrap_or_else(|e| panic!("claiming over a malformed record of {name:?} failed: {e}"))
        .unwrap_or_else(|| panic!("a malformed record of {name:?} holds the lock"));
    let info = backend
        .inspect(name, op_deadline())
        .await
        .unwrap()
        .expect("the lock taken over is not held");
    assert_eq!(info.owner, first);
    assert!(backend
        .extend(name, &first, Duration::from_secs(30), op_deadline())
        .await
        .unwrap()
        .is_some());
    assert!(backend.release(name, &first, op_deadline()).await.unwrap());
    let second = owner();
    let next = backend
        .claim(name, &second, Duration::from_secs(30), op_deadline())
        .await
        .unwrap()
        .expect("released lock not free");
    assert!(next.fencing_token > grant.fencing_token);
    assert!(backend.release(name, &second, op_deadline()).await.unwrap());
}

/// `name`'s record is a live lease of another owner but with a malformed
/// fence: reading it gives the holder or a
/// [`CorruptRecord`](ErrorKind::CorruptRecord) error, never a panic; a
/// claim reports it held; `force_release` frees it, after which a claim
/// succeeds and the next holder's token is greater than the first's.
pub async fn frees_live_foreign_record(backend: SharedBackend, name: &str) {
    match backend.inspect(name, op_deadline()).await {
        Ok(Some(_)) => {}
        Ok(None) => panic!("a live record of {name:?} reads as free"),
        Err(e) => assert_corrupt("inspect", &e),
    }
    let first = owner();
    assert!(
        backend
            .claim(name, &first, Duration::from_secs(30), op_deadline())
            .await
            .unwrap()
            .is_none(),
        "a claim took a live lease of another owner"
    );
    assert!(backend.force_release(name, op_deadline()).await.unwrap());
    let grant = backend
        .claim(name, &first, Duration::from_secs(30), op_deadline())
        .await
        .unwrap()
        .expect("force-released lock not free");
    assert!(backend.release(name, &first, op_deadline()).await.unwrap());
    let second = owner();
    let next = backend
        .claim(name, &second, Duration::from_secs(30), op_deadline())
        .await
        .unwrap()
        .expect("released lock not free");
    assert!(next.fencing_token > grant.fencing_token);
    assert!(backend.release(name, &second, op_deadline()).await.unwrap());
}

fn assert_free_or_corrupt(what: &str, result: crate::Result<bool>) {
    match result {
        Ok(false) => {}
        Ok(true) => panic!("{what}: a malformed record reads as a live lock"),
        Err(e) => assert_corrupt(what, &e),
    }
}

fn assert_corrupt(what: &str, e: &Error) {
    assert_eq!(
        e.kind(),
        Some(ErrorKind::CorruptRecord),
        "{what}: a malformed record gave {e}"
    );
}
