//! `/metrics` for Prometheus on a port of its own (`METRICS_ADDR`), apart from gRPC so a
//! scrape never competes with the service's concurrency limit.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::{RuntimeError, Settings};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A bound metrics listener.
pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    /// Bound at `METRICS_ADDR` (`default` when unset), or `None` when it is `off`.
    pub async fn from_settings(
        settings: &Settings,
        default: &str,
    ) -> Result<Option<Self>, RuntimeError> {
        match crate::config::metrics_addr(settings, default)? {
            Some(address) => Ok(Some(Self::bind(address).await?)),
            None => Ok(None),
        }
    }

    /// Binds now, so a port clash is found at start.
    pub async fn bind(address: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("METRICS_ADDR {address}: {e}")))?;
        Ok(Self { listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Answers scrapes until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let address = self.local_addr().ok();
        tracing::info!(?address, "serving /metrics");
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = &mut shutdown => return,
            };
            let Ok((stream, _)) = accepted else {
                continue;
            };
            tokio::spawn(async move {
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(answer));
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "metrics connection ended");
                }
            });
        }
    }
}

async fn answer(
    request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&http::Method::GET, "/metrics") => http::Response::builder()
            .header(http::header::CONTENT_TYPE, OPENMETRICS)
            .body(Full::new(Bytes::from(
                inventory_telemetry::metrics().encode(),
            ))),
        _ => http::Response::builder()
            .status(http::StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"only GET /metrics here\n"))),
    };
    // The builder only fails on invalid parts, and these are constants.
    Ok(response.unwrap_or_default())
}
