//! PostgreSQL access for the stock schema. Queries only: the rules live in `domain`.
//!
//! Lock order, so transactions cannot deadlock one another: the idempotency keys (a batch
//! claims several, in request-id order), then an order's reservation rows (by product, line,
//! warehouse), then inventory rows (by product, warehouse), then the log insert. A batch whose
//! request id is in flight elsewhere (the same request sent twice at once) waits for that
//! transaction before it locks any row.

mod batch;
mod catalog;
mod feed;
mod movements;
mod reads;
mod reservations;

use inventory_core::ServiceError;
pub use inventory_runtime::Tx;
use inventory_runtime::{db_error, violated_constraint};
use sqlx::PgPool;

pub use batch::{BatchOutcome, BatchRequest, BatchResult, Rows};
pub use feed::{Batch, FeedReader, oldest_writer};
pub use movements::{Applied, InventoryRow, TxnRecord};
pub use reads::{
    LedgerDriftRow, LedgerReport, ListInventoryFilter, ListTransactionsFilter, SummaryRow,
};

/// Handle on the stock schema; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    /// Tables sharded over Citus workers: some statements take another form there.
    distributed: bool,
}

impl Store {
    /// A store on a single PostgreSQL server.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            distributed: false,
        }
    }

    /// A store on the layout `pool`'s database has: whether the log is sharded over Citus
    /// workers (see the runtime's `citus`), read once.
    pub async fn open(pool: PgPool) -> Result<Self, ServiceError> {
        let distributed = inventory_runtime::citus::is_distributed(&pool, "inventory_transactions")
            .await
            .map_err(db_error)?;
        Ok(Self { pool, distributed })
    }

    pub fn is_distributed(&self) -> bool {
        self.distributed
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn begin(&self) -> Result<Tx, ServiceError> {
        inventory_runtime::begin(&self.pool).await
    }
}
