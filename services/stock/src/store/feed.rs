//! Reading the log as a feed: every committed row exactly once, in an order that never
//! changes once read.
//!
//! Sequence numbers are drawn before commit, so sequence order is not commit order: a row
//! with sequence 9 may become visible after one with 10. The feed therefore does not deliver
//! in sequence order. Each row records the transaction that wrote it (`writer_xid`, its
//! `pg_current_xact_id()`), and a read delivers, in (writer_xid, sequence) order, only rows
//! whose writer is below the xmin of a snapshot taken for it. PostgreSQL documents a
//! snapshot's xmin as the lowest transaction id still active, every id below it being
//! either committed and visible or rolled back (the `pg_snapshot` functions, "Snapshot
//! Information"), and ids are handed out in increasing order. So once a read has taken
//! xmin X, no row with a writer below X can ever appear or vanish: the rows the read
//! delivers are final, and every row delivered later has a writer at or above X, past the
//! read's last position. No skip, no repeat; nothing rests on monitoring views or timing.
//!
//! The cost: a transaction holding an xid holds back every row written by transactions that
//! started after it, until it ends, whatever it is (in this database or another of the same
//! server). Stock's own transactions are bounded by the request deadline; the stock service
//! reports the oldest running one (`stock_feed_holdback_seconds`) and names it in a warning
//! when it holds the feed back for long.
//!
//! On Citus the log is sharded over the workers, but its rows' writer ids and the snapshot's
//! xmin are both the coordinator's: defaults are evaluated there, where every transaction
//! starts. A transaction that wrote on several workers commits in two phases: prepared on the
//! workers, committed on the coordinator (where its id stops being active), then committed on
//! the workers. Between the last two its rows are not yet visible there, so after taking xmin
//! the reader waits for the transactions prepared on the workers at that moment to be
//! resolved (including any left in doubt by a lost connection, until Citus's recovery
//! resolves them), then reads.

use std::time::Duration;

use inventory_core::ServiceError;
use sqlx::FromRow;

use super::movements::{TXN_COLUMNS, TxnRecord};
use super::{Store, db_error};
use crate::domain::feed::FeedPosition;

/// How often a reader re-checks whether the transactions prepared on the workers have been
/// resolved (Citus only).
const PREPARED_POLL: Duration = Duration::from_millis(2);

/// A row as the feed reads it: the log row and the transaction that wrote it.
#[derive(Debug, Clone, FromRow)]
pub struct FeedRow {
    #[sqlx(flatten)]
    pub record: TxnRecord,
    pub writer_xid: i64,
}

/// What one read of the feed found.
#[derive(Debug, Default)]
pub struct Batch {
    /// The rows to deliver, each with the feed's position after it.
    pub rows: Vec<(TxnRecord, FeedPosition)>,
    /// Committed rows wait behind a transaction still running: they become deliverable as
    /// it ends, which may wake no one (a rollback, a caller gone), so the reader looks again
    /// soon rather than waiting for the next write or poll.
    pub held_back: bool,
}

/// A cursor over the log that yields each committed transaction exactly once.
#[derive(Debug)]
pub struct FeedReader {
    store: Store,
    position: FeedPosition,
}

impl FeedReader {
    pub fn new(store: Store, position: FeedPosition) -> Self {
        Self { store, position }
    }

    /// Where the reader stands: after the last row it returned.
    pub fn position(&self) -> FeedPosition {
        self.position
    }

    /// The next rows after the position, at most `limit`, each with the position after it;
    /// empty when caught up or held back (see [`Batch::held_back`]).
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn next_batch(&mut self, limit: i64) -> Result<Batch, ServiceError> {
        let horizon = self.horizon().await?;
        if self.store.is_distributed() {
            self.wait_for_prepared_on_workers().await?;
        }
        // In the feed's order, so the rows below the horizon come first; the first row at or
        // above it (committed, but its writer is not older than every running transaction)
        // says the feed is held back rather than caught up.
        let sql = format!(
            "SELECT {TXN_COLUMNS}, writer_xid FROM inventory_transactions
              WHERE (writer_xid, sequence) > ($1, $2) AND sequence > $3
              ORDER BY writer_xid, sequence LIMIT $4"
        );
        let rows = sqlx::query_as::<_, FeedRow>(&sql)
            .bind(self.position.writer_xid)
            .bind(self.position.sequence)
            .bind(self.position.floor)
            .bind(limit)
            .fetch_all(self.store.pool())
            .await
            .map_err(db_error)?;
        let mut batch = Batch {
            rows: Vec::with_capacity(rows.len()),
            held_back: false,
        };
        for row in rows {
            if row.writer_xid >= horizon {
                batch.held_back = true;
                break;
            }
            self.position = self.position.after(row.writer_xid, row.record.sequence);
            batch.rows.push((row.record, self.position));
        }
        Ok(batch)
    }

    /// The lowest transaction id still active: rows written below it are final.
    async fn horizon(&self) -> Result<i64, ServiceError> {
        sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            .fetch_one(self.store.pool())
            .await
            .map_err(db_error)
    }

    /// Waits until every transaction prepared on a worker now has been committed or rolled
    /// back there.
    async fn wait_for_prepared_on_workers(&self) -> Result<(), ServiceError> {
        let pending = self.prepared_on_workers().await?;
        if pending.is_empty() {
            return Ok(());
        }
        loop {
            tokio::time::sleep(PREPARED_POLL).await;
            let now = self.prepared_on_workers().await?;
            if pending.iter().all(|gid| !now.contains(gid)) {
                return Ok(());
            }
        }
    }

    /// The prepared transactions of this database on every worker, as `node/gid`.
    async fn prepared_on_workers(&self) -> Result<Vec<String>, ServiceError> {
        let nodes: Vec<(String, i32, bool, String)> = sqlx::query_as(
            "SELECT nodename, nodeport, success, result FROM run_command_on_workers(
                 $$SELECT coalesce(string_agg(gid, ' '), '') FROM pg_prepared_xacts
                    WHERE database = current_database()$$)",
        )
        .fetch_all(self.store.pool())
        .await
        .map_err(db_error)?;
        let mut gids = Vec::new();
        for (node, port, success, result) in nodes {
            if !success {
                // Rows prepared there cannot be ruled out: the stream ends, the caller
                // resumes from its cursor once the worker is back.
                tracing::warn!(node, port, result, "a Citus worker did not answer the feed");
                return Err(ServiceError::Unavailable(format!(
                    "Citus worker {node}:{port} unreachable"
                )));
            }
            gids.extend(
                result
                    .split_whitespace()
                    .map(|gid| format!("{node}:{port}/{gid}")),
            );
        }
        Ok(gids)
    }
}

/// The oldest transaction holding an xid on the server, which holds the feed back: its age
/// in seconds and who it is (for the warning), or none.
pub async fn oldest_writer(
    db: impl sqlx::PgExecutor<'_>,
) -> Result<Option<(f64, String)>, ServiceError> {
    // Prepared transactions hold an xid too, with no backend.
    sqlx::query_as(
        "SELECT extract(epoch FROM now() - since)::float8, who FROM (
             SELECT xact_start AS since,
                    format('pid %s (%s, database %s, %s): %s', pid, application_name, datname,
                           state, left(query, 120)) AS who
               FROM pg_stat_activity
              WHERE backend_xid IS NOT NULL AND xact_start IS NOT NULL
             UNION ALL
             SELECT prepared, format('prepared transaction %s (database %s)', gid, database)
               FROM pg_prepared_xacts) holding
          ORDER BY since LIMIT 1",
    )
    .fetch_optional(db)
    .await
    .map_err(db_error)
}
