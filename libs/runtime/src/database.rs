//! The PostgreSQL pool of one service, confined to its own schema; its migrations with the
//! platform's; and the one mapping of database errors to service errors.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::{Duration, Instant};

use inventory_core::{PageTokens, ServiceError};
use sqlx::migrate::{Migration, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

use crate::migration_text::as_one_command;
use crate::{Config, RuntimeError};

/// Tables every service has in its own schema (idempotency keys, service keys, feed
/// cursors). Their versions start at 1,000,000, above any service's own.
static PLATFORM: Migrator = sqlx::migrate!("./migrations");

/// A service's migrations followed by the platform's, as one set: one bookkeeping table,
/// one lock, applied in this order. Each runs as one command (see [`as_one_command`]); its
/// checksum stays that of its file, so databases migrated before still validate.
pub fn with_platform(service: &Migrator) -> Migrator {
    let migrations = service
        .iter()
        .chain(PLATFORM.iter())
        .map(|migration| Migration {
            sql: match as_one_command(&migration.sql) {
                // Outside a transaction (CREATE INDEX CONCURRENTLY) a DO block cannot run it.
                Cow::Owned(block) if !migration.no_tx => Cow::Owned(block),
                _ => migration.sql.clone(),
            },
            ..migration.clone()
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
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
            Err(error) if !worth_waiting_for(&error) => {
                return Err(RuntimeError::Config(permanent(&error, &options, schema)));
            }
            Err(error) if Instant::now() < deadline => {
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "database not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(error) => return Err(error.into()),
        }
    }

    if config.run_migrations {
        // On a connection of their own: a migration waits for its locks as long as it takes
        // (whatever the database's default, which on Citus is the services' bound).
        let unbounded = options.clone().options([("lock_timeout", "0")]);
        let mut conn = sqlx::PgConnection::connect_with(&unbounded).await?;
        with_platform(migrator).run(&mut conn).await?;
        conn.close().await?;
        tracing::info!(schema, "migrations applied");
    }
    let lock_timeout = format!("{}ms", config.lock_timeout.as_millis());
    let pool = PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .after_release(|conn, _| Box::pin(async move { Ok(connection_is_clean(conn)) }))
        .connect_with(options.options([("lock_timeout", lock_timeout.as_str())]))
        .await?;
    observe_pool(schema, &pool);
    Ok(pool)
}

/// Only a server not up yet, or not taking connections yet, is waited for; a wrong name,
/// password or privilege will not fix itself.
fn worth_waiting_for(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // Starting up or shutting down (57P03 and friends), too many connections (53300).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("57") || code.starts_with("53")),
        _ => false,
    }
}

/// What is wrong with the database set-up, and how to fix it.
fn permanent(error: &sqlx::Error, options: &PgConnectOptions, schema: &str) -> String {
    let database = options.get_database().unwrap_or("(default)");
    let user = options.get_username();
    let code = match error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    let fix = match code.as_deref() {
        Some("3D000") => format!(
            "database {database:?} does not exist: create it (CREATE DATABASE {database}) or \
             point DATABASE_URL at one that exists"
        ),
        Some("28P01" | "28000") => format!(
            "PostgreSQL refused role {user:?}: check the user and password in DATABASE_URL \
             (and pg_hba.conf for this host)"
        ),
        Some("42501") => format!(
            "role {user:?} may not create schema {schema:?}: create it owned by the role \
             (CREATE SCHEMA {schema} AUTHORIZATION {user}) or grant CREATE on the database"
        ),
        _ => "the database refused the connection for a reason waiting will not fix".to_owned(),
    };
    format!("{fix} ({error})")
}

/// Pool size, connections in use and idle, read at each scrape.
fn observe_pool(schema: &'static str, pool: &PgPool) {
    let pool = pool.clone();
    inventory_telemetry::metrics().on_scrape(format!("pool:{schema}"), move || {
        let family = &inventory_telemetry::metrics().db_pool_connections;
        let (size, idle) = (i64::from(pool.size()), pool.num_idle() as i64);
        let max = i64::from(pool.options().get_max_connections());
        for (state, value) in [("in_use", size - idle), ("idle", idle), ("max", max)] {
            family
                .get_or_create(&inventory_telemetry::metrics::PoolLabels {
                    pool: schema.to_owned(),
                    state: state.to_owned(),
                })
                .set(value);
        }
    });
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

/// A transaction on `pool`; the wait for its connection goes to the pool's metrics
/// (`db_pool_acquire_seconds`), named by the schema the pool serves.
///
/// Cancel-safe: sqlx 0.8's BEGIN is not (a future dropped during its round trip leaves the
/// session inside a transaction nothing rolls back, and the pool hands it to the next
/// borrower, launchbadge/sqlx#4393). So the BEGIN runs to its end in a task of its own: if
/// the caller is gone by then, the task drops the transaction, which rolls it back before the
/// connection is used again.
pub async fn begin(pool: &PgPool) -> Result<crate::Tx, ServiceError> {
    let started = Instant::now();
    let conn = pool.acquire().await.map_err(db_error)?;
    let tx = run_to_end(sqlx::Transaction::begin(conn, None))
        .await?
        .map_err(db_error)?;
    let options = pool.connect_options();
    let schema = options
        .get_application_name()
        .unwrap_or_default()
        .to_owned();
    inventory_telemetry::metrics()
        .db_pool_acquire
        .get_or_create(&inventory_telemetry::metrics::PoolNameLabels { pool: schema })
        .observe(started.elapsed().as_secs_f64());
    Ok(tx)
}

/// Commits `tx`, unless the request it serves is past its deadline: then it rolls back and
/// answers DEADLINE_EXCEEDED, so no caller is told of a failure whose work was done.
///
/// Cancel-safe: once sent, the COMMIT runs to its end in a task of its own, so a caller
/// dropped meanwhile (a client hanging up) neither leaves the connection mid-COMMIT nor has
/// a ROLLBACK queued behind a COMMIT that went through. A commit already sent when the caller
/// goes away is done; its answer is stored under the request id, where a retry finds it.
pub async fn commit(tx: crate::Tx) -> Result<(), ServiceError> {
    if crate::deadline::deadline_passed() {
        drop(tx);
        return Err(ServiceError::DeadlineExceeded(
            "the request's deadline passed before its work was committed; nothing was changed"
                .to_owned(),
        ));
    }
    run_to_end(tx.commit()).await?.map_err(db_error)
}

/// Runs `work` in a task of its own, so that dropping the caller does not drop it midway.
async fn run_to_end<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::spawn(work)
        .await
        .map_err(|error| ServiceError::Internal(format!("database task: {error}")))
}

/// What the pool checks as each connection comes back: one sqlx still counts inside a
/// transaction (work leaked past its end) is closed, never handed out again. (It cannot see
/// a session the server holds inside a transaction while sqlx counts none, the state a
/// dropped BEGIN leaves: `begin` prevents that one.)
fn connection_is_clean(conn: &mut sqlx::PgConnection) -> bool {
    let depth =
        <sqlx::postgres::PgTransactionManager as sqlx::TransactionManager>::get_transaction_depth(
            conn,
        );
    if depth != 0 {
        tracing::warn!(
            depth,
            "a connection came back inside a transaction; closing it"
        );
    }
    depth == 0
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
            Some("55P03") => ServiceError::Aborted(format!(
                "{} is held by another transaction for longer than the lock timeout \
                 (LOCK_TIMEOUT_MS); nothing was changed, retry",
                held_resource(db.as_ref())
            )),
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
        // A connection cut mid-conversation, or closed as soon as it opened (a load balancer
        // or pooler in front of a server that is down), reads as a protocol error: the same
        // retryable outage as a refused connection. Retrying is safe, every mutation being
        // idempotent by request id.
        sqlx::Error::Protocol(detail) => {
            // Logged, so a driver or protocol fault is not hidden behind the retries.
            tracing::warn!(%detail, "database connection broke off mid-protocol");
            ServiceError::Unavailable("database unavailable".to_owned())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            ServiceError::Unavailable("database unavailable".to_owned())
        }
        _ => ServiceError::Internal(error.to_string()),
    }
}

/// What a lock timeout waited for, from the error's context ("while updating tuple (0,7) in
/// relation \"inventory\""): a row of that relation, or "a lock" when PostgreSQL did not say.
fn held_resource(error: &dyn sqlx::error::DatabaseError) -> String {
    let context = error
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .and_then(|pg| pg.r#where())
        .unwrap_or_default();
    lock_in_context(context)
}

fn lock_in_context(context: &str) -> String {
    match context
        .split_once(" relation \"")
        .and_then(|(_, rest)| rest.split_once('"'))
    {
        Some((relation, _)) => format!("a row of {relation}"),
        None => "a lock".to_owned(),
    }
}

/// The name of the constraint a database error violated, if any.
pub fn violated_constraint(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) => db.constraint().or_else(|| {
            let integrity = db.code().is_some_and(|code| code.starts_with("23"));
            integrity
                .then(|| constraint_in_message(db.message()))
                .flatten()
        }),
        _ => None,
    }
}

/// The constraint a violation message names. Citus passes on a worker's error with its
/// message only, and there a unique key's name is its shard's (`products_sku_key_102008`):
/// the shard id is dropped.
fn constraint_in_message(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once(" constraint \"")?;
    let (name, _) = rest.split_once('"')?;
    Some(match name.rsplit_once('_') {
        Some((base, shard)) if !shard.is_empty() && shard.bytes().all(|b| b.is_ascii_digit()) => {
            base
        }
        _ => name,
    })
}

#[cfg(test)]
mod tests {
    use super::{PLATFORM, constraint_in_message, with_platform};

    #[test]
    fn migrations_run_as_one_block_keep_the_checksum_of_their_file() {
        let as_run = with_platform(&sqlx::migrate::Migrator::DEFAULT);
        let mut blocks = 0;
        for (run, file) in as_run.iter().zip(PLATFORM.iter()) {
            assert_eq!(
                (run.version, &run.checksum),
                (file.version, &file.checksum),
                "a database migrated with the file's text must still validate"
            );
            if run.sql != file.sql {
                blocks += 1;
            }
        }
        assert_eq!(as_run.iter().count(), PLATFORM.iter().count());
        assert!(
            blocks > 0,
            "the platform's first migration has several statements"
        );
    }

    #[test]
    fn a_lock_timeout_names_the_relation_it_waited_on() {
        assert_eq!(
            super::lock_in_context("while updating tuple (0,7) in relation \"inventory\""),
            "a row of inventory"
        );
        assert_eq!(
            super::lock_in_context(
                "while inserting index tuple (0,2) in relation \"idempotency_keys\"\nSQL statement"
            ),
            "a row of idempotency_keys"
        );
        assert_eq!(super::lock_in_context(""), "a lock");
    }

    #[test]
    fn a_constraint_is_named_by_its_message_without_a_shard_id() {
        let unique = "duplicate key value violates unique constraint \"products_sku_key_102210\"";
        assert_eq!(constraint_in_message(unique), Some("products_sku_key"));
        let check = "new row for relation \"products_102210\" violates check constraint \"products_sku_length\"";
        assert_eq!(constraint_in_message(check), Some("products_sku_length"));
        assert_eq!(constraint_in_message("deadlock detected"), None);
    }
}
