//! A concurrency limit that refuses instead of queueing: when every permit is taken, a new
//! request is answered at once with RESOURCE_EXHAUSTED so clients back off, and memory and
//! latency stay bounded under overload.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Semaphore;

/// Health checks pass the limit: an overloaded replica is still alive.
const EXEMPT_PREFIX: &str = "/grpc.health.v1.";

#[derive(Debug, Clone)]
pub struct ShedLoadLayer {
    permits: Arc<Semaphore>,
}

impl ShedLoadLayer {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
        }
    }
}

impl<S> tower::Layer<S> for ShedLoadLayer {
    type Service = ShedLoad<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ShedLoad {
            inner,
            permits: self.permits.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ShedLoad<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for ShedLoad<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        if request.uri().path().starts_with(EXEMPT_PREFIX) {
            return Box::pin(self.inner.call(request));
        }
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let response = self.inner.call(request);
                Box::pin(async move {
                    let result = response.await;
                    drop(permit);
                    result
                })
            }
            Err(_) => {
                let (service, _) = inventory_telemetry::split_path(request.uri().path());
                inventory_telemetry::metrics()
                    .rpc_shed
                    .get_or_create(&inventory_telemetry::metrics::ServiceLabels {
                        rpc_service: service.to_owned(),
                    })
                    .inc();
                tracing::warn!(
                    path = request.uri().path(),
                    "shedding load: concurrency limit reached"
                );
                let status = tonic::Status::resource_exhausted(
                    "server is at its concurrency limit; retry with backoff",
                );
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}
