//! What every RPC leaves behind: its status code on its span (error status when it failed),
//! its count, latency and in-flight gauge in the metrics, and one log line (`RPC_LOG`).
//!
//! The outermost layer of the server, so requests shed at the concurrency limit are counted
//! and logged like any other. An RPC ends when its response body does: a stream is observed
//! for as long as it lives, and its status is the one in its trailers.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use inventory_telemetry::metrics::{RpcCodeLabels, RpcLabels, ServiceLabels, metrics};
use inventory_telemetry::split_path;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

/// Which RPCs get a log line of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcLog {
    /// Every RPC (health checks excepted).
    All,
    /// Only those that did not end OK (the hot paths' choice).
    Errors,
    Off,
}

impl FromStr for RpcLog {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "all" => Ok(Self::All),
            "errors" => Ok(Self::Errors),
            "off" => Ok(Self::Off),
            other => Err(format!("must be all, errors or off, got {other:?}")),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ObserveLayer {
    log: RpcLog,
}

impl ObserveLayer {
    pub fn new(log: RpcLog) -> Self {
        Self { log }
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            log: self.log,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    log: RpcLog,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for Observe<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: http_body::Body + Unpin,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        let known = RpcHandles::cached(path);
        let path = known.is_none().then(|| path.to_owned());
        let started = Instant::now();
        let response = self.inner.call(request);
        let log = self.log;
        Box::pin(async move {
            let in_flight = match &known {
                Some(handles) => handles.in_flight.clone(),
                None => RpcHandles::other().in_flight.clone(),
            };
            in_flight.inc();
            let mut rpc = Rpc {
                span: tracing::Span::current(),
                known,
                path,
                in_flight,
                started,
                log,
                code: tonic::Code::Ok,
                trailers_only: false,
                finished: false,
            };
            match response.await {
                Ok(response) => {
                    // Errors are trailers-only: their status is in the headers.
                    rpc.saw(response.headers());
                    rpc.trailers_only = response.body().is_end_stream();
                    Ok(response.map(|inner| ObservedBody { inner, rpc }))
                }
                Err(error) => {
                    rpc.code = tonic::Code::Internal;
                    rpc.finish();
                    Err(error)
                }
            }
        })
    }
}

/// Most RPC paths given labels of their own; past it (or for a path no service answers,
/// UNIMPLEMENTED) requests count as `_OTHER`, so junk paths cannot grow the metrics.
const MAX_PATHS: usize = 512;
const OTHER: &str = "_OTHER";

/// The metric handles of one RPC, found by its path without allocating.
struct RpcHandles {
    service: String,
    method: String,
    in_flight: Gauge,
    duration: Histogram,
    /// By status code (0 to 16), created on first use.
    requests: [OnceLock<Counter>; 17],
}

type PathCache = RwLock<HashMap<String, Arc<RpcHandles>>>;

fn path_cache() -> &'static PathCache {
    static CACHE: OnceLock<PathCache> = OnceLock::new();
    CACHE.get_or_init(PathCache::default)
}

impl RpcHandles {
    fn new(service: &str, method: &str) -> Self {
        let m = metrics();
        Self {
            service: service.to_owned(),
            method: method.to_owned(),
            in_flight: m
                .rpc_in_flight
                .get_or_create(&ServiceLabels {
                    rpc_service: service.to_owned(),
                })
                .clone(),
            duration: m
                .rpc_duration
                .get_or_create(&RpcLabels {
                    rpc_service: service.to_owned(),
                    rpc_method: method.to_owned(),
                })
                .clone(),
            requests: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    fn cached(path: &str) -> Option<Arc<Self>> {
        path_cache().read().ok()?.get(path).cloned()
    }

    /// The handles of `path`, kept for the next request when there is room.
    fn answered(path: &str) -> Arc<Self> {
        let Ok(mut cache) = path_cache().write() else {
            return Self::other().clone();
        };
        if let Some(known) = cache.get(path) {
            return known.clone();
        }
        if cache.len() >= MAX_PATHS {
            return Self::other().clone();
        }
        let (service, method) = split_path(path);
        let handles = Arc::new(Self::new(service, method));
        cache.insert(path.to_owned(), handles.clone());
        handles
    }

    /// The handles of every request counted as `_OTHER`.
    fn other() -> &'static Arc<Self> {
        static OTHER_RPC: OnceLock<Arc<RpcHandles>> = OnceLock::new();
        OTHER_RPC.get_or_init(|| Arc::new(Self::new(OTHER, OTHER)))
    }

    fn requests(&self, code: tonic::Code) -> &Counter {
        self.requests[(code as usize).min(16)].get_or_init(|| {
            metrics()
                .rpc_requests
                .get_or_create(&RpcCodeLabels {
                    rpc_service: self.service.clone(),
                    rpc_method: self.method.clone(),
                    code: code_name(code).to_owned(),
                })
                .clone()
        })
    }
}

/// A response body that ends the RPC's observation when it ends: a stream's span, in-flight
/// count and duration last as long as the stream, and its final status comes from its
/// trailers.
pub struct ObservedBody<B> {
    inner: B,
    rpc: Rpc,
}

struct Rpc {
    /// Kept open until the response ends.
    span: tracing::Span,
    /// The RPC's metrics, when its path was seen answered before.
    known: Option<Arc<RpcHandles>>,
    /// The path, when it was not.
    path: Option<String>,
    in_flight: Gauge,
    started: Instant,
    log: RpcLog,
    code: tonic::Code,
    /// The answer ended with its headers (nothing left to read).
    trailers_only: bool,
    finished: bool,
}

impl Rpc {
    /// Takes the status from headers or trailers that carry one.
    fn saw(&mut self, headers: &http::HeaderMap) {
        if let Some(code) = status_code(headers) {
            self.code = code;
            if code != tonic::Code::Ok
                && let Some(message) = headers.get("grpc-message")
            {
                let message = percent_decoded(message.as_bytes());
                self.span
                    .record("otel.status_description", message.as_str());
            }
        }
    }

    fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.in_flight.dec();
        let handles = match (self.known.take(), self.path.as_deref()) {
            (Some(known), _) => known,
            (None, Some(path)) if self.code != tonic::Code::Unimplemented => {
                RpcHandles::answered(path)
            }
            _ => RpcHandles::other().clone(),
        };
        let _entered = self.span.enter();
        finished(&handles, self.code, self.started, self.log);
    }
}

impl<B> http_body::Body for ObservedBody<B>
where
    B: http_body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    self.rpc.saw(trailers);
                    self.rpc.finish();
                }
            }
            Poll::Ready(Some(Err(_))) => {
                self.rpc.code = tonic::Code::Internal;
                self.rpc.finish();
            }
            Poll::Ready(None) => self.rpc.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for ObservedBody<B> {
    /// A body dropped before it was read to the end: the client went away (or the server is
    /// stopping). A trailers-only answer (every error) has no body to read: it ended with its
    /// headers, with the status they carry.
    fn drop(&mut self) {
        if !self.rpc.finished {
            if !self.rpc.trailers_only {
                self.rpc.code = tonic::Code::Cancelled;
            }
            self.rpc.finish();
        }
    }
}

/// The gRPC status in `headers` (trailers-only responses, trailers), if any.
fn status_code(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
}

fn finished(rpc: &RpcHandles, code: tonic::Code, started: Instant, log: RpcLog) {
    let seconds = started.elapsed().as_secs_f64();
    rpc.requests(code).inc();
    rpc.duration.observe(seconds);

    let span = tracing::Span::current();
    span.record("rpc.grpc.status_code", code as i32);
    if code != tonic::Code::Ok {
        span.record("otel.status_code", "ERROR");
    }
    let health = rpc.service == "grpc.health.v1.Health";
    let wanted = match log {
        RpcLog::All => !health,
        RpcLog::Errors => code != tonic::Code::Ok,
        RpcLog::Off => false,
    };
    if wanted {
        tracing::info!(
            rpc.service = rpc.service.as_str(),
            rpc.method = rpc.method.as_str(),
            code = code_name(code),
            duration_ms = seconds * 1000.0,
            "rpc"
        );
    }
}

/// `grpc-message` as sent: percent-encoded UTF-8 (gRPC over HTTP/2).
fn percent_decoded(raw: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut at = 0;
    while at < raw.len() {
        let hex = raw
            .get(at + 1..at + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (raw[at], hex) {
            (b'%', Some(byte)) => {
                bytes.push(byte);
                at += 3;
            }
            (byte, _) => {
                bytes.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The canonical upper-case name, as in the gRPC specification and the metrics' `code`.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_read_where_one_is_sent() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(status_code(&headers), None);
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(status_code(&headers), Some(tonic::Code::NotFound));
        assert_eq!(code_name(tonic::Code::NotFound), "NOT_FOUND");
    }

    #[test]
    fn a_grpc_message_is_percent_decoded() {
        assert_eq!(
            percent_decoded(b"product_id: not a UUID %E2%80%94 got %22x%22%"),
            "product_id: not a UUID \u{2014} got \"x\"%"
        );
    }

    #[test]
    fn rpc_log_reads_its_three_settings() {
        assert_eq!("errors".parse::<RpcLog>(), Ok(RpcLog::Errors));
        assert!(
            "some"
                .parse::<RpcLog>()
                .expect_err("not a setting")
                .contains("all, errors or off")
        );
    }
}
