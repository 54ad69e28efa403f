//! What every service stands on, so a new service is mostly its own domain, store and API:
//!
//! - [`config`]: every setting read through one [`Settings`] lookup, defaults written once;
//! - [`database`]: the PostgreSQL pool confined to the service's schema, its migrations with
//!   the platform's, and the one mapping of database errors;
//! - [`citus`]: a service's tables spread over a Citus cluster, after its migrations;
//! - [`deadline`]: each request's deadline, which no commit outlives;
//! - [`idempotency`]: AIP-155 request ids for every mutating RPC;
//! - [`background`]: long-lived tasks, stopped on shutdown;
//! - [`server`]: the gRPC server with health, reflection, request timeouts, load shedding,
//!   W3C trace context and graceful shutdown;
//! - [`host`]: all of the above built in one call;
//! - [`observe`]: each RPC's status on its span, its metrics and its log line;
//! - [`metrics_server`]: `/metrics` for Prometheus;
//! - [`probe`]: `<service> health`, the container health check;
//! - [`tls`], [`auth`]: TLS and mutual TLS with certificate reload; callers' identity and
//!   each service's policy of who may call what;
//! - [`failpoint`]: crash points for fault-injection tests (test builds only).

pub mod auth;
pub mod background;
mod catch_panic;
pub mod citus;
pub mod config;
pub mod database;
pub mod deadline;
pub mod failpoint;
pub mod host;
pub mod idempotency;
pub mod metrics_server;
mod migration_text;
pub mod observe;
pub mod probe;
pub mod server;
mod shed;
pub mod tls;

pub use auth::{CallerIdentity, Policy, Role};
pub use background::{Background, Stopping};
pub use citus::{CitusLayout, Distribution};
pub use config::{Config, Settings};
pub use database::{begin, commit, connect_database, db_error, violated_constraint};
pub use deadline::{DeadlineLayer, deadline_passed, request_deadline};
pub use failpoint::failpoint;
pub use host::{App, ServiceHost, run_main};
pub use idempotency::{RequestKey, Tx, idempotent};
pub use inventory_telemetry::RecurringFailure;
pub use metrics_server::MetricsServer;
pub use server::{GrpcServer, ServiceSpec, shutdown_signal};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(String),
    #[error("telemetry: {0}")]
    Telemetry(#[from] inventory_telemetry::TelemetryError),
}
