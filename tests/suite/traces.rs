//! Traces as a collector receives them: an in-process OTLP/gRPC receiver, and the telemetry
//! the services use pointed at it, installed for the calling thread (a current-thread test
//! runtime runs every service's tasks there).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use inventory_suite::SERVICE_NAMES;
use inventory_telemetry::{TelemetryConfig, TelemetryGuard};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

/// One span as exported, with the `service.name` of its resource.
#[derive(Debug, Clone)]
pub struct Exported {
    pub service: String,
    pub name: String,
    pub kind: SpanKind,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
    /// OTLP's status code (0 unset, 1 ok, 2 error) and message.
    pub status: (i32, String),
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Exported>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.0.lock().expect("receiver lock");
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans.resource.map(|r| r.attributes);
            let service = attributes(&resource.unwrap_or_default())
                .remove("service.name")
                .unwrap_or_default();
            for span in resource_spans
                .scope_spans
                .into_iter()
                .flat_map(|scope| scope.spans)
            {
                let status = span
                    .status
                    .as_ref()
                    .map(|s| (s.code, s.message.clone()))
                    .unwrap_or_default();
                received.push(Exported {
                    service: service.clone(),
                    status,
                    kind: span.kind(),
                    name: span.name,
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    attributes: attributes(&span.attributes),
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

/// Spans of this thread's work, exported as the suite exports them, until [`Self::finish`].
pub struct Capture {
    received: Receiver,
    guard: TelemetryGuard,
    _installed: tracing::dispatcher::DefaultGuard,
    _bystander: tracing::Dispatch,
    server: tokio::task::JoinHandle<()>,
}

impl Capture {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let received = Receiver::default();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(received.clone()))
                .serve_with_incoming(TcpIncoming::from(listener)),
        );
        let server = tokio::spawn(async move {
            let _ = server.await;
        });
        let config = TelemetryConfig {
            process: "inventory-suite".to_owned(),
            services: SERVICE_NAMES.to_vec(),
            otlp_endpoint: Some(format!("http://{address}")),
            log_format: None,
            filter: "info".to_owned(),
        };
        let (dispatch, guard) = inventory_telemetry::dispatch(&config).expect("telemetry");
        let installed = tracing::dispatcher::set_default(&dispatch);
        // While a single subscriber exists, tracing asks only the current thread's subscriber
        // whether a callsite seen for the first time is of interest, and caches the answer:
        // a span first reached by a concurrent test (no subscriber) would stay disabled here
        // too. With a second subscriber registered it asks them all.
        let bystander = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
        Self {
            received,
            guard,
            _installed: installed,
            _bystander: bystander,
            server,
        }
    }

    /// Flushes the exporters (off this thread: they need the runtime this thread drives)
    /// and returns every span received.
    pub async fn finish(self) -> Vec<Exported> {
        let Self {
            received,
            guard,
            _installed,
            server,
            ..
        } = self;
        drop(_installed);
        tokio::task::spawn_blocking(move || guard.shutdown())
            .await
            .expect("flush task")
            .expect("exporters flushed");
        server.abort();
        received.0.lock().expect("receiver lock").clone()
    }
}

/// The traces in which a server span of `caller` for `rpc` (`package.Service/Method`) made
/// a client call that `callee` served as `peer_rpc`: (caller's span, client span, callee's
/// span) of each, linked parent to child, all in one trace.
pub fn calls<'a>(
    spans: &'a [Exported],
    (caller, rpc): (&str, &str),
    (callee, peer_rpc): (&str, &str),
) -> Vec<[&'a Exported; 3]> {
    let by_id = |id: &[u8]| spans.iter().find(|s| s.span_id == id);
    let mut found = Vec::new();
    for served in spans
        .iter()
        .filter(|s| s.service == callee && s.name == peer_rpc && s.kind == SpanKind::Server)
    {
        let Some(client) = by_id(&served.parent_span_id) else {
            continue;
        };
        if client.service != caller || client.kind != SpanKind::Client || client.name != peer_rpc {
            continue;
        }
        // The client span sits somewhere under the caller's server span.
        let mut ancestor = by_id(&client.parent_span_id);
        while let Some(span) = ancestor {
            if span.kind == SpanKind::Server {
                break;
            }
            ancestor = by_id(&span.parent_span_id);
        }
        if let Some(root) = ancestor.filter(|s| s.service == caller && s.name == rpc)
            && root.trace_id == client.trace_id
            && client.trace_id == served.trace_id
        {
            found.push([root, client, served]);
        }
    }
    found
}
