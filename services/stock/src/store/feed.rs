//! Reading the log as a feed: in sequence order, with no gaps that could still fill.
//!
//! Sequence numbers are drawn before commit, so a transaction holding sequence 9 may commit
//! after one holding 10. A reader that sees 10 but not 9 must not move past 9 until 9 either
//! commits or is known never to. Every writer takes the log's insert lock and its xid before
//! its sequence number (see `next_transaction_sequence` in the migration), so whoever holds 9
//! had both before the read that showed 10: at any time after that read it still holds them,
//! or it has ended. So at a gap the reader notes the xids of the log's writers and, once all
//! of them have ended, any number still missing below 10 belongs to a rollback and is
//! skipped for good. (The migration's comment on that function speaks of a snapshot's
//! in-progress transactions: the first way this was done.)
//!
//! (Not a snapshot's list of running xids: a snapshot lists only xids below the newest that
//! has ended, so a writer newer than every finished transaction is missing from it though
//! it is still running.)
//!
//! On Citus the log is sharded over the workers, but sequence numbers are still drawn on the
//! coordinator, from one sequence, by transactions that start there; so the rule holds with
//! one more wait. A transaction that wrote on a worker commits in two phases: prepared on
//! the worker, committed on the coordinator (where it stops being in progress), then
//! committed on the worker. Between the last two its row is not yet visible, so once the
//! coordinator's writers are done the reader also waits for the transactions prepared on the
//! workers at that moment (including any left in doubt by a lost connection, until Citus's
//! recovery resolves them).

use std::time::Duration;

use inventory_core::ServiceError;

use super::movements::{TXN_COLUMNS, TxnRecord};
use super::{Store, db_error};

/// How often a reader re-checks whether the writers it waits on have finished.
const GAP_POLL: Duration = Duration::from_millis(2);

/// A cursor over the log that yields each transaction exactly once, in sequence order.
#[derive(Debug)]
pub struct FeedReader {
    store: Store,
    /// The last sequence delivered.
    cursor: i64,
    /// Sequences at or below this that are still missing never will appear.
    settled_upto: i64,
}

impl FeedReader {
    pub fn new(store: Store, after_sequence: i64) -> Self {
        Self {
            store,
            cursor: after_sequence,
            settled_upto: after_sequence,
        }
    }

    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// The next transactions after the cursor, at most `limit`; empty when caught up.
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn next_batch(&mut self, limit: i64) -> Result<Vec<TxnRecord>, ServiceError> {
        loop {
            let rows = self.read(limit).await?;
            let highest_seen = rows.last().map_or(self.cursor, |r| r.sequence);
            let mut batch = Vec::with_capacity(rows.len());
            let mut blocked_by_gap = false;
            for row in rows {
                if row.sequence == self.cursor + 1 || row.sequence <= self.settled_upto {
                    self.cursor = row.sequence;
                    batch.push(row);
                } else {
                    blocked_by_gap = true;
                    break;
                }
            }
            if !blocked_by_gap || !batch.is_empty() {
                return Ok(batch);
            }
            // Whoever holds a number missing below the highest row read drew it before the
            // read, under the log's insert lock: it is one of the writers holding that lock
            // now (after the read), or it has ended. Once they are done, whatever is still
            // missing there never will appear.
            let writers = self.log_writers().await?;
            self.wait_for_writers(&writers).await?;
            if self.store.is_distributed() {
                self.wait_for_prepared_on_workers().await?;
            }
            self.settled_upto = highest_seen;
        }
    }

    /// The rows after the cursor, at most `limit`, in sequence order.
    async fn read(&self, limit: i64) -> Result<Vec<TxnRecord>, ServiceError> {
        let sql = format!(
            "SELECT {TXN_COLUMNS} FROM inventory_transactions
              WHERE sequence > $1 ORDER BY sequence LIMIT $2"
        );
        sqlx::query_as::<_, TxnRecord>(&sql)
            .bind(self.cursor)
            .bind(limit)
            .fetch_all(self.store.pool())
            .await
            .map_err(db_error)
    }

    /// The xids of the transactions holding the log's insert lock now. (Asked after a read,
    /// not before: on Citus the workers read with snapshots of their own, taken later.) Only
    /// they can hold a missing number, so unrelated transactions, in other schemas, idle in
    /// a session or only reading the log, never stall the feed.
    async fn log_writers(&self) -> Result<Vec<String>, ServiceError> {
        sqlx::query_scalar(
            "SELECT DISTINCT a.backend_xid::text
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'relation' AND l.mode = 'RowExclusiveLock'
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND l.relation = 'inventory_transactions'::regclass
                AND a.backend_xid IS NOT NULL",
        )
        .fetch_all(self.store.pool())
        .await
        .map_err(db_error)
    }

    /// Waits until none of `writers` is running: a backend's xid is cleared as its
    /// transaction ends, before its locks go, and from then on its rows are visible or gone.
    async fn wait_for_writers(&self, writers: &[String]) -> Result<(), ServiceError> {
        if writers.is_empty() {
            return Ok(());
        }
        loop {
            let done: bool = sqlx::query_scalar(
                "SELECT NOT EXISTS (
                     SELECT 1 FROM pg_stat_activity WHERE backend_xid::text = ANY($1))",
            )
            .bind(writers)
            .fetch_one(self.store.pool())
            .await
            .map_err(db_error)?;
            if done {
                return Ok(());
            }
            tokio::time::sleep(GAP_POLL).await;
        }
    }

    /// Waits until every transaction prepared on a worker now has been committed or rolled
    /// back there.
    async fn wait_for_prepared_on_workers(&self) -> Result<(), ServiceError> {
        let pending = self.prepared_on_workers().await?;
        if pending.is_empty() {
            return Ok(());
        }
        loop {
            tokio::time::sleep(GAP_POLL).await;
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
