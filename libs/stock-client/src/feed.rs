//! A consumer of stock's transaction feed (`StreamTransactions`), for the services that derive
//! something from the log (replenishment's demand history, reconciliation's movement history).
//!
//! Exactly once, across restarts and replicas: each batch of events is applied by the
//! [`FeedHandler`] and the cursor (`feed_cursors`, a platform table in the consumer's own
//! schema) moves in the same database transaction. The cursor row is locked first and must
//! still be where this consumer's stream started from (or its last batch left it): if another
//! replica moved it meanwhile, nothing is applied and the consumer resumes from the stored
//! cursor. So a crash between events, a reconnect, or a second replica consuming the same
//! feed never counts an event twice or skips one.
//!
//! When stock goes away (a replica shutting down ends its feeds with UNAVAILABLE) or a batch
//! fails, the consumer reconnects from its stored cursor with backoff. Its progress (last
//! sequence, seconds behind) is published for health and metrics.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use inventory_core::ServiceError;
use inventory_core::time::from_timestamp;
use inventory_proto::stock::v1 as pb;
use inventory_runtime::{Stopping, Tx, db_error};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_stream::StreamExt;

use crate::{FeedEvent, FeedStart, RetryPolicy, StockClient, StockError};

/// Most events applied in one transaction.
const MAX_BATCH: usize = 500;

/// What a service derives from the log, inside the consumer's transaction.
#[tonic::async_trait]
pub trait FeedHandler: Send + Sync + 'static {
    /// Applies `events` (in the feed's order, none seen before) to the service's own tables
    /// in `tx`. The feed's order is not sequence order, not even for one inventory row; but
    /// a row's movements draw their sequences under its lock, in the order they commit, so
    /// the highest sequence seen for a row is its latest state, whatever order they come in. An error rolls the batch back with the cursor; it is retried later.
    async fn apply(
        &self,
        tx: &mut Tx,
        events: &[pb::InventoryTransaction],
    ) -> Result<(), ServiceError>;
}

/// Where a consumer stands, for health and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedStatus {
    /// The sequence of the last event applied (and stored).
    pub last_sequence: i64,
    /// When stock logged that event.
    pub last_event_time: Option<DateTime<Utc>>,
    /// How far behind the log the consumer is: the age of the last event applied while more
    /// were waiting, 0 once it has caught up with the live feed.
    pub seconds_behind: f64,
    /// Whether a feed is open right now.
    pub connected: bool,
}

/// A consumer's status in the process's metrics, read at each scrape.
fn observe(name: &str, status: watch::Receiver<FeedStatus>) {
    let labels = inventory_telemetry::metrics::FeedLabels {
        feed: name.to_owned(),
    };
    inventory_telemetry::metrics().on_scrape(format!("feed:{name}"), move || {
        let m = inventory_telemetry::metrics();
        let status = status.borrow();
        m.feed_lag_seconds
            .get_or_create(&labels)
            .set(status.seconds_behind);
        m.feed_last_sequence
            .get_or_create(&labels)
            .set(status.last_sequence);
        m.feed_connected
            .get_or_create(&labels)
            .set(i64::from(status.connected));
    });
}

pub struct FeedConsumer {
    /// The cursor's name in `feed_cursors`: one per derived view.
    name: String,
    pool: PgPool,
    client: Arc<dyn StockClient>,
    handler: Arc<dyn FeedHandler>,
    reconnect: RetryPolicy,
    status: watch::Sender<FeedStatus>,
}

impl FeedConsumer {
    pub fn new(
        name: impl Into<String>,
        pool: PgPool,
        client: Arc<dyn StockClient>,
        handler: Arc<dyn FeedHandler>,
    ) -> Self {
        let (status, _) = watch::channel(FeedStatus::default());
        let name = name.into();
        observe(&name, status.subscribe());
        Self {
            name,
            pool,
            client,
            handler,
            reconnect: RetryPolicy {
                attempts: u32::MAX,
                first_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
            },
            status,
        }
    }

    /// Progress, updated after every batch.
    pub fn status(&self) -> watch::Receiver<FeedStatus> {
        self.status.subscribe()
    }

    /// The sequence of the last event feed `name` applied, 0 before the first.
    pub async fn cursor(pool: &PgPool, name: &str) -> Result<i64, ServiceError> {
        Ok(Stored::read(pool, name).await?.last_sequence)
    }

    /// Follows the feed until `stopping` completes, reconnecting after every failure.
    pub async fn run(self, mut stopping: Stopping) {
        let mut failures = 0_u32;
        loop {
            let outcome = tokio::select! {
                outcome = self.follow() => outcome,
                () = stopping.wait() => return,
            };
            self.status.send_modify(|s| s.connected = false);
            match outcome {
                // follow() only returns on failure; a clean end means stock closed the feed.
                Ok(applied) if applied > 0 => failures = 0,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(feed = %self.name, %error, "transaction feed interrupted; resuming from the stored cursor")
                }
            }
            failures = failures.saturating_add(1);
            let wait = self.reconnect.backoff(failures);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stopping.wait() => return,
            }
        }
    }

    /// Opens the feed at the stored cursor and applies batches until it ends or fails.
    /// Returns how many events were applied.
    async fn follow(&self) -> Result<u64, FeedError> {
        let mut at = Stored::read(&self.pool, &self.name).await?;
        let mut stream = self.client.stream_transactions(at.start()).await?;
        self.status.send_modify(|s| {
            s.connected = true;
            s.last_sequence = at.last_sequence;
        });
        let mut applied = 0;
        while let Some(first) = stream.next().await {
            let mut batch = vec![first?];
            // Take what else is ready now, without waiting: a backlog goes in big batches,
            // a live event alone. An error ends the feed only after what came before it is
            // applied (a feed often ends with UNAVAILABLE right after its last events).
            let mut caught_up = false;
            let mut ended_with = None;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout(Duration::ZERO, stream.next()).await {
                    Ok(Some(Ok(event))) => batch.push(event),
                    Ok(Some(Err(error))) => {
                        ended_with = Some(error);
                        break;
                    }
                    Ok(None) => break,
                    Err(_) => {
                        caught_up = true;
                        break;
                    }
                }
            }
            tracing::debug!(feed = %self.name, events = batch.len(), "applying a batch");
            at = self.apply(&at, &batch).await?;
            applied += batch.len() as u64;
            if let Some(last) = batch.last().map(|e| &e.transaction) {
                let event_time = last
                    .create_time
                    .as_ref()
                    .and_then(|t| from_timestamp("create_time", t).ok());
                let behind = if caught_up {
                    0.0
                } else {
                    event_time.map_or(0.0, |t| {
                        (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
                    })
                };
                self.status.send_modify(|s| {
                    s.last_sequence = last.sequence;
                    s.last_event_time = event_time;
                    s.seconds_behind = behind;
                });
            }
            if let Some(error) = ended_with {
                return Err(error.into());
            }
        }
        Ok(applied)
    }

    /// Applies `batch`, which follows `at`, and moves the stored cursor past it, in one
    /// transaction; returns where the cursor now stands. If the stored cursor is no longer
    /// `at` (another replica applied events meanwhile), applies nothing and fails, so the
    /// consumer resumes from the stored cursor.
    async fn apply(&self, at: &Stored, batch: &[FeedEvent]) -> Result<Stored, FeedError> {
        let Some(last) = batch.last() else {
            return Ok(at.clone());
        };
        let mut tx = inventory_runtime::begin(&self.pool).await?;
        sqlx::query("INSERT INTO feed_cursors (feed) VALUES ($1) ON CONFLICT (feed) DO NOTHING")
            .bind(&self.name)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        // The lock serialises replicas consuming the same feed.
        let stored: Stored = sqlx::query_as(
            "SELECT last_sequence, position FROM feed_cursors WHERE feed = $1 FOR UPDATE",
        )
        .bind(&self.name)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        if stored != *at {
            return Err(FeedError::Moved);
        }
        let events: Vec<pb::InventoryTransaction> =
            batch.iter().map(|e| e.transaction.clone()).collect();
        self.handler.apply(&mut tx, &events).await?;
        let next = Stored {
            last_sequence: last.transaction.sequence,
            position: last.cursor.clone(),
        };
        sqlx::query(
            "UPDATE feed_cursors SET last_sequence = $2, position = $3, update_time = now()
              WHERE feed = $1",
        )
        .bind(&self.name)
        .bind(next.last_sequence)
        .bind(&next.position)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        inventory_runtime::commit(tx).await?;
        Ok(next)
    }
}

/// A consumer's stored cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
struct Stored {
    /// The sequence of the last event applied (0 before the first).
    last_sequence: i64,
    /// The feed's cursor after it; empty if only a sequence from before cursors is stored.
    position: String,
}

impl Stored {
    async fn read(pool: &PgPool, name: &str) -> Result<Self, ServiceError> {
        let stored: Option<Stored> =
            sqlx::query_as("SELECT last_sequence, position FROM feed_cursors WHERE feed = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
                .map_err(db_error)?;
        Ok(stored.unwrap_or_default())
    }

    fn start(&self) -> FeedStart {
        if self.position.is_empty() {
            FeedStart::Sequence(self.last_sequence)
        } else {
            FeedStart::Cursor(self.position.clone())
        }
    }
}

/// Why a feed was interrupted.
#[derive(Debug, thiserror::Error)]
enum FeedError {
    #[error("stock: {0}")]
    Stock(#[from] StockError),
    #[error("applying events: {0}")]
    Apply(#[from] ServiceError),
    #[error("another consumer of the same feed moved the cursor; resuming from it")]
    Moved,
}
