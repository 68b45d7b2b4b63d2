//! Captures `rindle.*` tracing events process-wide so tests can assert on telemetry.
//! (nextest runs each test in its own process, so captures never mix between tests.)

use std::{
    collections::BTreeMap,
    sync::{Mutex, OnceLock},
};

use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    EnvFilter, Layer, layer::Context, layer::SubscriberExt, util::SubscriberInitExt,
};

/// One captured event: its target (the reference event name) and its fields as strings.
#[derive(Debug, Clone)]
pub struct CapturedEvent {
    /// e.g. `rindle.provider.ingest.stop`.
    pub target: String,
    /// Field name → value as displayed.
    pub fields: BTreeMap<String, String>,
}

impl CapturedEvent {
    /// A field's value, if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

static EVENTS: Mutex<Vec<CapturedEvent>> = Mutex::new(Vec::new());

struct CaptureLayer;

struct FieldVisitor<'a>(&'a mut BTreeMap<String, String>);

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let target = event.metadata().target();
        // Ours only: not the test servers' own logs.
        if !target.starts_with("rindle") || target.starts_with("rindle_tests") {
            return;
        }
        let mut fields = BTreeMap::new();
        event.record(&mut FieldVisitor(&mut fields));
        EVENTS.lock().unwrap().push(CapturedEvent {
            target: target.to_owned(),
            fields,
        });
    }
}

/// Installs the capture (and, with `TEST_LOG=1`, a log printer) once per process.
pub fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let printer = std::env::var("TEST_LOG").is_ok().then(|| {
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(EnvFilter::new("info,temporalio_sdk_core=warn"))
        });
        let _ = tracing_subscriber::registry()
            .with(CaptureLayer.with_filter(EnvFilter::new("rindle=trace")))
            .with(printer)
            .try_init();
    });
}

/// Every captured event so far whose target is `target`.
pub fn events(target: &str) -> Vec<CapturedEvent> {
    EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.target == target)
        .cloned()
        .collect()
}

/// Every captured event so far.
pub fn all_events() -> Vec<CapturedEvent> {
    EVENTS.lock().unwrap().clone()
}
