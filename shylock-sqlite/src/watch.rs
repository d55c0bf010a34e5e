//! Wake-ups across processes: one thread per lock file and process reads
//! `PRAGMA data_version` every half millisecond while this process has
//! waiters.
//! The number changes whenever another connection commits; then every
//! waiting name of every handle on the file gets one wake-up (an attempt
//! that only reads, unless the lock is free). Each look is a short read
//! transaction (a WAL read mark, never the write lock). A busy file (for
//! instance another connection recovering the WAL) or a protocol error is
//! read as "no change seen yet": the watcher pauses briefly and looks
//! again, and no commit is missed, since the number still differs then.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use rusqlite::{params, OptionalExtension};

use crate::conn::{count_statements, now_ms, Inner};
use crate::queries as sql;

/// How often the watcher looks at the file while this process has waiters.
const POLL: Duration = Duration::from_micros(500);
/// How long it keeps looking after the last waiter left.
const IDLE_CLOSE: Duration = Duration::from_secs(5);
/// How long one look waits for a busy file.
const BUSY_WAIT: Duration = Duration::from_millis(20);
/// The longest pause after looks that failed.
const FAILED_PAUSE: Duration = Duration::from_millis(100);
/// After this many failed looks in a row, waiters stop counting on the
/// watcher (they poll with the unwatched backoff) until a look succeeds.
const FAILURES_UNWATCHED: u32 = 20;

/// The watcher of one lock file in this process.
#[derive(Debug)]
pub(crate) struct FileWatcher {
    path: PathBuf,
    handles: Mutex<Vec<Weak<Inner>>>,
    running: AtomicBool,
    /// Since when every commit by another connection is seen.
    since: Mutex<Option<Instant>>,
    /// Looks at the file that failed (busy, protocol errors), in total.
    failed_looks: std::sync::atomic::AtomicU64,
    /// Tests: this many next looks fail as a busy file would.
    #[cfg(test)]
    fail_looks: std::sync::atomic::AtomicU32,
}

fn watchers() -> &'static Mutex<HashMap<PathBuf, Weak<FileWatcher>>> {
    static WATCHERS: OnceLock<Mutex<HashMap<PathBuf, Weak<FileWatcher>>>> = OnceLock::new();
    WATCHERS.get_or_init(Mutex::default)
}

impl FileWatcher {
    /// The watcher of the file at `path` (one per file and process).
    pub(crate) fn for_path(path: &Path) -> Arc<FileWatcher> {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let mut all = watchers().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(watcher) = all.get(&key).and_then(Weak::upgrade) {
            return watcher;
        }
        all.retain(|_, w| w.strong_count() > 0);
        let watcher = Arc::new(FileWatcher {
            path: key.clone(),
            handles: Mutex::new(Vec::new()),
            running: AtomicBool::new(false),
            since: Mutex::new(None),
            failed_looks: std::sync::atomic::AtomicU64::new(0),
            #[cfg(test)]
            fail_looks: std::sync::atomic::AtomicU32::new(0),
        });
        all.insert(key, Arc::downgrade(&watcher));
        watcher
    }

    /// Since when commits by other connections wake this process's waiters.
    pub(crate) fn since(&self) -> Option<Instant> {
        *self.since.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `inner`'s waiters woken by commits, and starts the thread if
    /// it is not running.
    pub(crate) fn watch(self: &Arc<Self>, inner: &Arc<Inner>) {
        {
            let mut handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
            if !handles
                .iter()
                .any(|h| std::ptr::eq(h.as_ptr(), Arc::as_ptr(inner)))
            {
                handles.retain(|h| h.strong_count() > 0);
                handles.push(Arc::downgrade(inner));
            }
        }
        if self.running.swap(true, Ordering::SeqCst) {
            return;
        }
        let watcher = self.clone();
        let started = std::thread::Builder::new()
            .name("shylock-sqlite-watch".into())
            .spawn(move || watcher.run());
        if started.is_err() {
            self.running.store(false, Ordering::SeqCst);
        }
    }

    fn has_waiters(&self) -> bool {
        let handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        handles.iter().filter_map(Weak::upgrade).any(|h| {
            h.signals.has_subscribers()
                || h.permit_signals.has_subscribers()
                || h.read_signals.has_subscribers()
                || h.write_signals.has_subscribers()
        })
    }

    /// Something was committed: wakes one waiter of every waiting name of
    /// every handle, except for names with fair waiters here. For those
    /// the file says whom to wake: the waiter first in line if the lock is
    /// free and that waiter is in this process, nobody if the lock is held,
    /// one waiter if the line is empty.
    fn wake_all(&self, conn: &rusqlite::Connection) {
        let handles: Vec<Arc<Inner>> = {
            let handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
            handles.iter().filter_map(Weak::upgrade).collect()
        };
        let mut fair: Vec<String> = handles
            .iter()
            .flat_map(|h| h.signals.turn_names())
            .collect();
        fair.sort_unstable();
        fair.dedup();
        let now = now_ms();
        // One read transaction for every look: whether a lock is free and
        // who heads its line are read from the same snapshot. Read apart,
        // a claim committed in between (the head winning and leaving the
        // line) made the watcher see "free" and then the next in line as
        // head, and wake it while the lock was held.
        let snapshot = conn.unchecked_transaction().ok();
        let reader: &rusqlite::Connection = snapshot.as_deref().unwrap_or(conn);
        let wakes: HashMap<String, Wake> = fair
            .into_iter()
            .map(|name| {
                let wake = wake_for(reader, &name, now);
                (name, wake)
            })
            .collect();
        drop(snapshot); // read only: rolled back
        for h in handles {
            h.signals.notify_all_except(|name| wakes.contains_key(name));
            for (name, wake) in &wakes {
                match wake {
                    Wake::Turn(head) => {
                        h.signals.notify_turn(name, head);
                    }
                    Wake::Nobody => {}
                    Wake::One => h.signals.notify(name),
                }
            }
            h.permit_signals.notify_all();
            // Any commit may have let every waiting reader in.
            h.read_signals.notify_all_waiters();
            h.write_signals.notify_all();
        }
    }

    fn set_since(&self, since: Option<Instant>) {
        *self.since.lock().unwrap_or_else(|p| p.into_inner()) = since;
    }

    fn run(&self) {
        let opened = rusqlite::Connection::open(&self.path)
            .and_then(|conn| conn.busy_timeout(BUSY_WAIT).map(|()| conn));
        let Ok(conn) = opened else {
            self.running.store(false, Ordering::SeqCst);
            return;
        };
        count_statements(&conn);
        let version = |conn: &rusqlite::Connection| -> rusqlite::Result<i64> {
            #[cfg(test)]
            if self
                .fail_looks
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    None,
                ));
            }
            conn.prepare_cached("PRAGMA data_version")?
                .query_row([], |r| r.get(0))
        };
        // The number at the last successful look; `None` until the first,
        // and again after many failed looks.
        let mut last: Option<i64> = None;
        let mut failures: u32 = 0;
        let mut idle_since: Option<Instant> = None;
        loop {
            match version(&conn) {
                Ok(now) => {
                    let recovered = failures >= FAILURES_UNWATCHED;
                    failures = 0;
                    match last {
                        // Every commit after this first look changes the
                        // number. After a long run of failed looks, a
                        // commit made meanwhile may have been missed.
                        None => {
                            self.set_since(Some(Instant::now()));
                            if recovered {
                                self.wake_all(&conn);
                            }
                        }
                        Some(before) if before != now => self.wake_all(&conn),
                        Some(_) => {}
                    }
                    last = Some(now);
                    std::thread::sleep(POLL);
                }
                Err(_) => {
                    self.failed_looks.fetch_add(1, Ordering::Relaxed);
                    failures = failures.saturating_add(1);
                    if failures == FAILURES_UNWATCHED && last.is_some() {
                        self.set_since(None);
                        last = None;
                    }
                    let pause = POLL.saturating_mul(1 << failures.min(8));
                    std::thread::sleep(pause.min(FAILED_PAUSE));
                }
            }
            if self.has_waiters() {
                idle_since = None;
            } else if idle_since.get_or_insert_with(Instant::now).elapsed() >= IDLE_CLOSE {
                self.set_since(None);
                self.running.store(false, Ordering::SeqCst);
                // A waiter that came meanwhile may have seen us running.
                if self.has_waiters() && !self.running.swap(true, Ordering::SeqCst) {
                    last = None;
                    idle_since = None;
                    continue;
                }
                return;
            }
        }
    }
}

/// Whom a commit wakes among the waiters of a lock with fair waiters.
#[derive(Debug, PartialEq, Eq)]
enum Wake {
    /// The fair waiter holding this owner's ticket, first live one in line.
    Turn(String),
    /// Nobody: the lock is held.
    Nobody,
    /// One waiter of the name (the line is empty, or the file could not
    /// be read).
    One,
}

/// Reads whom to wake for `name` at `now` (the machine's clock, which is
/// the lock file's): two indexed reads, no write.
fn wake_for(conn: &rusqlite::Connection, name: &str, now: i64) -> Wake {
    let key = name.as_bytes();
    let held = conn
        .prepare_cached(sql::IS_LIVE)
        .and_then(|mut read| read.query_row(params![key, now], |_| Ok(())))
        .optional();
    match held {
        Ok(Some(())) => return Wake::Nobody,
        Ok(None) => {}
        Err(_) => return Wake::One,
    }
    match conn
        .prepare_cached(sql::QUEUE_HEAD)
        .and_then(|mut read| read.query_row(params![key, now], |r| r.get::<_, String>(0)))
        .optional()
    {
        Ok(Some(head)) => Wake::Turn(head),
        _ => Wake::One,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteBackend;
    use shylock_core::testkit::{temp_db_path, unique_name, wait_for};
    use shylock_core::AsyncLock;

    /// A file that stays busy for a while (another connection recovering
    /// the WAL, say) makes the watcher's looks fail; the watcher keeps
    /// looking, and wakes the waiter once the file can be read again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watcher_survives_a_busy_file() {
        let path = temp_db_path();
        let (holder, waiter) = (
            SqliteBackend::open(&path).unwrap(),
            SqliteBackend::open(&path).unwrap(),
        );
        let name = unique_name("busy-file");
        let guard = AsyncLock::with_backend(name.clone(), holder)
            .try_acquire()
            .await
            .unwrap()
            .expect("free lock");
        let waiting = tokio::spawn({
            let name = name.clone();
            async move {
                AsyncLock::with_backend(name, waiter)
                    .acquire_timeout(Duration::from_secs(60))
                    .await
            }
        });
        let watcher = FileWatcher::for_path(&path);
        wait_for(Duration::from_secs(10), || {
            let up = watcher.since().is_some();
            async move { up.then_some(()) }
        })
        .await
        .expect("the watcher starts once a waiter waits");

        // Looks fail as on a busy file (SQLITE_BUSY), long enough for the
        // waiters to stop counting on the watcher.
        let failing = FAILURES_UNWATCHED + 5;
        watcher.fail_looks.store(failing, Ordering::SeqCst);
        wait_for(Duration::from_secs(30), || {
            let done = watcher.fail_looks.load(Ordering::SeqCst) == 0;
            async move { done.then_some(()) }
        })
        .await
        .expect("the watcher keeps looking through the failed looks");
        assert!(watcher.failed_looks.load(Ordering::Relaxed) >= u64::from(failing));
        wait_for(Duration::from_secs(10), || {
            let up = watcher.since().is_some();
            async move { up.then_some(()) }
        })
        .await
        .expect("releases count as watched again after a successful look");
        assert!(
            watcher.running.load(Ordering::SeqCst),
            "the watcher must keep looking after failed looks"
        );
        drop(guard);
        let got = waiting.await.unwrap().unwrap();
        assert!(got.is_some(), "the waiter gets the released lock");
    }
}
