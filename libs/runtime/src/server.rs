//! The gRPC server every service runs: health, reflection, timeouts, load shedding, W3C trace
//! context, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use sqlx::PgPool;
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use std::sync::Arc;

use rustls::ServerConfig;

use crate::auth::{AuthLayer, AuthSettings};
use crate::catch_panic::CatchPanicLayer;
use crate::observe::{ObserveLayer, RpcLog};
use crate::shed::ShedLoadLayer;
use crate::tls::{Reloading, TlsFiles};
use crate::{Config, RuntimeError};

/// How often readiness re-checks the database.
const READINESS_INTERVAL: Duration = Duration::from_secs(5);

/// What the runtime needs to know about a service.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec {
    /// Fully qualified proto service name; the health check answers for it.
    pub name: &'static str,
    /// The binary's name (`stock-service`): its logs and its traces' `service.name`.
    pub binary: &'static str,
    /// The PostgreSQL schema the service owns.
    pub schema: &'static str,
    /// Encoded FileDescriptorSet served by reflection.
    pub descriptor_set: &'static [u8],
    /// The service's own migrations; the platform's are applied after them.
    pub migrator: &'static sqlx::migrate::Migrator,
    /// `LISTEN_ADDR` when unset (the service's conventional port).
    pub default_listen: &'static str,
    /// `METRICS_ADDR` when unset: 9451 to 9454 beside gRPC's 50051 to 50054, so the four
    /// binaries can run side by side on one machine.
    pub default_metrics: &'static str,
    /// How the service's tables spread over a Citus cluster, if they can.
    pub citus: Option<&'static crate::citus::CitusLayout>,
    /// Which roles may call each of its mutating RPCs.
    pub policy: crate::auth::Policy,
}

/// A bound listener, ready to serve one service.
pub struct GrpcServer {
    listener: TcpListener,
    spec: ServiceSpec,
    request_timeout: Duration,
    max_concurrent_requests: usize,
    rpc_log: RpcLog,
    reflection: bool,
    tls: Option<Arc<Reloading<ServerConfig>>>,
    auth: AuthSettings,
}

impl GrpcServer {
    /// Binds `LISTEN_ADDR` (port 0 picks a free port, as tests do).
    pub async fn bind(config: &Config, spec: ServiceSpec) -> Result<Self, RuntimeError> {
        spec.policy
            .check(spec.descriptor_set, spec.name)
            .map_err(RuntimeError::Config)?;
        let listener = TcpListener::bind(config.listen_addr).await?;
        let tls = if config.tls.serves_tls() {
            Some(Reloading::watch(
                config.tls.clone(),
                "server",
                TlsFiles::server_config,
            )?)
        } else {
            None
        };
        if !config.auth.enforced() {
            tracing::warn!(
                service = spec.name,
                "caller authentication is off (neither TLS_CA_FILE with TLS_CERT_FILE nor \
                 AUTH_TOKEN_SECRET is set): whoever reaches the port may call every RPC"
            );
        }
        Ok(Self {
            tls,
            auth: config.auth.clone(),
            listener,
            spec,
            request_timeout: config.request_timeout,
            max_concurrent_requests: config.max_concurrent_requests,
            rpc_log: config.rpc_log,
            reflection: config.reflection,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, RuntimeError> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` completes, then drains in-flight requests. The named service
    /// reports SERVING while `pool` answers (it was migrated before this is called) and
    /// NOT_SERVING when the database is unreachable or shutdown has begun.
    pub async fn serve<S>(
        self,
        service: S,
        pool: PgPool,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RuntimeError>
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_service_status(self.spec.name, ServingStatus::NotServing)
            .await;
        let readiness = tokio::spawn(watch_readiness(health.clone(), self.spec.name, pool));

        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(self.spec.descriptor_set)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(inventory_proto::ERROR_DETAILS_DESCRIPTOR_SET)
        };
        let (reflection_v1, reflection_v1alpha) = if self.reflection {
            let v1 = reflection()
                .build_v1()
                .map_err(|e| RuntimeError::Reflection(e.to_string()))?;
            let v1alpha = reflection()
                .build_v1alpha()
                .map_err(|e| RuntimeError::Reflection(e.to_string()))?;
            (Some(v1), Some(v1alpha))
        } else {
            (None, None)
        };

        let address = self.local_addr()?;
        tracing::info!(
            service = self.spec.name,
            %address,
            tls = self.tls.is_some(),
            mutual_tls = self.auth.mutual_tls,
            tokens = self.auth.token_secret.is_some(),
            "serving"
        );
        let (name, binary) = (self.spec.name, self.spec.binary);
        let on_shutdown = {
            let health = health.clone();
            async move {
                shutdown.await;
                tracing::info!(service = name, "shutting down: draining in-flight requests");
                health
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
        };
        // No Nagle delay: a unary answer goes out in several small writes, and waiting for
        // the client's delayed ACK would add tens of milliseconds to each.
        let tcp = TcpIncoming::from(self.listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(Duration::from_secs(60)));
        let incoming = crate::tls::incoming(tcp, self.tls);
        let result = tonic::transport::Server::builder()
            .timeout(self.request_timeout)
            .trace_fn(move |request| inventory_telemetry::server_span(binary, request))
            .layer(ObserveLayer::new(self.rpc_log))
            .layer(AuthLayer::new(self.auth, self.spec.name, self.spec.policy))
            .layer(ShedLoadLayer::new(self.max_concurrent_requests))
            .layer(CatchPanicLayer)
            .layer(crate::DeadlineLayer::new(self.request_timeout))
            .add_service(health_service)
            .add_optional_service(reflection_v1)
            .add_optional_service(reflection_v1alpha)
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, on_shutdown)
            .await;
        readiness.abort();
        result.map_err(RuntimeError::from)
    }
}

async fn watch_readiness(health: HealthReporter, name: &'static str, pool: PgPool) {
    let mut last = None;
    loop {
        let reachable = sqlx::query("SELECT 1").execute(&pool).await.is_ok();
        if last != Some(reachable) {
            let status = if reachable {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            if reachable {
                tracing::info!(service = name, "database reachable: SERVING");
            } else {
                tracing::warn!(service = name, "database unreachable: NOT_SERVING");
            }
            health.set_service_status(name, status).await;
            last = Some(reachable);
        }
        tokio::time::sleep(READINESS_INTERVAL).await;
    }
}

/// Completes on SIGTERM (Kubernetes) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
