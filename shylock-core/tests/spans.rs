//! The tracing spans of acquires, releases and renewals, captured by a
//! subscriber layer: one test, because the subscriber is process-wide (the
//! background release and renewal run on other threads).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shylock_core::testkit::{unique_name, wait_for};
use shylock_core::{AsyncLock, LockOptions, MemoryBackend, Renewal};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A closed span: its name and fields as text.
#[derive(Debug, Clone)]
struct Closed {
    name: &'static str,
    fields: HashMap<String, String>,
}

#[derive(Default, Clone)]
struct Capture {
    open: Arc<Mutex<HashMap<u64, Closed>>>,
    closed: Arc<Mutex<Vec<Closed>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut span = Closed {
            name: attrs.metadata().name(),
            fields: HashMap::new(),
        };
        attrs.record(&mut Fields(&mut span.fields));
        self.open.lock().unwrap().insert(id.into_u64(), span);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(span) = self.open.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }
    fn on_close(&self, id: Id, _: Context<'_, S>) {
        if let Some(span) = self.open.lock().unwrap().remove(&id.into_u64()) {
            self.closed.lock().unwrap().push(span);
        }
    }
}

impl Capture {
    fn spans(&self, name: &str, lock: &str) -> Vec<Closed> {
        self.closed
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.name == name && s.fields.get("lock").map(String::as_str) == Some(lock))
            .cloned()
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_release_and_renewal_have_spans_with_their_fields() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(capture.clone()))
        .expect("no other subscriber in this test binary");

    let backend = MemoryBackend::new();
    let name = unique_name("spans");
    // A first lease taken and freed around the shapes (no span), so the
    // tokens below are not the first one, 1.
    {
        use shylock_core::backend::{Backend, Deadline};
        let deadline = || Deadline::after(Duration::from_secs(5));
        let ttl = Duration::from_secs(5);
        backend
            .claim(&name, "warm-up", ttl, deadline())
            .await
            .unwrap()
            .unwrap();
        assert!(backend.release(&name, "warm-up", deadline()).await.unwrap());
    }
    let lock = AsyncLock::with_backend(name.clone(), backend.clone()).with_options(
        LockOptions::default()
            .ttl(Duration::from_millis(300))
            .renewal(Renewal::Every(Duration::from_millis(50))),
    );
    let guard = lock.acquire().await.unwrap();
    let token = guard.fencing_token();
    assert!(token > 1);
    assert!(lock.try_acquire().await.unwrap().is_none());
    // Renewal runs a few times.
    let renewed = wait_for(Duration::from_secs(10), || {
        let n = capture.spans("shylock.renew", &name).len();
        async move { (n >= 2).then_some(()) }
    })
    .await;
    assert!(renewed.is_some(), "renewal spans are recorded");
    guard.release().await.unwrap();
    // A dropped guard is released in the background, in its own span.
    let dropped = lock.acquire().await.unwrap();
    let second_token = dropped.fencing_token();
    drop(dropped);
    let released = wait_for(Duration::from_secs(10), || {
        let n = capture.spans("shylock.release", &name).len();
        async move { (n == 2).then_some(()) }
    })
    .await;
    assert!(released.is_some(), "both releases have a span");

    let acquires = capture.spans("shylock.acquire", &name);
    assert_eq!(acquires.len(), 3, "{acquires:#?}");
    let field = |s: &Closed, f: &str| s.fields.get(f).cloned().unwrap_or_default();
    let won: Vec<_> = acquires
        .iter()
        .filter(|s| field(s, "outcome") == "acquired")
        .collect();
    assert_eq!(won.len(), 2);
    assert_eq!(field(won[0], "fencing_token"), token.to_string());
    assert_eq!(field(won[1], "fencing_token"), second_token.to_string());
    for span in &won {
        assert_eq!(field(span, "attempts"), "1");
        assert_eq!(field(span, "kind"), "lock");
        assert_eq!(field(span, "backend"), "memory");
        assert!(field(span, "waited_ms").parse::<f64>().is_ok(), "{span:?}");
    }
    let busy: Vec<_> = acquires
        .iter()
        .filter(|s| field(s, "outcome") == "busy")
        .collect();
    assert_eq!(busy.len(), 1);
    assert!(
        field(busy[0], "fencing_token").is_empty(),
        "no token when not won"
    );

    for span in capture.spans("shylock.release", &name) {
        assert_eq!(field(&span, "outcome"), "released", "{span:?}");
    }
    for span in capture.spans("shylock.renew", &name) {
        assert_eq!(field(&span, "outcome"), "renewed", "{span:?}");
        let renewed = field(&span, "fencing_token");
        assert!(renewed == token.to_string() || renewed == second_token.to_string());
    }
}
