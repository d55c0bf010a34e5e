//! Handing the lock from a holder to a waiter: latency and claims per
//! handoff in each waiting mode, fairness among waiters, and (MongoDB)
//! the change streams' own delivery time.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shylock::{AsyncLock, SharedBackend};
use shylock_core::testkit::CountingBackend;

use crate::lock::bench_options;
use crate::report::{failed, report_failures, stats, us, Stats};
use crate::setup::{Raw, Setup};
use crate::Args;

/// Time from a release returning to the next holder's acquire returning,
/// with `waiters` tasks waiting in `acquire()` while one holds the lock. A
/// task that released waits for someone else to take the lock before it
/// queues again, so every sample is a handoff to a waiter. Also returns
/// the claims all tasks sent per handoff (a task that queues again makes
/// one try, or two where its process was not yet watching releases: one
/// try, one after subscribing to wake-ups).
pub(crate) async fn handoff(
    backends: &[SharedBackend],
    waiters: usize,
    handoffs: usize,
    mode: Mode,
) -> (Stats, f64) {
    let counted: Vec<Arc<CountingBackend>> = backends
        .iter()
        .map(|b| CountingBackend::new(b.clone()))
        .collect();
    let backends: Vec<SharedBackend> = counted
        .iter()
        .map(|c| SharedBackend::from_arc(c.clone()))
        .collect();
    let name = format!("bench/handoff/{waiters}/{}", uuid::Uuid::new_v4());
    let last_release: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let samples: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::new()));
    let (generation, _) = tokio::sync::watch::channel(0u64);
    let generation = Arc::new(generation);
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let done_tx = Arc::new(done_tx);
    let start = Instant::now();
    let tasks: Vec<_> = (0..=waiters)
        .map(|i| {
            let backend = backends[i % backends.len()].clone();
            let lock = mode.lock(&name, backend);
            let (last_release, samples, generation, counter) = (
                last_release.clone(),
                samples.clone(),
                generation.clone(),
                counter.clone(),
            );
            let (done_tx, mut done_rx) = (done_tx.clone(), done_rx.clone());
            tokio::spawn(async move {
                let mut turns = generation.subscribe();
                loop {
                    let guard = tokio::select! {
                        guard = mode.acquire(&lock) => guard,
                        _ = done_rx.wait_for(|done| *done) => return,
                    };
                    let got = Instant::now();
                    if let Some(released) = last_release.lock().unwrap().take() {
                        samples
                            .lock()
                            .unwrap()
                            .push(got.saturating_duration_since(released));
                    }
                    let mine = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    generation.send_replace(mine);
                    tokio::time::sleep(Duration::from_micros(500)).await;
                    if let Err(error) = guard.release().await {
                        failed("release", &error);
                    }
                    *last_release.lock().unwrap() = Some(Instant::now());
                    if samples.lock().unwrap().len() >= handoffs {
                        done_tx.send_replace(true);
                        return;
                    }
                    // Queue again only after another task took the lock.
                    tokio::select! {
                        _ = turns.wait_for(|g| *g != mine) => {}
                        _ = done_rx.wait_for(|done| *done) => return,
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let claims: u64 = counted.iter().map(|c| c.claim_count()).sum();
    let per_handoff = claims as f64 / samples.len().max(1) as f64;
    (stats(samples, start.elapsed()), per_handoff)
}

/// How waiters wait in the handoff, load and fairness rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `acquire()`: backoff with jitter, woken by release signals.
    Default,
    /// `acquire()` with `LockOptions::fair(true)`: a ticket in line.
    Fair,
    /// Python shylock's strategy replayed: `try_acquire()` every 62.5 ms,
    /// no wake-ups.
    PythonPoll,
}

impl Mode {
    pub(crate) fn lock(self, name: &str, backend: SharedBackend) -> AsyncLock {
        let options = bench_options().fair(self == Mode::Fair);
        AsyncLock::with_backend(name.to_owned(), backend).with_options(options)
    }

    /// Acquires, trying again after an error (counted and reported, so an
    /// overloaded server shows in the output instead of ending the run).
    pub(crate) async fn acquire(self, lock: &AsyncLock) -> shylock::AsyncLockGuard {
        loop {
            let attempt = match self {
                Mode::Default | Mode::Fair => lock.acquire().await.map(Some),
                Mode::PythonPoll => lock.try_acquire().await,
            };
            match attempt {
                Ok(Some(guard)) => return guard,
                Ok(None) => tokio::time::sleep(Duration::from_micros(62_500)).await,
                Err(error) => failed("acquire", &error),
            }
        }
    }
}

/// Waits (at most 30 s) until none of `handles` watches releases any more:
/// their change streams closed after their idle period.
pub(crate) async fn streams_closed(handles: &[SharedBackend]) {
    let give_up = Instant::now() + Duration::from_secs(30);
    while Instant::now() < give_up
        && handles
            .iter()
            .any(|h| h.releases_watched_since("bench").is_some())
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With 8 waiters taking turns on one lock until `grants` grants: the
/// share of grants that went to the waiter that arrived first among those
/// waiting, and the max and mean wait. In fair mode, arrivals (enqueues)
/// are made one at a time, so their order is the line's order.
pub(crate) async fn fairness(
    backends: &[SharedBackend],
    mode: Mode,
    grants: usize,
) -> (f64, Duration, Duration) {
    use std::collections::BTreeSet;
    let name = format!("bench/fairness/{}", uuid::Uuid::new_v4());
    let arrivals = Arc::new(tokio::sync::Mutex::new(0u64));
    let waiting: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let record: Arc<Mutex<(usize, usize, Vec<Duration>)>> = Arc::default();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let lock = mode.lock(&name, backends[i % backends.len()].clone());
            let (arrivals, waiting, record) = (arrivals.clone(), waiting.clone(), record.clone());
            tokio::spawn(async move {
                loop {
                    let asked = Instant::now();
                    let (seq, guard) = if mode == Mode::Fair {
                        let (seq, ticket) = {
                            let mut next = arrivals.lock().await;
                            let ticket = lock.enqueue().await.unwrap();
                            *next += 1;
                            waiting.lock().unwrap().insert(*next);
                            (*next, ticket)
                        };
                        (seq, ticket.wait().await.unwrap())
                    } else {
                        let seq = {
                            let mut next = arrivals.lock().await;
                            *next += 1;
                            waiting.lock().unwrap().insert(*next);
                            *next
                        };
                        (seq, mode.acquire(&lock).await)
                    };
                    let first = {
                        let mut waiting = waiting.lock().unwrap();
                        let first = waiting.first() == Some(&seq);
                        waiting.remove(&seq);
                        first
                    };
                    let done = {
                        let mut r = record.lock().unwrap();
                        r.0 += 1;
                        r.1 += usize::from(first);
                        r.2.push(asked.elapsed());
                        r.0 >= grants
                    };
                    tokio::time::sleep(Duration::from_micros(500)).await;
                    if let Err(error) = guard.release().await {
                        failed("release", &error);
                    }
                    if done {
                        return;
                    }
                }
            })
        })
        .collect();
    // The first task to finish ends the run; the others are stopped.
    let mut tasks = tasks;
    loop {
        if record.lock().unwrap().0 >= grants {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in tasks.drain(..) {
        t.abort();
        let _ = t.await;
    }
    let r = record.lock().unwrap();
    let waits = &r.2;
    let max = waits.iter().max().copied().unwrap_or_default();
    let mean = waits.iter().sum::<Duration>() / waits.len().max(1) as u32;
    (r.1 as f64 / r.0.max(1) as f64, max, mean)
}

/// The server's part of a cross-process handoff, without the library:
/// `streams` clients each open a change stream as the release watcher does
/// (same filter, `updateLookup`); then, `releases` times, one update frees a
/// document and each stream reports when it delivered the event. Returns the
/// medians over releases of the first, the middle and the last stream's
/// delivery after the update returned: a waiter woken by the release cannot
/// claim before its stream delivered, and its claim adds a round trip.
///
/// Only the first `matching` streams match the release; the others add a
/// condition it fails (they follow another document), as watchers whose
/// filter leaves the event out. The medians are over the matching streams.
#[cfg(feature = "mongo")]
pub(crate) async fn stream_fanout(
    raw: &Raw,
    streams: usize,
    matching: usize,
    releases: usize,
) -> Option<[Duration; 3]> {
    use bson::doc;
    use shylock::mongo::mongodb::{options::FullDocumentType, Client};
    let Raw::Mongo(collection) = raw else {
        return None;
    };
    let uri = std::env::var("MONGODB_URI").ok()?;
    let db = collection.namespace().db;
    let coll = format!("fanout_{streams}_{}", uuid::Uuid::new_v4().simple());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(i64, Instant)>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    let matching = matching.clamp(1, streams);
    for i in 0..streams {
        let client = Client::with_uri_str(&uri).await.unwrap();
        let mut pipeline = vec![shylock::mongo::queries::released_events()];
        if i >= matching {
            pipeline.push(doc! { "$match": { "documentKey._id": "elsewhere" } });
        }
        let mut stream = client
            .database(&db)
            .collection::<bson::Document>(&coll)
            .watch()
            .pipeline(pipeline)
            .full_document(FullDocumentType::UpdateLookup)
            .max_await_time(Duration::from_secs(1))
            .await
            .unwrap();
        let (tx, mut stop) = (tx.clone(), stop_rx.clone());
        readers.push(tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = stream.next_if_any() => next,
                    _ = stop.wait_for(|stop| *stop) => break,
                };
                let event = match next {
                    Ok(Some(event)) => event,
                    Ok(None) if stream.is_alive() => continue,
                    _ => break,
                };
                let seq = event
                    .full_document
                    .and_then(|d| d.get_i64("seq").ok())
                    .unwrap_or(-1);
                if tx.send((seq, Instant::now())).is_err() {
                    break;
                }
            }
            // Closed, not left for the server to time out: later rows share
            // the server.
            drop(stream);
            client.shutdown().await;
        }));
    }
    drop(tx);
    let target = collection
        .client()
        .database(&db)
        .collection_with_options::<bson::Document>(
            &coll,
            shylock::mongo::mongodb::options::CollectionOptions::builder()
                .write_concern(collection.write_concern().cloned())
                .build(),
        );
    let (mut first, mut middle, mut last) = (Vec::new(), Vec::new(), Vec::new());
    for seq in 0..releases as i64 {
        // Taken (an update the streams' filter leaves out), then freed.
        target
            .update_one(
                doc! { "_id": "fanout" },
                doc! { "$set": { "owner": "x", "seq": seq } },
            )
            .upsert(true)
            .await
            .unwrap();
        target
            .update_one(doc! { "_id": "fanout" }, doc! { "$unset": { "owner": "" } })
            .await
            .unwrap();
        let freed = Instant::now();
        let mut arrivals = Vec::with_capacity(matching);
        let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
        while arrivals.len() < matching {
            match tokio::time::timeout_at(give_up, rx.recv()).await {
                Ok(Some((s, at))) if s == seq => arrivals.push(at.saturating_duration_since(freed)),
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        if arrivals.len() < matching {
            continue;
        }
        arrivals.sort();
        first.push(arrivals[0]);
        middle.push(arrivals[matching / 2]);
        last.push(arrivals[matching - 1]);
    }
    stop_tx.send_replace(true);
    for reader in readers {
        let _ = reader.await;
    }
    let _ = target.drop().await;
    let median = |v: Vec<Duration>| stats(v, Duration::from_secs(1)).median;
    Some([median(first), median(middle), median(last)])
}

/// The `getMore`s the server answered so far (`serverStatus` opcounters),
/// on MongoDB; `None` elsewhere or when the server does not say.
async fn stream_replies(raw: &Raw) -> Option<u64> {
    #[cfg(feature = "mongo")]
    if let Raw::Mongo(collection) = raw {
        let status = collection
            .client()
            .database("admin")
            .run_command(bson::doc! { "serverStatus": 1 })
            .await
            .ok()?;
        let count = status.get_document("opcounters").ok()?.get("getmore")?;
        return match count {
            bson::Bson::Int32(n) => u64::try_from(*n).ok(),
            bson::Bson::Int64(n) => u64::try_from(*n).ok(),
            bson::Bson::Double(n) => Some(*n as u64),
            _ => None,
        };
    }
    let _ = raw;
    None
}

/// The handoff table: 1, 8 and 64 waiters in each mode, in round trips.
pub(crate) async fn print_handoff(s: &Setup, args: &Args, round_trip: Duration) {
    println!("## Handoff: release returned → next holder's acquire returned\n");
    println!(
        "Each waiter has its own handle (like separate processes); one round trip \
         (half a raw pair) is {}.\n",
        us(round_trip)
    );
    let handles: &[SharedBackend] = if s.separate.is_empty() {
        std::slice::from_ref(&s.backend)
    } else {
        &s.separate
    };
    let rt = |d: Duration| {
        if round_trip.is_zero() {
            us(d)
        } else {
            format!(
                "{} ({:.1} RT)",
                us(d),
                d.as_secs_f64() / round_trip.as_secs_f64()
            )
        }
    };
    #[cfg(feature = "mongo")]
    if matches!(s.raw, Raw::Mongo(_)) {
        println!(
            "The server's part of a handoff, without the library (measured first: the \
             server slows down through a run): N clients each with a change stream as \
             the release watcher opens it; when the streams delivered one release \
             (after the update returned), median over releases. A woken waiter's claim \
             adds one round trip to its stream's delivery.\n"
        );
        println!("| streams | first delivered | middle | last |");
        println!("|---|---|---|---|");
        for streams in args.waiters.clone() {
            // All streams match the release; then (with more than one) only
            // one does and the others filter it out.
            let shapes: &[usize] = if streams > 1 { &[streams, 1] } else { &[1] };
            for &matching in shapes {
                if let Some([first, middle, last]) =
                    stream_fanout(&s.raw, streams, matching, (args.handoffs / 2).max(20)).await
                {
                    let label = if matching == streams {
                        format!("{streams}")
                    } else {
                        format!("{streams}, {matching} matching")
                    };
                    println!(
                        "| {label} | {} | {} | {} |",
                        rt(first),
                        rt(middle),
                        rt(last)
                    );
                }
            }
        }
        println!();
    }
    // Change-stream replies (`getMore`s) the server sent per handoff, by
    // waiting mode (MongoDB only).
    let mut replies: Vec<(usize, Option<f64>, Option<f64>)> = Vec::new();
    println!(
        "| waiters | default: median | p99 | claims / handoff | fair: median | p99 | claims / handoff \
         | Python's 62.5 ms poll: median | p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for waiters in args.waiters.clone() {
        let before = stream_replies(&s.raw).await;
        let (default, default_claims) =
            handoff(handles, waiters, args.handoffs, Mode::Default).await;
        let between = stream_replies(&s.raw).await;
        let (fair, fair_claims) = handoff(handles, waiters, args.handoffs, Mode::Fair).await;
        let after = stream_replies(&s.raw).await;
        let per = |a: Option<u64>, b: Option<u64>, n: usize| {
            Some(b?.saturating_sub(a?) as f64 / n.max(1) as f64)
        };
        replies.push((
            waiters,
            per(before, between, args.handoffs),
            per(between, after, args.handoffs),
        ));
        // The fixed poll is slow: fewer samples.
        let (python, _) = handoff(
            handles,
            waiters,
            (args.handoffs / 4).max(10),
            Mode::PythonPoll,
        )
        .await;
        println!(
            "| {waiters} | {} | {} | {default_claims:.1} | {} | {} | {fair_claims:.1} | {} | {} |",
            rt(default.median),
            rt(default.p99),
            rt(fair.median),
            rt(fair.p99),
            rt(python.median),
            rt(python.p99)
        );
    }
    // The rows above leave one open change stream per handle until it has
    // been idle for a while; each would still cost the server a delivery
    // per release in the rows below.
    streams_closed(handles).await;
    let (shared, shared_claims) = handoff(
        std::slice::from_ref(&s.backend),
        8,
        args.handoffs,
        Mode::Default,
    )
    .await;
    println!(
        "| 8, one shared handle | {} | {} | {shared_claims:.1} | | | | | |",
        rt(shared.median),
        rt(shared.p99)
    );
    if !s.sharing.is_empty() {
        for waiters in args.waiters.iter().copied().filter(|w| *w > 1) {
            let (default, default_claims) =
                handoff(&s.sharing, waiters, args.handoffs, Mode::Default).await;
            let (fair, fair_claims) = handoff(&s.sharing, waiters, args.handoffs, Mode::Fair).await;
            println!(
                "| {waiters}, own clients, one stream in the process | {} | {} | {default_claims:.1} | {} | {} | {fair_claims:.1} | | |",
                rt(default.median),
                rt(default.p99),
                rt(fair.median),
                rt(fair.p99),
            );
        }
    }
    if replies.iter().any(|(_, d, f)| d.is_some() || f.is_some()) {
        println!(
            "\nChange-stream replies (`getMore` answers, all streams) per handoff; \
             a stream answers once per release it delivers, and on servers that end a \
             wait at every write, once per write that lands while it waits:\n"
        );
        println!("| waiters | default | fair |");
        println!("|---|---|---|");
        let show = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_default();
        for (waiters, default, fair) in &replies {
            println!("| {waiters} | {} | {} |", show(*default), show(*fair));
        }
        println!();
    }
    report_failures();
}
