//! Telemetry for every service, built by one function.
//!
//! - Logs: text or JSON (`LOG_FORMAT`), filtered by `RUST_LOG` (default `info`); colours only
//!   on a terminal.
//! - Traces: exported over OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set and `OTEL_SDK_DISABLED` is not `true`;
//!   without an endpoint no OpenTelemetry layer is installed at all. `OTEL_SERVICE_NAME`
//!   names the process; a process hosting several services (the suite) exports each
//!   service's spans under that service's own name ([`services`]).
//! - Propagation: W3C trace context, extracted from incoming requests ([`server_span`]) and
//!   injected into outgoing calls ([`TraceContextInterceptor`]).
//! - [`metrics`]: the process's Prometheus metrics.
//! - [`Progress`] of long work, on a terminal only.

pub mod metrics;
mod progress;
mod propagation;
mod recurring;
mod services;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter, SpanProcessor,
};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use metrics::metrics;
pub use progress::Progress;
pub use propagation::{TraceContextInterceptor, client_span, server_span, split_path};
pub use recurring::RecurringFailure;
pub use services::in_service;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("LOG_FORMAT must be `text` or `json`, got {0:?}")]
    BadLogFormat(String),
    #[error("RUST_LOG {0}")]
    BadFilter(String),
    #[error("OTEL_EXPORTER_OTLP_ENDPOINT {0}")]
    BadEndpoint(String),
    #[error("could not build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("a global subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// What [`dispatch`] builds.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `service.name` of the process: of its spans outside any hosted service.
    pub process: String,
    /// Services hosted in this process whose spans carry their own names (the suite's four);
    /// empty for a service's own binary, whose spans all carry `process`.
    pub services: Vec<&'static str>,
    /// Where OTLP/gRPC traces go (`http://host:4317`); `None` exports nothing.
    pub otlp_endpoint: Option<String>,
    /// Log lines to stdout; `None` writes none (tests).
    pub log_format: Option<LogFormat>,
    /// An `EnvFilter` directive (`info`, `stock_service=debug,info`).
    pub filter: String,
}

impl TelemetryConfig {
    /// From the environment: `LOG_FORMAT`, `RUST_LOG`, `OTEL_SERVICE_NAME` (else `process`),
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// `OTEL_SDK_DISABLED`.
    pub fn from_env(process: &str, services: &[&'static str]) -> Result<Self, TelemetryError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let log_format = match var("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(TelemetryError::BadLogFormat(other.to_owned())),
        };
        let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .filter(|_| !disabled)
            .map(|raw| otlp_endpoint(&raw))
            .transpose()?;
        Ok(Self {
            process: var("OTEL_SERVICE_NAME").unwrap_or_else(|| process.to_owned()),
            services: services.to_vec(),
            otlp_endpoint: endpoint,
            log_format: Some(log_format),
            filter: var("RUST_LOG").unwrap_or_else(|| "info".to_owned()),
        })
    }
}

/// An endpoint as the gRPC exporter needs it: `host:port` gets `http://`; anything but
/// `http` is refused with what to write instead.
fn otlp_endpoint(raw: &str) -> Result<String, TelemetryError> {
    let raw = raw.trim();
    match raw.split_once("://") {
        None => Ok(format!("http://{raw}")),
        Some(("http", rest)) if !rest.is_empty() => Ok(raw.to_owned()),
        Some(("https", _)) => Err(TelemetryError::BadEndpoint(format!(
            "{raw:?}: traces are exported over plain HTTP/2 only; send them to a collector \
             on the node or in the cluster (http://otel-collector:4317) and let it forward \
             over TLS"
        ))),
        Some(_) => Err(TelemetryError::BadEndpoint(format!(
            "{raw:?}: write http://host:4317 (or host:4317)"
        ))),
    }
}

/// Keeps the trace exporters alive; dropping it (or [`TelemetryGuard::shutdown`]) flushes
/// the spans still buffered.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Exports what is buffered and stops. Blocks until the exporters answer: in a
    /// current-thread runtime call it from `spawn_blocking`.
    pub fn shutdown(mut self) -> Result<(), String> {
        match self.provider.take() {
            Some(provider) => provider.shutdown().map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("trace exporter shutdown failed: {error}");
        }
    }
}

/// Installs the global subscriber and propagator from the environment. Call once, from main,
/// inside the Tokio runtime (the OTLP exporter needs it).
pub fn init(process: &str, services: &[&'static str]) -> Result<TelemetryGuard, TelemetryError> {
    let (dispatch, guard) = dispatch(&TelemetryConfig::from_env(process, services)?)?;
    tracing::dispatcher::set_global_default(dispatch)
        .map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
    Ok(guard)
}

/// The subscriber `config` describes, not installed (a test installs it for its own thread),
/// and the W3C propagator, installed globally.
pub fn dispatch(
    config: &TelemetryConfig,
) -> Result<(tracing::Dispatch, TelemetryGuard), TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter =
        EnvFilter::try_new(&config.filter).map_err(|e| TelemetryError::BadFilter(e.to_string()))?;
    let ansi = std::io::stdout().is_terminal();
    let log_layer = config.log_format.map(|format| match format {
        // Every span of the line's context, the request's (with trace_id and span_id) included.
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_ansi(ansi).boxed(),
    });
    let provider = config
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| tracer_provider(endpoint, &config.process, &config.services))
        .transpose()?;
    let otel_layer = provider.as_ref().map(|provider| {
        // Spans carry what a trace viewer needs; not the source location, thread or
        // busy/idle times of every span.
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(config.process.clone()))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
    });
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(log_layer)
        .with(otel_layer);
    Ok((
        tracing::Dispatch::new(subscriber),
        TelemetryGuard { provider },
    ))
}

/// One batch exporter per name (the process and each hosted service), behind the router
/// that sends each span to its service's.
fn tracer_provider(
    endpoint: &str,
    process: &str,
    services: &[&'static str],
) -> Result<SdkTracerProvider, TelemetryError> {
    let processor = |name: &str| -> Result<Box<dyn SpanProcessor>, TelemetryError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let exporter = Reported {
            inner: exporter,
            endpoint: endpoint.to_owned(),
            failing: AtomicBool::new(false),
        };
        let mut processor = BatchSpanProcessor::builder(exporter).build();
        processor.set_resource(&services::resource(name));
        Ok(Box::new(processor))
    };
    let hosted = services
        .iter()
        .map(|&name| Ok((name, processor(name)?)))
        .collect::<Result<Vec<_>, TelemetryError>>()?;
    let router = services::ServiceRouter::new(processor(process)?, hosted);
    // No provider-wide resource: the router hands none on, each processor has its own.
    Ok(SdkTracerProvider::builder()
        .with_span_processor(router)
        .build())
}

/// An exporter that says once when export starts failing (the collector is down: spans are
/// dropped) and once when it works again, instead of failing silently.
#[derive(Debug)]
struct Reported<E> {
    inner: E,
    endpoint: String,
    failing: AtomicBool,
}

impl<E: SpanExporter> SpanExporter for Reported<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        match &result {
            Err(error) if !self.failing.swap(true, Ordering::Relaxed) => tracing::warn!(
                endpoint = %self.endpoint,
                %error,
                "trace export failed; spans are dropped until the collector answers"
            ),
            Ok(()) if self.failing.swap(false, Ordering::Relaxed) => {
                tracing::info!(endpoint = %self.endpoint, "trace export works again");
            }
            _ => {}
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_a_scheme_or_a_refusal_that_says_what_to_write() {
        assert_eq!(
            otlp_endpoint("otel-collector:4317").expect("bare"),
            "http://otel-collector:4317"
        );
        assert_eq!(
            otlp_endpoint(" http://127.0.0.1:4317 ").expect("http"),
            "http://127.0.0.1:4317"
        );
        let https = otlp_endpoint("https://collector:4317").expect_err("https");
        assert!(
            https.to_string().contains("http://otel-collector:4317"),
            "{https}"
        );
        let other = otlp_endpoint("grpc://collector:4317").expect_err("grpc");
        assert!(
            other.to_string().contains("write http://host:4317"),
            "{other}"
        );
    }
}
