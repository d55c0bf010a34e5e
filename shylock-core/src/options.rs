//! Per-lock settings: ttl, renewal, waiting and backoff.

use std::time::Duration;

use crate::error::{Error, Result};

/// Longest accepted ttl (one year).
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// How a lock is held and waited for. Every setting has a default that works.
///
/// Invalid combinations are reported as [`Error::InvalidOptions`] when the
/// lock is used (or by [`LockOptions::validate`]).
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use std::time::Duration;
/// use shylock::LockOptions;
///
/// let options = LockOptions::default()
///     .ttl(Duration::from_secs(10))
///     .wait_timeout(Some(Duration::from_secs(2)))
///     .backoff(Duration::from_millis(5), Duration::from_millis(100));
/// assert!(options.validate().is_ok());
/// assert!(LockOptions::default().ttl(Duration::ZERO).validate().is_err());
/// ```
///
/// Fields can be read directly (`options.ttl`); set them with the builder
/// methods of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockOptions {
    /// How long a lease lasts unless renewed. Default: 30 s.
    pub ttl: Duration,
    /// How long `acquire()` waits before [`Error::Timeout`]. Default: none.
    pub wait_timeout: Option<Duration>,
    /// Shortest pause between two attempts while waiting. Default: 2 ms.
    pub min_backoff: Duration,
    /// Longest pause between two attempts while waiting. Default: 200 ms.
    pub max_backoff: Duration,
    /// Background renewal of held leases. Default: [`Renewal::Auto`].
    pub renewal: Renewal,
    /// Bound on each single database operation. Default: 10 s.
    pub operation_timeout: Duration,
    /// Allowance for the host's clock running slower than the database's,
    /// in parts per million. Default: 10 000 (1 %).
    pub clock_drift_ppm: u32,
    /// Whether metrics carry the lock name as a `name` label (feature
    /// `metrics`). Default: `false`.
    pub name_in_metrics: bool,
    /// Whether `acquire()` waits in line: granted in arrival order. Default:
    /// `false`.
    pub fair: bool,
    /// The human part of owner tokens, shown by `shylock list`. Default:
    /// `None`, meaning this host's name and process id (`host:pid`).
    pub owner_label: Option<String>,
}

/// Default [`LockOptions::clock_drift_ppm`]: 1 %, twenty times the 500 ppm
/// that NTP tolerates for an undisciplined clock.
pub const DEFAULT_CLOCK_DRIFT_PPM: u32 = 10_000;

/// Default bound on one database operation (see
/// [`LockOptions::operation_timeout`]).
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether and how often a held lock's lease is extended in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Renewal {
    /// No renewal: the lock expires `ttl` after it was taken (or last
    /// extended with `extend`).
    Off,
    /// Extend every `ttl / 3` (the default).
    Auto,
    /// Extend at this interval; it must be shorter than the ttl.
    Every(Duration),
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            ttl: Duration::from_secs(30),
            wait_timeout: None,
            min_backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(200),
            renewal: Renewal::Auto,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            clock_drift_ppm: DEFAULT_CLOCK_DRIFT_PPM,
            name_in_metrics: false,
            fair: false,
            owner_label: None,
        }
    }
}

impl LockOptions {
    /// Default options (same as [`Default::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a lease lasts unless renewed. A holder that crashes keeps the
    /// lock at most this long. Default: 30 s. Range: 1 ms to one year.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Labels this process's owner tokens, so an operator can tell who
    /// holds a lock (`shylock list`, `inspect`): a token is `LABEL:UUID`,
    /// with a fresh UUID per acquisition. Default: this host's name and
    /// process id, `host:pid`. At most 128 bytes, no control characters
    /// ([`Error::InvalidOptions`] otherwise, when the lock is used).
    ///
    /// ```
    /// # extern crate shylock_core as shylock;
    /// use shylock::LockOptions;
    ///
    /// assert!(LockOptions::default().owner_label("billing-worker-3").validate().is_ok());
    /// assert!(LockOptions::default().owner_label("bad\nlabel").validate().is_err());
    /// ```
    pub fn owner_label(mut self, label: impl Into<String>) -> Self {
        self.owner_label = Some(label.into());
        self
    }

    /// How long `acquire()` waits before failing with
    /// [`Error::Timeout`]. Default: `None` (wait as long as it takes).
    pub fn wait_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// Bounds of the pause between two attempts while waiting. The pause
    /// starts at `min`, doubles after each failed attempt up to `max`, and
    /// is drawn uniformly below that bound (full jitter) so waiters spread
    /// out. Default: 2 ms to 200 ms. `min` must be at least 1 ms and not above
    /// `max`.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max;
        self
    }

    /// Background renewal of held leases. Default: [`Renewal::Auto`]
    /// (every ttl / 3).
    pub fn renewal(mut self, renewal: Renewal) -> Self {
        self.renewal = renewal;
        self
    }

    /// Bound on each single database operation: one attempt of
    /// `try_acquire` / `acquire`, `extend`, `release`, drop-release,
    /// `is_locked`, `inspect`, `force_release`. Past it the operation fails
    /// with an [`Error::Backend`] of kind
    /// [`TimedOut`](crate::ErrorKind::TimedOut). Default: 10 s. Range: 1 ms
    /// to 10 min.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// How much faster the database's clock may run than this host's, in
    /// parts per million. A guard counts its lease as over once
    /// `ttl × (1 − ppm / 1 000 000)` has passed on the host's clock since
    /// the request that set it was sent; the database cannot have ended the
    /// lease before then unless its clock runs faster by more than this
    /// rate. So a holder learns it lost the lock (and renewal gives up) no
    /// later than the moment another owner could take it over. Default:
    /// 10 000 (1 %: a 30 s lease counts as over after 29.7 s). Range: 0 to
    /// 100 000 (10 %).
    ///
    /// Wall-clock *offsets* do not matter, since the database alone judges
    /// expiry; only the *rates* of the host's monotonic clock and the
    /// database's clock do. With several database routers (MongoDB
    /// `mongos`, ArangoDB coordinators), each judges by its own clock, so
    /// keep them NTP-synced.
    pub fn clock_drift_ppm(mut self, ppm: u32) -> Self {
        self.clock_drift_ppm = ppm;
        self
    }

    /// Fair waiting: `acquire()` takes a place in line (a ticket, see
    /// [`AsyncLock::enqueue`](crate::AsyncLock::enqueue)) and the lock goes
    /// to waiters in the order they arrived, across processes. A ticket has
    /// a lease of its own (the ttl), renewed while its waiter waits, so a
    /// crashed waiter holds up the line for at most one ttl. `try_acquire()`
    /// takes the lock only when it is free and nobody is in line.
    ///
    /// Locks used without `fair(true)` do not queue: they take the lock
    /// whenever it is free, even ahead of fair waiters (they "barge"). For
    /// strict arrival order, every user of the name sets `fair(true)`.
    /// Mixing the two on one name also costs the non-fair waiters their
    /// wake-ups: where a backend signals turns (MongoDB, a SQLite file), a
    /// release made in another process wakes only the fair waiter first in
    /// line, so the non-fair waiters of that name in this process notice
    /// it at their next poll (every 1.5 to 3 s).
    ///
    /// A line holds at most [`MAX_WAITERS`](crate::MAX_WAITERS) live
    /// tickets; past that, `acquire()` and `enqueue()` fail with
    /// [`ErrorKind::LimitReached`](crate::ErrorKind::LimitReached).
    /// Default: `false` (a free lock goes to whichever waiter tries first,
    /// which is faster).
    ///
    /// Applies to locks and [semaphores](crate::AsyncSemaphore#fair-semaphores);
    /// multi-locks, reentrant locks and elections ignore it.
    pub fn fair(mut self, fair: bool) -> Self {
        self.fair = fair;
        self
    }

    /// Whether metrics (feature `metrics`) carry this lock's name as a
    /// `name` label. Default: `false`, so a service that locks one name per
    /// order or user does not create a time series per name; turn it on
    /// for a handful of well-known locks. Tracing spans always carry the
    /// name.
    pub fn name_in_metrics(mut self, on: bool) -> Self {
        self.name_in_metrics = on;
        self
    }

    /// The local instant by which a lease set by a request sent at
    /// `request_started` with this `ttl` must count as over (see
    /// [`clock_drift_ppm`](Self::clock_drift_ppm)).
    pub(crate) fn lease_deadline(
        &self,
        request_started: tokio::time::Instant,
        ttl: Duration,
    ) -> tokio::time::Instant {
        lease_deadline(request_started, ttl, self.clock_drift_ppm)
    }

    /// The interval between renewals, or `None` when renewal is off.
    pub fn renewal_interval(&self) -> Option<Duration> {
        match self.renewal {
            Renewal::Off => None,
            Renewal::Auto => Some(self.ttl / 3),
            Renewal::Every(d) => Some(d),
        }
    }

    /// Checks every setting; the error names the setting and its range.
    pub fn validate(&self) -> Result<()> {
        validate_ttl(self.ttl)?;
        if self.min_backoff < Duration::from_millis(1) {
            return Err(Error::invalid_options(format!(
                "minimum backoff {:?} is below 1 ms; use at least 1 ms so waiters do not spin",
                self.min_backoff
            )));
        }
        if self.min_backoff > self.max_backoff {
            return Err(Error::invalid_options(format!(
                "minimum backoff {:?} is greater than maximum backoff {:?}; pass (min, max) with \
                 min <= max",
                self.min_backoff, self.max_backoff
            )));
        }
        if self.max_backoff > Duration::from_secs(3600) {
            return Err(Error::invalid_options(format!(
                "maximum backoff {:?} is over one hour; use a shorter pause",
                self.max_backoff
            )));
        }
        if self.operation_timeout < Duration::from_millis(1)
            || self.operation_timeout > Duration::from_secs(600)
        {
            return Err(Error::invalid_options(format!(
                "operation timeout {:?} is out of range; use 1 ms to 10 min (default 10 s)",
                self.operation_timeout
            )));
        }
        if self.clock_drift_ppm > 100_000 {
            return Err(Error::invalid_options(format!(
                "clock drift allowance {} ppm is over 100 000 (10 %); NTP-synced clocks drift \
                 by less than 500 ppm (default 10 000)",
                self.clock_drift_ppm
            )));
        }
        if let Some(label) = &self.owner_label {
            crate::owner::validate_label(label)?;
        }
        if let Renewal::Every(every) = self.renewal {
            if every.is_zero() || every >= self.ttl {
                return Err(Error::invalid_options(format!(
                    "renewal interval {every:?} must be above zero and shorter than the ttl \
                     {:?} (ttl / 3 is a good choice), or turn renewal off",
                    self.ttl
                )));
            }
        }
        Ok(())
    }
}

/// `request_started + ttl × (1 − ppm / 1e6)`.
pub(crate) fn lease_deadline(
    request_started: tokio::time::Instant,
    ttl: Duration,
    clock_drift_ppm: u32,
) -> tokio::time::Instant {
    let margin = ttl.mul_f64(f64::from(clock_drift_ppm) / 1_000_000.0);
    request_started + ttl.saturating_sub(margin)
}

/// Checks a ttl: from 1 ms to [`MAX_TTL`].
pub(crate) fn validate_ttl(ttl: Duration) -> Result<()> {
    if ttl < Duration::from_millis(1) {
        return Err(Error::invalid_options(format!(
            "ttl {ttl:?} is below 1 ms; give the lease a ttl of at least 1 ms (default 30 s)"
        )));
    }
    if ttl > MAX_TTL {
        return Err(Error::invalid_options(format!(
            "ttl {ttl:?} is over one year; use a shorter ttl and keep renewal on for long work"
        )));
    }
    Ok(())
}

/// Exponential backoff with full jitter.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    /// The options' longest pause.
    configured_max: Duration,
    max: Duration,
    ceiling: Duration,
    /// Releases wake the waiter: pause long from the first pause on.
    watched: bool,
}

impl Backoff {
    pub(crate) fn new(options: &LockOptions) -> Self {
        Backoff {
            min: options.min_backoff,
            configured_max: options.max_backoff,
            max: options.max_backoff,
            ceiling: options.min_backoff,
            watched: false,
        }
    }

    /// Whether releases wake the waiter (see
    /// `Backend::releases_watched_since`). While watched, every pause is
    /// uniform in [max / 2, max] with max the options' maximum or
    /// [`WATCHED_MAX_BACKOFF`](crate::backend::WATCHED_MAX_BACKOFF),
    /// whichever is longer, since polling then only finds leases that
    /// expired without a release; otherwise pauses grow up to the options'
    /// maximum (the ceiling follows it down).
    pub(crate) fn set_watched(&mut self, watched: bool) {
        self.watched = watched;
        self.max = if watched {
            self.configured_max.max(crate::backend::WATCHED_MAX_BACKOFF)
        } else {
            self.configured_max
        }
        .max(self.min);
        self.ceiling = self.ceiling.min(self.max);
    }

    /// The next pause: uniform in [min, ceiling], the ceiling doubling each
    /// time up to max.
    pub(crate) fn next_delay(&mut self) -> Duration {
        if self.watched {
            let high = self.max.as_micros() as u64;
            return Duration::from_micros(fastrand::u64(high / 2..=high));
        }
        let low = self.min.as_micros() as u64;
        let high = (self.ceiling.as_micros() as u64).max(low);
        let delay = Duration::from_micros(fastrand::u64(low..=high));
        self.ceiling = (self.ceiling * 2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let o = LockOptions::default();
        assert!(o.validate().is_ok());
        assert_eq!(o.ttl, Duration::from_secs(30));
        assert_eq!(o.wait_timeout, None);
        assert_eq!(o.operation_timeout, Duration::from_secs(10));
        assert_eq!(o.renewal_interval(), Some(Duration::from_secs(10)));
    }

    #[test]
    fn invalid_values_are_rejected_with_invalid_options() {
        let bad = [
            LockOptions::default().ttl(Duration::ZERO),
            LockOptions::default().ttl(MAX_TTL + Duration::from_secs(1)),
            LockOptions::default().backoff(Duration::from_millis(50), Duration::from_millis(10)),
            LockOptions::default().backoff(Duration::ZERO, Duration::from_millis(10)),
            LockOptions::default().renewal(Renewal::Every(Duration::from_secs(30))),
            LockOptions::default().renewal(Renewal::Every(Duration::ZERO)),
            LockOptions::default().operation_timeout(Duration::ZERO),
            LockOptions::default().operation_timeout(Duration::from_secs(601)),
            LockOptions::default().clock_drift_ppm(100_001),
        ];
        for o in bad {
            assert!(
                matches!(o.validate(), Err(Error::InvalidOptions { .. })),
                "{o:?} should be invalid"
            );
        }
    }

    #[test]
    fn lease_deadline_leaves_the_drift_margin() {
        let start = tokio::time::Instant::now();
        let ttl = Duration::from_secs(30);
        assert_eq!(
            lease_deadline(start, ttl, DEFAULT_CLOCK_DRIFT_PPM),
            start + Duration::from_millis(29_700)
        );
        assert_eq!(lease_deadline(start, ttl, 0), start + ttl);
        assert!(lease_deadline(start, Duration::from_millis(1), 100_000) > start);
    }

    #[test]
    fn backoff_grows_to_max_and_stays_within_bounds() {
        let o = LockOptions::default().backoff(Duration::from_millis(2), Duration::from_millis(64));
        let mut b = Backoff::new(&o);
        for _ in 0..100 {
            let d = b.next_delay();
            assert!(d >= Duration::from_millis(2) && d <= Duration::from_millis(64));
        }
        assert_eq!(b.ceiling, Duration::from_millis(64));
    }

    #[test]
    fn watched_backoff_pauses_long_from_the_first_pause() {
        let o = LockOptions::default().backoff(Duration::from_millis(2), Duration::from_millis(64));
        let mut b = Backoff::new(&o);
        let long = crate::backend::WATCHED_MAX_BACKOFF;
        b.set_watched(true);
        for _ in 0..100 {
            let d = b.next_delay();
            assert!(d >= long / 2 && d <= long, "{d:?}");
        }
        b.set_watched(false);
        assert!(b.next_delay() <= Duration::from_millis(64));
    }
}
