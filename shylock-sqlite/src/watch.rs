//! Wake-ups across processes: one thread per lock file and process reads
//! `PRAGMA data_version` every half millisecond while this process has
//! waiters.
//! The number changes whenever another connection commits; then every
//! waiting name of every handle on the file gets one wake-up (an attempt
//! that only reads, unless the lock is free). No write, no lock on the
//! file: a read of the WAL index.

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

/// The watcher of one lock file in this process.
#[derive(Debug)]
pub(crate) struct FileWatcher {
    path: PathBuf,
    handles: Mutex<Vec<Weak<Inner>>>,
    running: AtomicBool,
    /// Since when every commit by another connection is seen.
    since: Mutex<Option<Instant>>,
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
        handles
            .iter()
            .filter_map(Weak::upgrade)
            .any(|h| h.signals.has_subscribers() || h.permit_signals.has_subscribers())
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
        let wakes: HashMap<String, Wake> = fair
            .into_iter()
            .map(|name| {
                let wake = wake_for(conn, &name, now);
                (name, wake)
            })
            .collect();
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
        }
    }

    fn set_since(&self, since: Option<Instant>) {
        *self.since.lock().unwrap_or_else(|p| p.into_inner()) = since;
    }

    fn run(&self) {
        let opened = rusqlite::Connection::open(&self.path);
        let Ok(conn) = opened else {
            self.running.store(false, Ordering::SeqCst);
            return;
        };
        count_statements(&conn);
        let version = |conn: &rusqlite::Connection| -> Option<i64> {
            conn.query_row("PRAGMA data_version", [], |r| r.get(0)).ok()
        };
        let Some(mut last) = version(&conn) else {
            self.running.store(false, Ordering::SeqCst);
            return;
        };
        // Every commit after the first read changes the number.
        self.set_since(Some(Instant::now()));
        let mut idle_since: Option<Instant> = None;
        loop {
            std::thread::sleep(POLL);
            match version(&conn) {
                Some(now) if now != last => {
                    last = now;
                    self.wake_all(&conn);
                }
                Some(_) => {}
                None => break,
            }
            if self.has_waiters() {
                idle_since = None;
            } else if idle_since.get_or_insert_with(Instant::now).elapsed() >= IDLE_CLOSE {
                self.set_since(None);
                self.running.store(false, Ordering::SeqCst);
                // A waiter that came meanwhile may have seen us running.
                if self.has_waiters() && !self.running.swap(true, Ordering::SeqCst) {
                    last = version(&conn).unwrap_or(last);
                    self.set_since(Some(Instant::now()));
                    idle_since = None;
                    continue;
                }
                return;
            }
        }
        self.set_since(None);
        self.running.store(false, Ordering::SeqCst);
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
        .query_row(sql::IS_LIVE, params![key, now], |_| Ok(()))
        .optional();
    match held {
        Ok(Some(())) => return Wake::Nobody,
        Ok(None) => {}
        Err(_) => return Wake::One,
    }
    match conn
        .query_row(sql::QUEUE_HEAD, params![key, now], |r| {
            r.get::<_, String>(0)
        })
        .optional()
    {
        Ok(Some(head)) => Wake::Turn(head),
        _ => Wake::One,
    }
}
