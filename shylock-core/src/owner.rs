//! Owner tokens: who holds a lease, readable by an operator.
//!
//! A token is `LABEL:UUID`: a human label (by default this host's name and
//! this process's id, `host:pid`; set with
//! [`LockOptions::owner_label`](crate::LockOptions::owner_label)) and a
//! fresh UUID that makes every acquisition's token unique. Stores keep it
//! as an opaque string and release compares it whole, so the label changes
//! nothing in how locks are held.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Longest owner label, in bytes.
pub(crate) const MAX_OWNER_LABEL_LEN: usize = 128;

/// A fresh owner token for one acquisition: the label of `options` (or the
/// default `host:pid`), a colon and a new UUID.
pub(crate) fn token(label: Option<&str>) -> String {
    let label = label.unwrap_or_else(|| default_label());
    format!("{label}:{}", uuid::Uuid::new_v4())
}

/// The label part of an owner token made by [`token`] (everything before
/// the last colon), or `None` for a bare token (a UUID, as earlier
/// versions wrote).
#[cfg(test)]
fn owner_label(owner: &str) -> Option<&str> {
    owner
        .rsplit_once(':')
        .map(|(label, _)| label)
        .filter(|l| !l.is_empty())
}

/// `host:pid` of this process, computed once.
pub(crate) fn default_label() -> &'static str {
    static LABEL: OnceLock<String> = OnceLock::new();
    LABEL.get_or_init(|| format!("{}:{}", host_name(), std::process::id()))
}

/// This host's name, from the kernel, `/etc/hostname` or the environment;
/// `unknown-host` when none says. Kept to label-safe characters.
fn host_name() -> String {
    let from_file = |path: &str| std::fs::read_to_string(path).ok();
    let name = from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| !c.is_control() && *c != ':')
        .take(64)
        .collect();
    if name.is_empty() {
        "unknown-host".to_owned()
    } else {
        name
    }
}

/// Checks an owner label: 1 to [`MAX_OWNER_LABEL_LEN`] bytes, no control
/// characters.
pub(crate) fn validate_label(label: &str) -> Result<()> {
    if label.is_empty() {
        return Err(Error::invalid_options(
            "owner label is empty; leave it unset for the default host:pid".to_owned(),
        ));
    }
    if label.len() > MAX_OWNER_LABEL_LEN {
        return Err(Error::invalid_options(format!(
            "owner label is {} bytes long; use at most {MAX_OWNER_LABEL_LEN} (a host, \
             service or worker name)",
            label.len()
        )));
    }
    if let Some(c) = label.chars().find(|c| c.is_control()) {
        return Err(Error::invalid_options(format!(
            "owner label {label:?} holds the control character {c:?}; use printable text"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_the_label_and_are_unique() {
        let a = token(Some("worker-3"));
        let b = token(Some("worker-3"));
        assert_ne!(a, b);
        assert_eq!(owner_label(&a), Some("worker-3"));
        let default = token(None);
        let label = owner_label(&default).unwrap();
        let (host, pid) = label.rsplit_once(':').unwrap();
        assert!(!host.is_empty());
        assert_eq!(pid, std::process::id().to_string());
        assert_eq!(owner_label("0b7e0e9c-9d1b-4c6e-9a7c-1d2f3e4a5b6c"), None);
    }

    #[test]
    fn bad_labels_are_invalid_options() {
        for bad in [
            "",
            "tab\there",
            "new\nline",
            &"x".repeat(MAX_OWNER_LABEL_LEN + 1),
        ] {
            assert!(
                matches!(validate_label(bad), Err(Error::InvalidOptions { .. })),
                "{bad:?} accepted"
            );
        }
        assert!(validate_label("web-1:4242").is_ok());
        assert!(validate_label("café").is_ok());
    }

    #[tokio::test]
    async fn a_lock_with_a_bad_label_fails_before_any_round_trip() {
        let options = crate::LockOptions::default().owner_label("two\nlines");
        let lock = crate::AsyncLock::with_backend("labelled", crate::MemoryBackend::new())
            .with_options(options);
        let error = lock
            .try_acquire()
            .await
            .expect_err("a bad label is refused");
        assert!(matches!(error, Error::InvalidOptions { .. }), "{error:?}");
        assert!(error.to_string().contains("control character"), "{error}");
        let labelled = crate::LockOptions::default().owner_label("worker-7");
        let guard = crate::AsyncLock::with_backend("labelled", crate::MemoryBackend::new())
            .with_options(labelled)
            .acquire()
            .await
            .unwrap();
        assert_eq!(owner_label(guard.owner()), Some("worker-7"));
    }
}
