//! W3C trace context across gRPC calls: extracted from incoming requests ([`server_span`]),
//! injected into outgoing ones ([`TraceContextInterceptor`], under a [`client_span`]).

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{TraceContextExt, TraceId};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::services::tagged;

/// The span of one request to `service` (the binary's name, `stock-service`), named after the
/// RPC (`inventory.stock.v1.StockService/ReserveOrder`) and parented to the caller's W3C trace
/// context when the request carries one. Used as tonic's `trace_fn`.
pub fn server_span<B>(service: &'static str, request: &http::Request<B>) -> tracing::Span {
    let path = request.uri().path();
    let (rpc_service, rpc_method) = split_path(path);
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = path.trim_start_matches('/'),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = rpc_service,
        rpc.method = rpc_method,
        rpc.grpc.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    let caller = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    let caller_trace = caller.span().span_context().trace_id();
    // Fails only when no OpenTelemetry layer is installed: then there is nothing to link.
    let _ = span.set_parent(tagged(caller, service));
    // Every log line inside the request carries these, so a log joins its trace. Without
    // export there is no span of ours, but the caller's trace id still joins the two sides.
    let ours = span.context().span().span_context().clone();
    if ours.is_valid() {
        span.record("trace_id", tracing::field::display(ours.trace_id()));
        span.record("span_id", tracing::field::display(ours.span_id()));
    } else if caller_trace != TraceId::INVALID {
        span.record("trace_id", tracing::field::display(caller_trace));
    }
    span
}

/// The span of one outgoing call to `rpc_service` (`inventory.stock.v1.StockService`); calls
/// made inside it carry it as their parent ([`TraceContextInterceptor`]).
pub fn client_span(rpc_service: &str, rpc_method: &str) -> tracing::Span {
    tracing::info_span!(
        "grpc.client",
        otel.name = format!("{rpc_service}/{rpc_method}"),
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.service = rpc_service,
        rpc.method = rpc_method,
    )
}

/// A gRPC request's path, `/package.Service/Method`, as (`package.Service`, `Method`).
pub fn split_path(path: &str) -> (&str, &str) {
    path.trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""))
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
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tonic::service::Interceptor;
    use tracing_subscriber::layer::SubscriberExt;

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

    fn outgoing_traceparent() -> Option<String> {
        let outgoing = TraceContextInterceptor
            .call(tonic::Request::new(()))
            .expect("interceptor never fails");
        outgoing
            .metadata()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    #[test]
    fn incoming_trace_context_is_continued_and_passed_on_to_outgoing_calls() {
        with_tracing(|| {
            let request = http::Request::builder()
                .uri("/inventory.allocation.v1.AllocationService/AllocateOrder")
                .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
                .body(())
                .expect("request");
            let span = server_span("fulfillment-allocation-service", &request);
            let _entered = span.enter();
            let header = outgoing_traceparent().expect("traceparent injected");
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
            let span = server_span("stock-service", &request);
            let _entered = span.enter();
            let trace =
                outgoing_traceparent().map(|h| h.split('-').nth(1).unwrap_or_default().to_owned());
            assert!(matches!(trace, Some(t) if t != CALLER_TRACE && t != "0".repeat(32)));
        });
    }

    #[test]
    fn a_path_splits_into_service_and_method() {
        assert_eq!(
            split_path("/inventory.stock.v1.StockService/ReserveOrder"),
            ("inventory.stock.v1.StockService", "ReserveOrder")
        );
        assert_eq!(split_path("/odd"), ("/odd", ""));
    }
}
