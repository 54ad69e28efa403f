//! Turns a panic inside a request handler into an INTERNAL status for that one call, logged,
//! instead of a dropped connection. Handlers are written not to panic; this is the backstop
//! that keeps a bug from taking down every call multiplexed on the same connection.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> tower::Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic { inner }
    }
}

#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for CatchPanic<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Caught<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let path = request.uri().path().to_owned();
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(future) => Caught {
                inner: Some(Box::pin(future)),
                path,
            },
            Err(panic) => {
                report(&path, panic.as_ref());
                Caught { inner: None, path }
            }
        }
    }
}

/// The response future, answering INTERNAL if the handler panics while polled.
pub struct Caught<F> {
    /// `None` once the handler has panicked.
    inner: Option<Pin<Box<F>>>,
    path: String,
}

impl<F, ResBody, E> Future for Caught<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    ResBody: Default,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Ok(internal()));
        };
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => {
                report(&this.path, panic.as_ref());
                this.inner = None;
                Poll::Ready(Ok(internal()))
            }
        }
    }
}

fn internal<B: Default>() -> http::Response<B> {
    tonic::Status::internal("internal error").into_http()
}

fn report(path: &str, panic: &(dyn Any + Send)) {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(path, panic = %message, "request handler panicked; answered INTERNAL");
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{Layer, Service, ServiceExt};

    use super::*;

    fn status_of(response: &http::Response<String>) -> Option<&str> {
        response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_internal_and_the_service_keeps_serving() {
        let handler = tower::service_fn(|request: http::Request<()>| async move {
            if request.uri().path() == "/boom" {
                panic!("bug in a handler");
            }
            Ok::<_, Infallible>(http::Response::new(String::from("fine")))
        });
        let mut service = CatchPanicLayer.layer(handler);
        let request = |path: &str| {
            http::Request::builder()
                .uri(path)
                .body(())
                .expect("request")
        };

        let response = service
            .ready()
            .await
            .expect("ready")
            .call(request("/boom"))
            .await;
        let response = response.expect("infallible");
        assert_eq!(status_of(&response), Some("13"), "INTERNAL");

        let response = service
            .ready()
            .await
            .expect("ready")
            .call(request("/ok"))
            .await;
        assert_eq!(response.expect("infallible").into_body(), "fine");
    }
}
