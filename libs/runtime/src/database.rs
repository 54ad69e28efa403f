//! The PostgreSQL pool of one service, confined to its own schema.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

use crate::{Config, RuntimeError};

/// Connects (waiting up to the configured timeout for the database to come up), creates the
/// schema if needed, points every connection's search_path at it, and applies the embedded
/// migrations. Their bookkeeping table lands in the same schema, so services sharing one
/// database never see each other's tables.
pub async fn connect_database(
    config: &Config,
    schema: &'static str,
    migrator: &Migrator,
) -> Result<PgPool, RuntimeError> {
    if schema.is_empty() || !schema.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return Err(RuntimeError::Config(format!("bad schema name {schema:?}")));
    }
    let options = PgConnectOptions::from_str(&config.database_url)?
        .application_name(schema)
        .options([("search_path", schema)]);

    let deadline = Instant::now() + config.database_connect_timeout;
    let mut delay = Duration::from_millis(100);
    loop {
        match create_schema(&options, schema).await {
            Ok(()) => break,
            Err(error) if Instant::now() < deadline => {
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "database not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(error) => return Err(error.into()),
        }
    }

    let pool = PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    if config.run_migrations {
        migrator.run(&pool).await?;
        tracing::info!(schema, "migrations applied");
    }
    Ok(pool)
}

async fn create_schema(options: &PgConnectOptions, schema: &str) -> Result<(), sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect_with(options).await?;
    // Look first: a role that owns its existing schema needs no CREATE on the database.
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        // The name was checked above to be lowercase letters and underscores only.
        sqlx::raw_sql(&(format!("CREATE SCHEMA IF NOT EXISTS {schema}")))
            .execute(&mut conn)
            .await?;
    }
    conn.close().await
}
