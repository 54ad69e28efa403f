//! What every service needs to start, so each service's main is a few lines:
//!
//! - [`config`]: settings from environment variables with developer-friendly defaults;
//! - [`database`]: the PostgreSQL pool, confined to the service's own schema, with its
//!   embedded migrations applied;
//! - [`server`]: the gRPC server with health, reflection, request timeouts, load shedding,
//!   W3C trace context and graceful shutdown.

mod catch_panic;
pub mod config;
pub mod database;
pub mod server;
mod shed;

pub use config::{Config, env_flag, env_setting};
pub use database::connect_database;
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
