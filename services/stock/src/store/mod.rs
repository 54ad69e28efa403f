//! PostgreSQL access for the stock schema. Queries only: the rules live in `domain`.
//!
//! Lock order, so transactions cannot deadlock one another: the idempotency key, then
//! reservation rows (by order, line, warehouse), then inventory rows (by product, warehouse),
//! then the log insert. One exception: a coalesced batch that runs under row locks (see
//! `batch`) claims its request ids after locking its rows; it can only meet a transaction
//! holding one of those ids if a client sends the same request twice at once, and PostgreSQL
//! then breaks the cycle (the batch retries one by one, or the caller gets ABORTED).

mod batch;
mod catalog;
mod feed;
mod idempotency;
mod movements;
mod reads;
mod reservations;

use inventory_core::ServiceError;
use sqlx::{PgPool, Postgres, Transaction};

pub use batch::{BatchOutcome, BatchRequest, BatchResult, Rows};
pub use feed::FeedReader;
pub use idempotency::{Begun, RequestKey};
pub use movements::{Applied, InventoryRow, TxnRecord};
pub use reads::{
    LedgerDriftRow, LedgerReport, ListInventoryFilter, ListTransactionsFilter, SummaryRow,
};

pub type Tx = Transaction<'static, Postgres>;

/// Handle on the stock schema; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn begin(&self) -> Result<Tx, ServiceError> {
        self.pool.begin().await.map_err(db_error)
    }
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
pub(crate) fn violated_constraint(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}
