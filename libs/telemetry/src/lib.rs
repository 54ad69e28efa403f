//! Telemetry for every service, built by one function.
//!
//! - Logs: text or JSON (`LOG_FORMAT`), filtered by `RUST_LOG` (default `info`).
//! - Traces: exported over OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//! - Propagation: W3C trace context, extracted from incoming requests ([`server_span`]) and
//!   injected into outgoing calls ([`TraceContextInterceptor`]).

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("LOG_FORMAT must be `text` or `json`, got {0:?}")]
    BadLogFormat(String),
    #[error("could not build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("a global subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Keeps the trace exporter alive; dropping it flushes the spans still buffered.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
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

/// Installs the global subscriber and propagator. Call once, from main, inside the Tokio
/// runtime (the OTLP exporter needs it).
pub fn init(service_name: &'static str) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let format = std::env::var("LOG_FORMAT").unwrap_or_else(|_| "text".to_owned());
    let fmt_layer = match format.as_str() {
        "json" => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .boxed(),
        "text" => tracing_subscriber::fmt::layer().boxed(),
        other => return Err(TelemetryError::BadLogFormat(other.to_owned())),
    };

    let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(service_name)
                .build();
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
        _ => None,
    };
    let otel_layer = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service_name)));

    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
    Ok(TelemetryGuard { provider })
}

/// The span of one incoming gRPC request, parented to the caller's W3C trace context when
/// the request carries one. Used as tonic's `trace_fn`.
pub fn server_span<B>(request: &http::Request<B>) -> tracing::Span {
    let span = tracing::info_span!(
        "grpc.request",
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.method = %request.uri().path(),
    );
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    // Fails only when no OpenTelemetry layer is installed: then there is nothing to link.
    let _ = span.set_parent(parent);
    span
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Injects the current span's W3C trace context into every outgoing gRPC call.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextInterceptor;

impl tonic::service::Interceptor for TraceContextInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let context = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut MetadataInjector(request.metadata_mut()));
        });
        Ok(request)
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CALLER_SPAN: &str = "00f067aa0ba902b7";

    /// Runs `f` with W3C propagation and an OpenTelemetry layer (no exporter) installed.
    fn with_tracing(f: impl FnOnce()) {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f);
    }

    #[test]
    fn incoming_trace_context_is_continued_and_passed_on_to_outgoing_calls() {
        with_tracing(|| {
            let request = http::Request::builder()
                .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
                .body(())
                .expect("request");
            let span = server_span(&request);
            let _entered = span.enter();
            let outgoing = TraceContextInterceptor
                .call(tonic::Request::new(()))
                .expect("interceptor never fails");
            let header = outgoing
                .metadata()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .expect("traceparent injected");
            let parts: Vec<&str> = header.split('-').collect();
            assert_eq!(parts[1], CALLER_TRACE, "same trace as the caller");
            assert_ne!(
                parts[2], CALLER_SPAN,
                "our own span, a child of the caller's"
            );
        });
    }

    #[test]
    fn a_request_without_trace_context_starts_a_new_trace() {
        with_tracing(|| {
            let request = http::Request::builder().body(()).expect("request");
            let span = server_span(&request);
            let _entered = span.enter();
            let outgoing = TraceContextInterceptor
                .call(tonic::Request::new(()))
                .expect("interceptor never fails");
            let header = outgoing
                .metadata()
                .get("traceparent")
                .and_then(|v| v.to_str().ok());
            let trace = header.map(|h| h.split('-').nth(1).unwrap_or_default().to_owned());
            assert!(matches!(trace, Some(t) if t != CALLER_TRACE && t != "0".repeat(32)));
        });
    }
}
