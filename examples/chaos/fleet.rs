//! The worker processes: started, paused, killed, restarted and stopped by
//! the scheduler, each change recorded in the history.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::history::{now_us, Appender};

/// A running incarnation of a worker slot.
pub(crate) struct Worker {
    child: Child,
    /// The worker's stdin, kept apart from `child`: `Child::wait` closes a
    /// stdin it holds, and the worker takes a closed stdin for the
    /// scheduler's death and exits at once, even mid-release.
    _stdin: Option<tokio::process::ChildStdin>,
    pid: u32,
    inc: u32,
    /// When it was paused (SIGSTOP), while it is.
    paused_since: Option<u64>,
}

/// How the workers are started.
pub(crate) struct Fleet {
    exe: PathBuf,
    spec: String,
    history: PathBuf,
    dir: PathBuf,
    seed: u64,
    next_inc: AtomicU32,
    pub(crate) slots: Vec<Mutex<Option<Worker>>>,
    log: StdMutex<Appender>,
}

impl Fleet {
    pub(crate) fn new(
        workers: u32,
        spec: String,
        history: PathBuf,
        dir: PathBuf,
        seed: u64,
    ) -> std::io::Result<Fleet> {
        Ok(Fleet {
            exe: std::env::current_exe()?,
            spec,
            log: StdMutex::new(Appender::open(&history)?),
            history,
            dir,
            seed,
            next_inc: AtomicU32::new(1),
            slots: (0..workers).map(|_| Mutex::new(None)).collect(),
        })
    }

    /// Appends a scheduler line to the history.
    pub(crate) fn record(&self, fields: &[&dyn std::fmt::Display]) {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .line(fields);
    }

    /// Starts a new incarnation in `slot` (which must be empty).
    pub(crate) async fn spawn(&self, slot: u32) -> std::io::Result<()> {
        let mut place = self.slots[slot as usize].lock().await;
        let inc = self.next_inc.fetch_add(1, Ordering::SeqCst);
        let log = std::fs::File::create(self.dir.join(format!("worker-{slot}-{inc}.log")))?;
        let seed = self.seed ^ (u64::from(slot) << 48) ^ (u64::from(inc) << 16);
        let mut child = Command::new(&self.exe)
            .arg("--worker")
            .args(["--slot", &slot.to_string(), "--inc", &inc.to_string()])
            .args(["--store", &self.spec, "--seed", &seed.to_string()])
            .arg("--history")
            .arg(&self.history)
            // The worker exits when this pipe closes: the scheduler died.
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take();
        let pid = child.id().unwrap_or(0);
        self.record(&[&"I", &slot, &inc, &pid, &now_us()]);
        *place = Some(Worker {
            child,
            _stdin: stdin,
            pid,
            inc,
            paused_since: None,
        });
        Ok(())
    }

    /// SIGSTOP to the worker in `slot`, unless none runs there or it is
    /// paused already; its incarnation.
    pub(crate) async fn pause(&self, slot: u32) -> Option<u32> {
        let mut place = self.slots[slot as usize].lock().await;
        let worker = place.as_mut()?;
        if worker.paused_since.is_some() {
            return None;
        }
        signal(worker.pid, "STOP").await;
        worker.paused_since = Some(now_us());
        Some(worker.inc)
    }

    /// SIGCONT to incarnation `inc` of `slot` if it is still there and
    /// paused; records the pause. Returns when it was paused.
    pub(crate) async fn resume(&self, slot: u32, inc: u32) -> Option<u64> {
        let mut place = self.slots[slot as usize].lock().await;
        let worker = place.as_mut().filter(|w| w.inc == inc)?;
        let from = worker.paused_since.take()?;
        signal(worker.pid, "CONT").await;
        self.record(&[&"P", &slot, &inc, &worker.pid, &from, &now_us()]);
        Some(from)
    }

    /// SIGKILL to the worker in `slot`, reaped; `how` goes in its `X` line.
    /// Returns whether one ran there.
    pub(crate) async fn kill(&self, slot: u32, how: &str) -> bool {
        let mut place = self.slots[slot as usize].lock().await;
        let Some(mut worker) = place.take() else {
            return false;
        };
        let _ = worker.child.kill().await;
        self.ended(slot, &worker, how);
        true
    }

    fn ended(&self, slot: u32, worker: &Worker, how: &str) {
        let now = now_us();
        if let Some(from) = worker.paused_since {
            self.record(&[&"P", &slot, &worker.inc, &worker.pid, &from, &now]);
        }
        self.record(&[&"X", &slot, &worker.inc, &worker.pid, &now, &how]);
    }

    /// Workers that exited though nobody stopped them: recorded (the
    /// checker reports them) and started again.
    pub(crate) async fn reap(&self) {
        for slot in 0..self.slots.len() as u32 {
            let exited = {
                let mut place = self.slots[slot as usize].lock().await;
                match place.as_mut().map(|w| w.child.try_wait()) {
                    Some(Ok(Some(status))) => {
                        let worker = place.take().expect("checked above");
                        self.ended(slot, &worker, &format!("exited:{}", code(status)));
                        eprintln!(
                            "chaos: worker {slot} (pid {}) exited on its own ({status}); its log: {}",
                            worker.pid,
                            self.dir.join(format!("worker-{slot}-{}.log", worker.inc)).display()
                        );
                        true
                    }
                    _ => false,
                }
            };
            if exited {
                if let Err(e) = self.spawn(slot).await {
                    eprintln!("chaos: could not restart worker {slot}: {e}");
                }
            }
        }
    }

    /// SIGCONT to every paused worker (the faults are over).
    pub(crate) async fn resume_all(&self) {
        for slot in 0..self.slots.len() as u32 {
            let inc = self.slots[slot as usize]
                .lock()
                .await
                .as_ref()
                .map(|w| w.inc);
            if let Some(inc) = inc {
                self.resume(slot, inc).await;
            }
        }
    }

    /// SIGTERM to every worker, then waits for each up to `grace`; kills
    /// those still running. Returns when the last one ended (wall-clock µs).
    pub(crate) async fn stop_all(&self, grace: Duration) -> u64 {
        self.resume_all().await;
        for place in &self.slots {
            if let Some(worker) = place.lock().await.as_ref() {
                signal(worker.pid, "TERM").await;
            }
        }
        let until = tokio::time::Instant::now() + grace;
        let mut last = now_us();
        for slot in 0..self.slots.len() as u32 {
            let mut place = self.slots[slot as usize].lock().await;
            let Some(mut worker) = place.take() else {
                continue;
            };
            let how = match tokio::time::timeout_at(until, worker.child.wait()).await {
                Ok(Ok(status)) if status.success() => "stopped".to_owned(),
                // Ended by the SIGTERM sent above before it handled it (a
                // worker restarted a moment ago that had not yet set its
                // handler): a kill like the scheduler's own, not an exit.
                Ok(Ok(status)) if terminated(status) => "terminated-at-stop".to_owned(),
                Ok(Ok(status)) => format!("exited:{}", code(status)),
                Ok(Err(_)) | Err(_) => {
                    let _ = worker.child.kill().await;
                    "killed-at-end".to_owned()
                }
            };
            self.ended(slot, &worker, &how);
            last = now_us();
        }
        last
    }
}

/// Whether SIGTERM's default action ended the process.
fn terminated(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(15)
}

fn code(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code.to_string(),
        (None, Some(signal)) => format!("signal{signal}"),
        _ => "unknown".to_owned(),
    }
}

/// `kill -s SIG pid`.
async fn signal(pid: u32, sig: &str) {
    let sent = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .await;
    if !matches!(sent, Ok(s) if s.success()) {
        eprintln!("chaos: kill -s {sig} {pid} failed: {sent:?}");
    }
}
