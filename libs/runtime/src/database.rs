//! The PostgreSQL pool of one service, confined to its own schema; its migrations with the
//! platform's; and the one mapping of database errors to service errors.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::{Duration, Instant};

use inventory_core::{PageTokens, ServiceError};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

use crate::{Config, RuntimeError};

/// Tables every service has in its own schema (idempotency keys, service keys, feed
/// cursors). Their versions start at 1,000,000, above any service's own.
static PLATFORM: Migrator = sqlx::migrate!("./migrations");

/// A service's migrations followed by the platform's, as one set: one bookkeeping table,
/// one lock, applied in this order.
pub fn with_platform(service: &Migrator) -> Migrator {
    Migrator {
        migrations: Cow::Owned(service.iter().chain(PLATFORM.iter()).cloned().collect()),
        ..Migrator::DEFAULT
    }
}

/// Connects (waiting up to the configured timeout for the database to come up), creates the
/// schema if needed, points every connection's search_path at it, and applies the service's
/// migrations with the platform's. Their bookkeeping table lands in the same schema, so
/// services sharing one database never see each other's tables.
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
        with_platform(migrator).run(&pool).await?;
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

/// The deployment's page-token signer, from the key the platform migration made.
pub async fn page_tokens(pool: &PgPool) -> Result<PageTokens, RuntimeError> {
    let secret: Vec<u8> =
        sqlx::query_scalar("SELECT secret FROM service_keys WHERE name = 'page_token'")
            .fetch_one(pool)
            .await
            .map_err(|error| {
                RuntimeError::Config(format!(
                    "no page-token key in service_keys ({error}): apply the migrations first \
                     (RUN_MIGRATIONS=true, or the migration job)"
                ))
            })?;
    Ok(PageTokens::new(&secret))
}

/// Maps a database error no caller anticipated: lost races are retryable, an unreachable
/// database is UNAVAILABLE, anything else is internal.
pub fn db_error(error: sqlx::Error) -> ServiceError {
    match &error {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("40001" | "40P01") => {
                ServiceError::Aborted("lost a race with a concurrent update; retry".to_owned())
            }
            // Connection failures, operator intervention, insufficient resources (too many
            // connections, out of memory or disk).
            Some(code)
                if ["08", "53", "57"]
                    .iter()
                    .any(|class| code.starts_with(class)) =>
            {
                ServiceError::Unavailable("database unavailable".to_owned())
            }
            _ => ServiceError::Internal(error.to_string()),
        },
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            ServiceError::Unavailable("database unavailable".to_owned())
        }
        _ => ServiceError::Internal(error.to_string()),
    }
}

/// The name of the constraint a database error violated, if any.
pub fn violated_constraint(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}
