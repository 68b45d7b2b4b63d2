//! Logging and metrics set-up. Every `rindle.*` tracing event (the reference's telemetry
//! events, emitted by workflows and activities with the event name as `target`) is also
//! counted in the Prometheus metric `rindle_events_total{event="…"}`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::{Event, Subscriber};
use tracing_subscriber::{
    EnvFilter, Layer, layer::Context, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::config::{LogFormat, TelemetrySettings};

/// Counts `rindle.*` events as metrics.
pub struct EventMetricsLayer;

impl<S: Subscriber> Layer<S> for EventMetricsLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let target = event.metadata().target();
        if target.starts_with("rindle.provider") {
            metrics::counter!("rindle_events_total", "event" => target.to_owned()).increment(1);
        }
    }
}

/// Installs the global subscriber (idempotent: later calls are ignored).
pub fn init(settings: &TelemetrySettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log_filter));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(EventMetricsLayer);
    let _ = match settings.log_format {
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json())
            .try_init(),
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer()).try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests): then ours just stays empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
