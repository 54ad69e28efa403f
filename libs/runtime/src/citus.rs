//! A service's tables spread over a Citus cluster (a coordinator and worker nodes), applied
//! after its migrations and idempotently: a second start, a second replica or the migration
//! job finds the work done and changes nothing.
//!
//! The service keeps connecting to the coordinator, which routes each statement to the shard
//! holding its rows and commits a transaction that wrote on more than one node in two phases.

use std::str::FromStr;

use sqlx::{Connection, PgPool};

use crate::RuntimeError;

/// `DISTRIBUTED`: whether to spread the service's tables over Citus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// Distribute when the database has the citus extension (default).
    Auto,
    /// Distribute, and refuse to start on a database without Citus.
    Citus,
    /// Keep every table local, Citus or not.
    Off,
}

impl FromStr for Distribution {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "auto" => Ok(Self::Auto),
            "citus" => Ok(Self::Citus),
            "off" => Ok(Self::Off),
            other => Err(format!("{other:?} is not one of auto, citus, off")),
        }
    }
}

/// How a service's tables spread over a cluster.
#[derive(Debug)]
pub struct CitusLayout {
    /// Small tables copied to every node, so every shard can join them and refer to them.
    pub reference: &'static [&'static str],
    /// Tables sharded by a column, all co-located with the first: rows with the same value
    /// live on the same node, so a statement about one value runs on one shard group.
    pub distributed: &'static [(&'static str, &'static str)],
    /// Tables that stay on the coordinator, added to Citus's metadata so that a transaction
    /// writing one of them and rows on a worker commits both in two phases (a plain local
    /// table would commit after the worker, and a crash between the two would split them).
    pub coordinator: &'static [&'static str],
    /// Foreign keys among these tables, (table, constraint name), dropped while the layout is
    /// applied and restored as they were: a table cannot be distributed while a local table
    /// refers to it, and a local table referring to a new reference table would be made a
    /// coordinator table of its own accord.
    pub foreign_keys: &'static [(&'static str, &'static str)],
}

/// Applies `layout` on the database of `pool` as `distribution` asks; returns whether the
/// tables are distributed.
pub async fn distribute(
    pool: &PgPool,
    distribution: Distribution,
    layout: &CitusLayout,
) -> Result<bool, RuntimeError> {
    if distribution == Distribution::Off {
        return Ok(false);
    }
    let mut conn = pool.acquire().await?;
    let installed = citus_installed(&mut conn).await?;
    // A cluster: the extension, and a coordinator that knows itself and a worker.
    let ready = installed
        && sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_dist_node WHERE groupid = 0)
                AND EXISTS (SELECT 1 FROM pg_dist_node WHERE groupid <> 0 AND isactive)",
        )
        .fetch_one(&mut *conn)
        .await?;
    if !ready {
        let missing = if installed {
            "the coordinator is not set up: SELECT citus_set_coordinator_host('<host>', \
             <port>) and SELECT citus_add_node('<worker>', <port>) for each worker"
        } else {
            "the database has no citus extension: run CREATE EXTENSION citus on the \
             coordinator and every worker"
        };
        return match distribution {
            Distribution::Citus => Err(RuntimeError::Config(format!(
                "DISTRIBUTED=citus, but {missing} (or set DISTRIBUTED=auto)"
            ))),
            _ => {
                if installed {
                    tracing::warn!("citus is installed but {missing}; tables stay local");
                }
                Ok(false)
            }
        };
    }
    bound_lock_waits_on_workers(&mut conn).await;
    // This session's connections to the workers (Citus keeps them for its next statements)
    // were opened before the bound: it is closed when done, never pooled.
    conn.close_on_drop();
    // One replica at a time; the others find the work done (waiting as long as that takes,
    // not the lock timeout of requests).
    sqlx::query("SET lock_timeout = 0")
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT pg_advisory_lock(hashtext('inventory citus layout'))")
        .execute(&mut *conn)
        .await?;
    let result = apply(&mut conn, layout).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock(hashtext('inventory citus layout'))")
        .execute(&mut *conn)
        .await;
    let reset = sqlx::query("RESET lock_timeout").execute(&mut *conn).await;
    result?;
    unlocked?;
    reset?;
    Ok(true)
}

/// The coordinator's sessions have the service's lock timeout (`LOCK_TIMEOUT_MS`, set on the
/// pool's connections), but the sessions Citus opens on the workers do not inherit it, and a
/// row is locked where it lives. So the database's default becomes the same bound (Citus
/// carries `ALTER DATABASE ... SET` to every worker), for the sessions opened from now on.
/// Migrations and the layout's own lock set theirs to none. Needs the database's owner (or a
/// superuser); without, lock waits on the workers stay unbounded, as the warning says.
async fn bound_lock_waits_on_workers(conn: &mut sqlx::PgConnection) {
    let done = sqlx::query(
        "DO $$ BEGIN
             EXECUTE format('ALTER DATABASE %I SET lock_timeout = %L', current_database(),
                            current_setting('lock_timeout'));
         END $$",
    )
    .execute(&mut *conn)
    .await;
    if let Err(error) = done {
        tracing::warn!(%error, "could not bound lock waits on the Citus workers (ALTER DATABASE ... SET lock_timeout): requests blocked there wait until their deadline");
    }
}

/// Whether `table` is sharded over Citus workers (false on a database without Citus).
pub async fn is_distributed(pool: &PgPool, table: &str) -> Result<bool, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    Ok(citus_installed(&mut conn).await? && Kind::Distributed.holds(&mut conn, table).await?)
}

async fn citus_installed(conn: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
        .fetch_one(conn)
        .await
}

async fn apply(conn: &mut sqlx::PgConnection, layout: &CitusLayout) -> Result<(), RuntimeError> {
    let wanted = layout
        .reference
        .iter()
        .map(|&t| (t, Kind::Reference))
        .chain(
            layout
                .distributed
                .iter()
                .map(|&(t, _)| (t, Kind::Distributed)),
        )
        .chain(layout.coordinator.iter().map(|&t| (t, Kind::Coordinator)));
    let mut missing = Vec::new();
    for (table, kind) in wanted {
        if !kind.holds(conn, table).await? {
            missing.push(table);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    // One transaction: a crash part-way leaves the tables local with all their keys. The
    // foreign keys go first: a local table referring to a new reference table would be
    // turned into a coordinator table behind our back, and a table referred to by a local
    // one cannot be distributed.
    let mut tx = conn.begin().await?;
    // Stock's triggers (the append-only log, rows never removed) run on each shard, where
    // they only raise an error and read no other table: the case this setting exists for.
    sqlx::query("SET LOCAL citus.enable_unsafe_triggers = on")
        .execute(&mut *tx)
        .await?;
    // Creating tables that refer to each other in one transaction needs one connection per
    // node: Citus refuses to mix them with the parallel connections it would open otherwise.
    sqlx::query("SET LOCAL citus.multi_shard_modify_mode = 'sequential'")
        .execute(&mut *tx)
        .await?;
    let mut restore = Vec::new();
    for &(table, name) in layout.foreign_keys {
        let definition: Option<String> = sqlx::query_scalar(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint
              WHERE conrelid = to_regclass($1) AND conname = $2",
        )
        .bind(table)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(definition) = definition {
            sqlx::raw_sql(&format!("ALTER TABLE {table} DROP CONSTRAINT {name}"))
                .execute(&mut *tx)
                .await?;
            restore.push(format!(
                "ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"
            ));
        }
    }
    for &table in layout.reference.iter().filter(|t| missing.contains(t)) {
        call(
            &mut tx,
            "SELECT create_reference_table($1::regclass)",
            &[table],
        )
        .await?;
    }
    let Some(&(anchor, _)) = layout.distributed.first() else {
        return Err(RuntimeError::Config(
            "a Citus layout names no distributed table".to_owned(),
        ));
    };
    for &(table, column) in layout
        .distributed
        .iter()
        .filter(|(t, _)| missing.contains(t))
    {
        if table == anchor {
            let sql = "SELECT create_distributed_table($1::regclass, $2)";
            call(&mut tx, sql, &[table, column]).await?;
        } else {
            let sql = "SELECT create_distributed_table($1::regclass, $2, colocate_with => $3)";
            call(&mut tx, sql, &[table, column, anchor]).await?;
        }
    }
    for statement in restore {
        sqlx::raw_sql(&statement).execute(&mut *tx).await?;
    }
    for &table in layout.coordinator.iter().filter(|t| missing.contains(t)) {
        let sql = "SELECT citus_add_local_table_to_metadata($1::regclass)";
        call(&mut tx, sql, &[table]).await.map_err(|error| {
            RuntimeError::Config(format!(
                "keeping {table} on the Citus coordinator failed ({error}); the coordinator \
                 must be in Citus's metadata: SELECT citus_set_coordinator_host('<host>', <port>)"
            ))
        })?;
    }
    tx.commit().await?;
    Ok(())
}

/// What Citus makes of a table.
#[derive(Clone, Copy)]
enum Kind {
    Reference,
    Distributed,
    Coordinator,
}

impl Kind {
    async fn holds(self, conn: &mut sqlx::PgConnection, table: &str) -> Result<bool, sqlx::Error> {
        // pg_dist_partition: partmethod 'h' is hash-distributed; 'n' with replication model
        // 't' a reference table, with 's' a table on the coordinator only.
        let (method, model) = match self {
            Kind::Reference => ("n", "t"),
            Kind::Distributed => ("h", "s"),
            Kind::Coordinator => ("n", "s"),
        };
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_dist_partition
                             WHERE logicalrelid = to_regclass($1)
                               AND partmethod::text = $2 AND repmodel::text = $3)",
        )
        .bind(table)
        .bind(method)
        .bind(model)
        .fetch_one(conn)
        .await
    }
}

async fn call(conn: &mut sqlx::PgConnection, sql: &str, args: &[&str]) -> Result<(), sqlx::Error> {
    let mut query = sqlx::query(sql);
    for arg in args {
        query = query.bind(*arg);
    }
    query.execute(conn).await.map(drop)
}
