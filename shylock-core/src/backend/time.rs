//! Time and ordering helpers shared by backends.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::error::{Error, Result};

/// The instant by which one backend operation must be done.
///
/// The core enforces it (it stops waiting for the operation then); backends
/// pass [`remaining`](Self::remaining) on to their driver so the server
/// stops too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Deadline(Instant::now() + budget)
    }

    /// A deadline at `at`.
    pub fn at(at: Instant) -> Self {
        Deadline(at)
    }

    /// The instant itself.
    pub fn instant(&self) -> Instant {
        self.0
    }

    /// Time left before the deadline (zero once it passed).
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline passed.
    pub fn has_passed(&self) -> bool {
        Instant::now() >= self.0
    }

    /// The earlier of two deadlines.
    pub fn min(self, other: Deadline) -> Deadline {
        std::cmp::min(self, other)
    }

    /// Runs one backend operation, bounded by this deadline: past it the
    /// future is dropped and the result is an
    /// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) error naming
    /// `operation`.
    pub(crate) async fn bound<T>(
        self,
        operation: &str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let budget = self.remaining();
        match tokio::time::timeout_at(self.0, fut).await {
            Ok(result) => result,
            Err(_) => Err(Error::timed_out(operation, budget)),
        }
    }
}

/// Converts milliseconds since the Unix epoch, as databases store them, into a
/// [`SystemTime`] (negative values clamp to the epoch).
pub fn system_time_from_millis(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// Converts a [`Duration`] to whole milliseconds for a database, rounding up
/// so a lease is never shorter than asked.
pub fn duration_to_millis(d: Duration) -> i64 {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// The smallest string greater than every string that starts with
/// `prefix`, in byte (code point) order; `None` when there is none (an
/// empty prefix, or one made only of `U+10FFFF`).
///
/// Backends that store names as ordered strings list a prefix as the range
/// `prefix <= name < prefix_upper_bound(prefix)`.
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::backend::prefix_upper_bound;
///
/// assert_eq!(prefix_upper_bound("jobs/").as_deref(), Some("jobs0"));
/// assert_eq!(prefix_upper_bound(""), None);
/// ```
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 {
            0xD7FF => Some('\u{E000}'),
            code => char::from_u32(code + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bound_is_above_every_extension_and_below_the_next_prefix() {
        for prefix in ["a", "jobs/", "x\u{D7FF}", "é", "a\u{10FFFF}", "\0"] {
            let upper = prefix_upper_bound(prefix).unwrap();
            for tail in ["", "\0", "zzz", "\u{10FFFF}\u{10FFFF}"] {
                let name = format!("{prefix}{tail}");
                assert!(name.as_bytes() < upper.as_bytes(), "{name:?} !< {upper:?}");
            }
            assert!(!upper.starts_with(prefix));
        }
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
    }

    #[test]
    fn millis_round_up_and_clamp() {
        assert_eq!(duration_to_millis(Duration::from_micros(1500)), 2);
        assert_eq!(duration_to_millis(Duration::from_millis(3)), 3);
        assert_eq!(duration_to_millis(Duration::MAX), i64::MAX);
        assert_eq!(system_time_from_millis(-5), SystemTime::UNIX_EPOCH);
    }
}
